"""Response headers the panel adds to every page, and what it notes of each request."""

import hashlib

from allauth.usersessions.middleware import UserSessionsMiddleware
from django.core.cache import cache
from django.utils.cache import patch_cache_control
from django.utils.deprecation import MiddlewareMixin
from redis.exceptions import RedisError


class NoStoreForUsersMiddleware(MiddlewareMixin):
    """Pages for a logged-in user show team data: no browser or proxy cache may keep them
    (the back button after logging out, a shared computer, a caching proxy)."""

    def process_response(self, request, response):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response


class LoginLockoutStatusMiddleware(MiddlewareMixin):
    """429 for a login that django-axes refused or locked. The page stays the login form, with
    the wait in its errors (controlpanel.login): axes's own middleware would swap it for a bare
    message, and passes its hook the wrong arguments under ASGI (jazzband/django-axes#1494)."""

    def process_response(self, request, response):
        if getattr(request, "axes_locked_out", False):
            response.status_code = 429
        return response


class SessionActivityMiddleware(UserSessionsMiddleware):
    """allauth's record of each signed-in session (address, browser, last seen: the Sessions
    page), written at most once every ACTIVITY_SECONDS per session instead of on every request:
    that write was a transaction on every page, which on SQLite every web process waits for in
    turn. A new address or browser is written at once (allauth tells of the change then)."""

    ACTIVITY_SECONDS = 60

    def __call__(self, request):
        if self._due(request):
            return super().__call__(request)
        return self.get_response(request)

    def _due(self, request) -> bool:
        session = getattr(request, "session", None)
        if session is None or not session.session_key:
            return True
        # The session key is a secret: only its hash goes to Redis.
        seen = "\0".join(
            (
                session.session_key,
                request.META.get("REMOTE_ADDR", ""),
                request.META.get("HTTP_X_FORWARDED_FOR", ""),
                request.META.get("HTTP_USER_AGENT", ""),
            )
        )
        key = "session-seen:" + hashlib.sha256(seen.encode()).hexdigest()
        try:
            return cache.add(key, 1, self.ACTIVITY_SECONDS)
        except RedisError:  # Redis away: write it, as before
            return True
