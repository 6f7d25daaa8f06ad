"""One remote log stream per container, shared by every viewer of it in this process.

The first subscriber to a container starts a feed: a thread that opens the remote stream,
reads it, cuts it into lines and hands batches to the event loop. Every subscriber has its own
bounded queue; when a viewer is too slow its oldest waiting lines are dropped and counted
(`skipped`), so a slow browser costs a bounded amount of memory and never slows the others. The
last subscriber to leave stops the feed, which closes the remote stream.

Lines travel as (ts, json) pairs, encoded once in the feed's thread and shared by every queue.
"""

import asyncio
import contextlib
import json
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from typing import Protocol

from django.db import connections

from ..clients.ssh import SSHError
from .lines import LineSplitter

logger = logging.getLogger(__name__)

# Lines a subscriber may have waiting beyond its initial tail before the oldest are dropped.
QUEUE_LINES = 2000
# Lines of a container kept for a viewer who joins a stream that is already running.
HISTORY_LINES = 5000
# How long a read waits before the feed looks at whether it should stop.
READ_WAIT_SECONDS = 0.25
# Batches handed to the event loop and not yet taken; past this the reader waits (and the
# remote side with it, through SSH flow control) instead of piling up work for the loop.
BATCHES_IN_FLIGHT = 8
DIAGNOSTIC_LINES = 8

Line = tuple[str | None, str]


class Source(Protocol):
    """A remote log stream: what `open_remote_logs` returns."""

    def read(self, timeout: float) -> tuple[bytes, bytes]: ...

    @property
    def finished(self) -> bool: ...

    def outcome(self, diagnostics: list[str]) -> tuple[str, str]: ...

    def close(self) -> None: ...


Opener = Callable[[int], Source]


def encode(line: dict) -> Line:
    return line["ts"], json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def status(state: str, message: str = "") -> dict:
    return {"type": "status", "state": state, "message": message}


class Subscription:
    """One viewer's share of a feed: waiting lines, the count dropped, status changes."""

    def __init__(self, feed: "Feed", limit: int, notify: Callable[[], None]) -> None:
        self.feed = feed
        self.key = feed.key
        self.limit = limit
        self._lines: deque[Line] = deque(maxlen=limit)
        self.skipped = 0
        self.statuses: list[dict] = []
        self._notify = notify

    def __len__(self) -> int:
        return len(self._lines)

    def offer(self, lines: list[Line]) -> None:
        over = len(self._lines) + len(lines) - self.limit
        if over > 0:
            self.skipped += over  # the deque drops its oldest lines itself
        self._lines.extend(lines)
        self._notify()

    def offer_status(self, message: dict) -> None:
        self.statuses.append(message)
        self._notify()

    def take(self, count: int) -> tuple[int, list[Line]]:
        """(lines dropped just before these, up to `count` waiting lines)."""
        queue = self._lines
        if count >= len(queue):
            lines = list(queue)
            queue.clear()
        else:
            lines = [queue.popleft() for _ in range(count)]
        skipped, self.skipped = self.skipped, 0
        return skipped, lines

    def take_statuses(self) -> list[dict]:
        statuses, self.statuses = self.statuses, []
        return statuses


