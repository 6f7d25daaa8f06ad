"""One remote log stream per container, shared by every viewer of it in this process.

The first subscriber to a container starts a feed: a thread that opens the remote stream,
reads it, cuts it into lines and hands batches to the event loop. Every subscriber has its own
bounded queue. While no subscriber has room the reader holds back, for a second at most (the
remote side waits meanwhile, through SSH flow control); past that, a viewer that is still behind
has its oldest waiting lines dropped and counted (`skipped`). So a slow browser costs a bounded
amount of memory and never slows the others for long. The last subscriber to leave stops the
feed, which closes the remote stream, unless a poll keeps it (`LogHub.keep`): a browser that
polls holds no subscription, it reads the lines the feed kept after a cursor.

Lines travel as (ts, json) pairs, encoded once in the feed's thread and shared by every queue.
Before a line is encoded, the feed masks the secrets of the container's stack in it (redact.py):
every way a line leaves the hub (subscriptions, the history, polls) starts from there.
"""

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from json.encoder import encode_basestring
from typing import Protocol

from django.db import connections

from ..clients.ssh import SSHError
from .lines import LineSplitter
from .redact import Masker, masker_for

logger = logging.getLogger(__name__)

# Lines a subscriber may have waiting beyond its initial tail before the oldest are dropped,
# and the most bytes of them (long lines fill it before the count does).
QUEUE_LINES = 5000
QUEUE_BYTES = 8 << 20
# When no subscriber has room for more batches, the reader holds back for up to this long;
# the remote side waits meanwhile, through SSH flow control. A viewer that is late by a
# moment (a busy machine) loses nothing; one that stays behind is skipped ahead.
ROOM_WAIT_SECONDS = 1.0
# Lines of a container kept for a viewer who joins a stream that is already running.
HISTORY_LINES = 5000
HISTORY_BYTES = 8 << 20
# How long a read waits before the feed looks at whether it should stop.
READ_WAIT_SECONDS = 0.25
# Batches handed to the event loop and not yet taken, and the lines in one; past this the
# reader waits (and the remote side with it) instead of piling up work for the loop.
BATCHES_IN_FLIGHT = 2
BATCH_LINES = 1000
DIAGNOSTIC_LINES = 8
# How long a feed that ended by itself (the container stopped, the server could not be reached)
# still answers polls, so that polling viewers of it do not open a session on every poll.
ENDED_KEPT_SECONDS = 10

Line = tuple[str | None, str]


class Source(Protocol):
    """A remote log stream: what `open_remote_logs` returns."""

    def read(self, timeout: float) -> tuple[bytes, bytes]: ...

    @property
    def finished(self) -> bool: ...

    def outcome(self, diagnostics: list[str]) -> tuple[str, str]: ...

    def close(self) -> None: ...


Opener = Callable[[int], Source]
# The masker of a container's lines, by its key; called in the feed's thread (it may read the
# database).
MaskerFor = Callable[[Hashable], Masker]


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode(line: dict) -> Line:
    """(ts, the line as JSON). A plain line, most of them, is put together by hand: a
    JSONEncoder call costs more than the rest of a line's handling."""
    ts = line["ts"]
    if len(line) == 3:
        return ts, (
            ('{"ts":"' + ts + '","stream":"' if ts else '{"ts":null,"stream":"')
            + line["stream"]
            + '","text":'
            + encode_basestring(line["text"])
            + "}"
        )
    return ts, _dumps(line)


def service_prefix(service: str) -> str:
    """What an encoded line of a stack's view starts with: its service, as the first key."""
    return '{"service":' + encode_basestring(service) + ","


def with_prefix(lines: list[Line], prefix: str) -> list[Line]:
    """Encoded lines with `prefix` (a service_prefix) put in front of their other keys."""
    return [(ts, prefix + encoded[1:]) for ts, encoded in lines]


def status(state: str, message: str = "") -> dict:
    return {"type": "status", "state": state, "message": message}


