"""Whether the viewer of a live socket may still watch it, asked again while it is open.

A socket is authorized once, at connect, but lives for hours. So every live socket asks again
every LIVE_ACCESS_CHECK_SECONDS: the session is read again from the session store by its key
(a logout deletes it, an expired one no longer loads, a changed password no longer matches its
hash), and the memberships from the database. Where the answer is no, the socket is closed with
CLOSE_NOT_LOGGED_IN or CLOSE_NOT_VISIBLE, the codes a refused connect gets.

A check costs a session read and two or three small queries; nothing is written, not even where
the session no longer verifies (Django's own get_user would flush or cycle it).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from importlib import import_module

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.utils.crypto import constant_time_compare

logger = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's), as at connect.
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NOT_VISIBLE = 4403
# A check that failed (the database did not answer) is tried again at the next tick; after
# this many in a row, access is unknown for too long and the socket closes as an internal error.
FAILED_CHECKS_ALLOWED = 3
CLOSE_UNCHECKED = 1011


def check_seconds() -> float:
    # Never 0: a loop without a pause would starve the event loop.
    return max(settings.LIVE_ACCESS_CHECK_SECONDS, 0.05)


def session_user(session_key: str | None, user_pk):
    """The user `user_pk` as the session `session_key` still logs them in now, or None: the
    session was deleted (logout) or expired, is another user's, or no longer verifies (the
    password changed), or the user may no longer log in (deactivated, deleted)."""
    if not session_key:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    data = store.load()  # {} where the session is gone or expired
    if str(data.get(SESSION_KEY)) != str(user_pk):
        return None
    backend_path = data.get(BACKEND_SESSION_KEY)
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_pk)
    if user is None:
        return None
    session_hash = data.get(HASH_SESSION_KEY)
    if not session_hash:
        return None
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    if not any(constant_time_compare(session_hash, known) for known in hashes):
        return None
    return user


def lost_access(scope: dict, can_see: Callable[[object], bool]) -> int | None:
    """The close code where the socket's viewer may no longer watch it, else None.
    `can_see(user)` says whether the user may still see the socket's object."""
    session = scope.get("session")
    user = session_user(session.session_key if session is not None else None, scope["user"].pk)
    if user is None:
        return CLOSE_NOT_LOGGED_IN
    if not can_see(user):
        return CLOSE_NOT_VISIBLE
    return None


_lost_access = database_sync_to_async(lost_access)


class AccessCheck:
    """The checks of one socket: `lost_access` off the event loop, with failures counted."""

    def __init__(self, scope: dict, can_see: Callable[[object], bool]) -> None:
        self.scope = scope
        self.can_see = can_see
        self.failures = 0

    async def lost(self) -> int | None:
        """The close code where the socket must close now, else None."""
        try:
            code = await _lost_access(self.scope, self.can_see)
        except Exception:
            self.failures += 1
            logger.warning("Checking a live socket's access failed", exc_info=True)
            return CLOSE_UNCHECKED if self.failures >= FAILED_CHECKS_ALLOWED else None
        self.failures = 0
        return code


async def watch(scope: dict, can_see: Callable[[object], bool]) -> int:
    """Check the viewer's access every check_seconds(), until it is gone: the close code."""
    check = AccessCheck(scope, can_see)
    while True:
        await asyncio.sleep(check_seconds())
        code = await check.lost()
        if code is not None:
            return code


async def watch_and_close(
    scope: dict, can_see: Callable[[object], bool], close: Callable[[int], Awaitable[None]]
) -> None:
    """`watch`, then `close(code)`: what a consumer runs as a task beside its stream."""
    await close(await watch(scope, can_see))


__all__ = [
    "CLOSE_NOT_LOGGED_IN",
    "CLOSE_NOT_VISIBLE",
    "CLOSE_UNCHECKED",
    "AccessCheck",
    "check_seconds",
    "lost_access",
    "session_user",
    "watch",
    "watch_and_close",
]