class Feed:
    """The reader of one container's remote stream, and the subscriptions it serves."""

    def __init__(self, hub: "LogHub", key: Hashable, opener: Opener, tail: int) -> None:
        self.hub = hub
        self.key = key
        self.tail = tail
        self._opener = opener
        self._loop = asyncio.get_running_loop()
        self.subscriptions: set[Subscription] = set()
        self.history: deque[Line] = deque(maxlen=HISTORY_LINES)
        self.status: dict | None = None
        self._stop = threading.Event()
        self._slots = threading.Semaphore(BATCHES_IN_FLIGHT)
        self.thread = threading.Thread(target=self._run, name=f"logs {key}", daemon=True)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    # In the event loop

    def _deliver(self, lines: list[Line]) -> None:
        self._slots.release()
        self.history.extend(lines)
        for subscription in self.subscriptions:
            subscription.offer(lines)

    def _set_status(self, message: dict) -> None:
        self.status = message
        for subscription in self.subscriptions:
            subscription.offer_status(message)

    # In the feed's thread

    def _call(self, function, *args) -> bool:
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop is closed: the process is ending
            self._stop.set()
            return False
        return True

    def _post_lines(self, lines: list[Line]) -> None:
        while not self._slots.acquire(timeout=READ_WAIT_SECONDS):
            if self._stop.is_set():
                return
        if not self._call(self._deliver, lines):
            self._slots.release()

    def _run(self) -> None:
        source = None
        try:
            source = self._opener(self.tail)
            if self._stop.is_set():
                return
            self._call(self._set_status, status("following"))
            state, message = self._follow(source)
            if not self._stop.is_set():
                self._call(self._set_status, status(state, message))
        except SSHError as error:
            self._call(self._set_status, status("error", str(error)))
        except Exception as error:
            logger.exception("Following the log of %s failed", self.key)
            self._call(self._set_status, status("error", f"Following the log failed: {error}"))
        finally:
            if source is not None:
                with contextlib.suppress(Exception):
                    source.close()
            # Opening a session may have used the database (host-key pinning) in this thread.
            connections.close_all()
            self._call(self.hub._feed_ended, self)

    def _follow(self, source: Source) -> tuple[str, str]:
        out, err = LineSplitter("stdout"), LineSplitter("stderr")
        diagnostics: deque[str] = deque(maxlen=DIAGNOSTIC_LINES)
        while not self._stop.is_set():
            stdout, stderr = source.read(READ_WAIT_SECONDS)
            if not stdout and not stderr:
                if source.finished:
                    break
                continue
            self._publish(out.feed(stdout) if stdout else [], err.feed(stderr), diagnostics)
        if self._stop.is_set():
            return "ended", ""
        self._publish(out.feed(b"", final=True), err.feed(b"", final=True), diagnostics)
        return source.outcome(list(diagnostics))

    def _publish(self, stdout: list[dict], stderr: list[dict], diagnostics: deque[str]) -> None:
        lines = [encode(line) for line in stdout]
        if stderr:
            for line in stderr:
                # With --timestamps every line of the container is stamped; an unstamped line
                # on stderr is docker's (or sudo's) own, kept to explain a failure.
                if line["ts"] is None:
                    diagnostics.append(line["text"])
                else:
                    lines.append(encode(line))
            if stdout:
                lines.sort(key=lambda line: line[0] or "")
        if lines:
            self._post_lines(lines)


class LogHub:
    """The feeds of one event loop (one per process when served), by container key."""

    def __init__(self) -> None:
        self.feeds: dict[Hashable, Feed] = {}

    def subscribe(
        self, key: Hashable, opener: Opener, *, tail: int, notify: Callable[[], None]
    ) -> Subscription:
        """A subscription to the container `key`: its last `tail` lines, then new ones.

        `opener(tail)` opens the remote stream (blocking, called in the feed's thread) when no
        feed of that container is running. `notify` is called when lines or a status arrive.
        A viewer joining a running feed gets the history it kept (the first viewer's tail and
        everything since, up to HISTORY_LINES).
        """
        feed = self.feeds.get(key)
        start = feed is None or feed.stopping
        if start:
            feed = Feed(self, key, opener, tail)
            self.feeds[key] = feed
        subscription = Subscription(feed, QUEUE_LINES + tail, notify)
        if tail and feed.history:
            subscription.offer(list(feed.history)[-tail:])
        if feed.status is not None:
            subscription.offer_status(feed.status)
        feed.subscriptions.add(subscription)
        if start:
            feed.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        feed = subscription.feed
        feed.subscriptions.discard(subscription)
        if not feed.subscriptions:
            feed.stop()
            if self.feeds.get(feed.key) is feed:
                del self.feeds[feed.key]

    def _feed_ended(self, feed: Feed) -> None:
        if self.feeds.get(feed.key) is feed:
            del self.feeds[feed.key]


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LogHub]" = weakref.WeakKeyDictionary()


def get_hub() -> LogHub:
    """The hub of the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = LogHub()
    return hub