def size_of(lines: list[Line]) -> int:
    return sum(len(encoded) for _, encoded in lines)


class BoundedLines:
    """Lines in order, at most `max_lines` of them and `max_bytes` of JSON: adding more
    drops the oldest. The strings are shared with other queues; the bound is on what this
    one keeps alive."""

    def __init__(self, max_lines: int, max_bytes: int) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.lines: deque[Line] = deque()
        self.size = 0

    def __len__(self) -> int:
        return len(self.lines)

    def extend(self, lines: list[Line], size: int) -> int:
        """Add `lines` (`size` bytes); how many old lines were dropped."""
        queue = self.lines
        queue.extend(lines)
        self.size += size
        dropped = 0
        while len(queue) > self.max_lines or (self.size > self.max_bytes and len(queue) > 1):
            self.size -= len(queue.popleft()[1])
            dropped += 1
        return dropped

    def take(self, count: int) -> list[Line]:
        """The oldest `count` lines, removed."""
        queue = self.lines
        if count >= len(queue):
            lines = list(queue)
            queue.clear()
            self.size = 0
        else:
            lines = [queue.popleft() for _ in range(count)]
            self.size -= size_of(lines)
        return lines

    def last(self, count: int) -> list[Line]:
        return list(self.lines)[-count:] if count else []


