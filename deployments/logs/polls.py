"""Log lines for a browser that polls because its websocket does not get through.

A poll opens no session of its own. It keeps the container's feed in the hub running for
KEEP_SECONDS more (the feed the websockets of that container share) and answers with the lines
the feed kept after the cursor of the browser's previous answer. So any number of polls by any
number of viewers cost one `docker logs --follow` per container (in each web process that they
reach), for as long as someone polls.

The hub belongs to an event loop. Under the ASGI server that is the server's loop, which the log
websockets use too; a request served without a lasting loop (WSGI: the test client, a WSGI
server) runs its poll on a loop this module keeps in a thread of its own.
"""

import asyncio
import re
import threading
from collections.abc import Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from .hub import Feed, Line, Opener, get_hub

# How long a feed runs on after the last poll: a few missed polls (a busy tab) do not end it.
KEEP_SECONDS = 30.0
# A feed just started: how long its first poll waits for the stream to open, then for the
# first lines to stop coming (they come at once, in a few reads), at most and at least.
OPEN_WAIT_SECONDS = 15.0
SETTLE_MAX_SECONDS = 3.0
SETTLE_QUIET_SECONDS = 0.3

T = TypeVar("T")

_CURSOR = re.compile(r"([0-9a-f]{12})\.(\d{1,18})")


@dataclass(frozen=True)
class Cursor:
    """Where a poll's answer ended: a feed and how many of its lines came before."""

    token: str
    count: int

    def __str__(self) -> str:
        return f"{self.token}.{self.count}"

    @classmethod
    def parse(cls, text: str | None) -> "Cursor | None":
        match = _CURSOR.fullmatch(text or "")
        return cls(match[1], int(match[2])) if match else None


@dataclass
class Polled:
    """A poll's answer for one container."""

    lines: list[Line]
    cursor: Cursor
    # Lines between the cursor and `lines` that the feed no longer kept.
    skipped: int
    # Whether `lines` are the container's last ones rather than those after the cursor: the
    # cursor was of a feed that is gone (or there was none), so some may have been seen.
    replayed: bool
    status: dict | None
    error: Exception | None


async def poll(key: Hashable, opener: Opener, *, tail: int, after: Cursor | None) -> Polled:
    """The lines of the container `key` after `after`, or its last `tail` lines where the
    cursor is not of its running feed. Runs in the loop of the hub (see `in_hub_loop`)."""
    feed = get_hub().keep(key, opener, tail=tail, seconds=KEEP_SECONDS)
    if after is not None and after.token == feed.token:
        skipped, lines = feed.lines_after(after.count)
        return _answer(feed, lines, skipped=skipped, replayed=False)
    await _opened(feed)
    # The next poll comes a polling period after this answer, however long the wait was.
    feed.keep_for(KEEP_SECONDS)
    return _answer(feed, feed.history.last(tail), skipped=0, replayed=True)


def _answer(feed: Feed, lines: list[Line], *, skipped: int, replayed: bool) -> Polled:
    cursor = Cursor(feed.token, feed.received)
    return Polled(lines, cursor, skipped, replayed, feed.status, feed.error)


async def _opened(feed: Feed) -> None:
    """Wait, within bounds, until a new feed has opened (or failed) and its first lines are in:
    the first poll of a container shows its tail, not an empty page for one polling period."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OPEN_WAIT_SECONDS
    while feed.status is None and (left := deadline - loop.time()) > 0:
        await feed.changed(left)
    settled = feed.started_at + SETTLE_MAX_SECONDS
    while (left := settled - loop.time()) > 0 and await feed.changed(
        min(SETTLE_QUIET_SECONDS, left)
    ):
        pass


# The loop of requests served without a lasting one


class LoopThread:
    """An event loop running in a daemon thread for the life of the process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="log polls", daemon=True)
        self.thread.start()

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the loop and its feeds (they end once their loop is closed)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


_own_loop: LoopThread | None = None
_own_loop_lock = threading.Lock()


def own_loop() -> LoopThread:
    global _own_loop
    with _own_loop_lock:
        if _own_loop is None:
            _own_loop = LoopThread()
        return _own_loop


async def in_hub_loop(coroutine: Coroutine[Any, Any, T], *, lasting_loop: bool) -> T:
    """Await `coroutine` in the loop whose hub polls should use: the running one where it
    lasts beyond the request (`lasting_loop`, an ASGI server's), else this module's own."""
    if lasting_loop:
        return await coroutine
    return await own_loop().run(coroutine)


__all__ = ["Cursor", "LoopThread", "Polled", "in_hub_loop", "own_loop", "poll"]