class Subscription:
    """One viewer's share of a feed: waiting lines, the count dropped, status changes."""

    def __init__(self, feed: "Feed", limit: int, notify: Callable[[], None]) -> None:
        self.feed = feed
        self.key = feed.key
        self.limit = limit
        self.high_water = max(limit - BATCHES_IN_FLIGHT * BATCH_LINES, limit // 2)
        self._lines = BoundedLines(limit, QUEUE_BYTES)
        self.skipped = 0
        self.statuses: list[dict] = []
        self._notify = notify

    def __len__(self) -> int:
        return len(self._lines)

    @property
    def has_room(self) -> bool:
        queue = self._lines
        return len(queue) < self.high_water and queue.size * 2 < queue.max_bytes

    def offer(self, lines: list[Line], size: int) -> None:
        self.skipped += self._lines.extend(lines, size)
        self._notify()

    def offer_status(self, message: dict) -> None:
        self.statuses.append(message)
        self._notify()

    def take(self, count: int) -> tuple[int, list[Line]]:
        """(lines dropped just before these, up to `count` waiting lines)."""
        lines = self._lines.take(count)
        skipped, self.skipped = self.skipped, 0
        if self.has_room:
            self.feed.room.set()
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
        self.history = BoundedLines(HISTORY_LINES, HISTORY_BYTES)
        # Lines delivered since the feed started, and a name of this feed: what a poll's
        # cursor is made of (a cursor of another feed of the container means nothing here).
        self.received = 0
        self.token = secrets.token_hex(6)
        self.started_at = self._loop.time()
        self.status: dict | None = None
        # Set in the feed's thread before anything is read.
        self.masker: Masker | None = None
        # Why the feed failed, where it did: a poll shows the reason only of an SSHError.
        self.error: Exception | None = None
        # Loop time until which polls keep the feed running without subscribers.
        self.kept_until = 0.0
        self._lease: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future] = []
        self._stop = threading.Event()
        self._slots = threading.Semaphore(BATCHES_IN_FLIGHT)
        # Set while some subscriber has room (see ROOM_WAIT_SECONDS).
        self.room = threading.Event()
        self.room.set()
        self.thread = threading.Thread(target=self._run, name=f"logs {key}", daemon=True)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    # In the event loop

    @property
    def kept(self) -> bool:
        return self.kept_until > self._loop.time()

    def keep_for(self, seconds: float) -> None:
        """Keep the feed running `seconds` more, with or without subscribers."""
        self.kept_until = max(self.kept_until, self._loop.time() + seconds)
        if self._lease is None:
            self._lease = self._loop.call_later(seconds, self._lease_over)

    def _lease_over(self) -> None:
        # One timer per feed however often polls come: it looks again when it is due.
        left = self.kept_until - self._loop.time()
        self._lease = self._loop.call_later(left, self._lease_over) if left > 0 else None
        if self._lease is None:
            self.hub._released(self)

    def lines_after(self, count: int) -> tuple[int, list[Line]]:
        """(lines no longer kept, the kept lines) after the first `count` the feed received."""
        first_kept = self.received - len(self.history)
        skipped = max(first_kept - count, 0)
        return skipped, self.history.last(max(self.received - max(count, first_kept), 0))

    async def changed(self, timeout: float) -> bool:
        """Whether lines or a status came within `timeout` seconds."""
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        return True

    def _changed(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _deliver(self, lines: list[Line], size: int) -> None:
        self._slots.release()
        self.history.extend(lines, size)
        self.received += len(lines)
        # With no subscriber (only polls keep the feed) nobody is behind: read on.
        room = not self.subscriptions
        for subscription in self.subscriptions:
            subscription.offer(lines, size)
            room = room or subscription.has_room
        if room:
            self.room.set()
        self._changed()

    def _set_status(self, message: dict) -> None:
        self.status = message
        for subscription in self.subscriptions:
            subscription.offer_status(message)
        self._changed()

    # In the feed's thread

    def _call(self, function, *args) -> bool:
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop is closed: the process is ending
            self._stop.set()
            return False
        return True

    def _post_lines(self, lines: list[Line]) -> None:
        for start in range(0, len(lines), BATCH_LINES):
            batch = lines[start : start + BATCH_LINES]
            # Room is granted for one batch: the loop grants it again once that batch is in
            # the queues (or a viewer took lines) and some viewer still has room.
            self.room.wait(ROOM_WAIT_SECONDS)
            self.room.clear()
            while not self._slots.acquire(timeout=READ_WAIT_SECONDS):
                if self._stop.is_set():
                    return
            if not self._call(self._deliver, batch, size_of(batch)):
                self._slots.release()
                return

    def _status(self, state: str, message: str = "") -> dict:
        """A status whose message is masked too: docker's own lines may quote the log."""
        if message and self.masker is not None:
            message = self.masker.text(message)
        return status(state, message)

    def _run(self) -> None:
        source = None
        try:
            # Before the stream opens: without a masker, no line is read.
            self.masker = self.hub.masker_for(self.key)
            connections.close_all()
            source = self._opener(self.tail)
            if self._stop.is_set():
                return
            self._call(self._set_status, status("following"))
            state, message = self._follow(source)
            if not self._stop.is_set():
                self._call(self._set_status, self._status(state, message))
        except SSHError as error:
            self.error = error
            self._call(self._set_status, self._status("error", str(error)))
        except Exception as error:
            logger.exception("Following the log of %s failed", self.key)
            self.error = error
            message = f"Following the log failed: {error}"
            self._call(self._set_status, self._status("error", message))
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
            if self._loop.is_closed():
                # The loop the viewers were served on has ended (a test's): nobody is left.
                self._stop.set()
                break
            stdout, stderr = source.read(READ_WAIT_SECONDS)
            if not stdout and not stderr:
                if source.finished:
                    break
                continue
            self._publish(out.feed(stdout) if stdout else [], err.feed(stderr), diagnostics)
            # Hand the GIL to the event loop now rather than when the interpreter forces it
            # (every 5 ms): under a flood, waiting for it is what delays sends and acks.
            time.sleep(0)
        if self._stop.is_set():
            return "ended", ""
        self._publish(out.feed(b"", final=True), err.feed(b"", final=True), diagnostics)
        return source.outcome(list(diagnostics))

    def _publish(self, stdout: list[dict], stderr: list[dict], diagnostics: deque[str]) -> None:
        masker = self.masker
        if masker.refresh():
            # The stack's secrets were read again: no connection is kept between reads.
            connections.close_all()
        mask = masker.line
        lines = [encode(mask(line)) for line in stdout]
        if stderr:
            for line in stderr:
                # With --timestamps every line of the container is stamped; an unstamped line
                # on stderr is docker's (or sudo's) own, kept to explain a failure.
                if line["ts"] is None:
                    diagnostics.append(line["text"])
                else:
                    lines.append(encode(mask(line)))
            if stdout:
                lines.sort(key=lambda line: line[0] or "")
        if lines:
            self._post_lines(lines)


class LogHub:
    """The feeds of one event loop (one per process when served), by container key."""

    def __init__(self, masker_for: MaskerFor = masker_for) -> None:
        self.masker_for = masker_for
        self.feeds: dict[Hashable, Feed] = {}
        # Feeds polls kept that ended by themselves, for ENDED_KEPT_SECONDS.
        self.ended: dict[Hashable, Feed] = {}

    def subscribe(
        self, key: Hashable, opener: Opener, *, tail: int, notify: Callable[[], None]
    ) -> Subscription:
        """A subscription to the container `key`: its last `tail` lines, then new ones.

        `opener(tail)` opens the remote stream (blocking, called in the feed's thread) when no
        feed of that container is running. `notify` is called when lines or a status arrive.
        A viewer joining a running feed gets the history it kept (the first viewer's tail and
        everything since, up to HISTORY_LINES and HISTORY_BYTES).
        """
        feed = self.feeds.get(key)
        start = feed is None or feed.stopping
        if start:
            feed = self._new_feed(key, opener, tail)
        subscription = Subscription(feed, QUEUE_LINES + tail, notify)
        if tail and feed.history:
            history = feed.history.last(tail)
            subscription.offer(history, size_of(history))
        if feed.status is not None:
            subscription.offer_status(feed.status)
        feed.subscriptions.add(subscription)
        feed.room.set()
        if start:
            feed.start()
        return subscription

    def keep(self, key: Hashable, opener: Opener, *, tail: int, seconds: float) -> Feed:
        """The feed of the container `key`, kept running for `seconds` more even without
        subscribers: what a poll holds instead of a subscription. Started as `subscribe`
        starts one where none runs; where one ended by itself lately, that one (its lines and
        its final status), so that polls do not open a session each."""
        feed = self.feeds.get(key)
        if feed is None or feed.stopping:
            feed = self.ended.get(key)
            if feed is not None:
                return feed
            feed = self._new_feed(key, opener, tail)
            feed.start()
        feed.keep_for(seconds)
        return feed

    def unsubscribe(self, subscription: Subscription) -> None:
        feed = subscription.feed
        feed.subscriptions.discard(subscription)
        feed.room.set()
        if not feed.subscriptions and not feed.kept:
            self._stop(feed)

    def _new_feed(self, key: Hashable, opener: Opener, tail: int) -> Feed:
        feed = Feed(self, key, opener, tail)
        self.feeds[key] = feed
        self.ended.pop(key, None)
        return feed

    def _stop(self, feed: Feed) -> None:
        feed.stop()
        if self.feeds.get(feed.key) is feed:
            del self.feeds[feed.key]

    def _released(self, feed: Feed) -> None:
        """No poll keeps `feed` any more: stopped where no subscriber is left either."""
        if self.feeds.get(feed.key) is feed and not feed.subscriptions:
            self._stop(feed)

    def _feed_ended(self, feed: Feed) -> None:
        if self.feeds.get(feed.key) is not feed:
            return
        del self.feeds[feed.key]
        if feed.kept_until and not feed.stopping:
            self.ended[feed.key] = feed
            asyncio.get_running_loop().call_later(ENDED_KEPT_SECONDS, self._forget_ended, feed)

    def _forget_ended(self, feed: Feed) -> None:
        if self.ended.get(feed.key) is feed:
            del self.ended[feed.key]


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LogHub]" = weakref.WeakKeyDictionary()


def get_hub() -> LogHub:
    """The hub of the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = LogHub()
    return hub
