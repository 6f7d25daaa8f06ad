"""The log hub: one reader per container shared by its viewers, bounded queues, clean stops,
and feeds that polls keep without subscribing.

The remote stream is a stand-in here (the real one is in test_log_stream.py): chunks put in a
queue by the test are what the feed's thread reads.
"""

import asyncio
import json
import queue
import threading

import pytest

from deployments.clients.ssh import SSHError
from deployments.logs import hub as hub_module
from deployments.logs.hub import QUEUE_LINES, BoundedLines, LogHub, get_hub
from deployments.logs.polls import LoopThread

TIMEOUT = 5


class FakeSource:
    def __init__(self) -> None:
        self.chunks: queue.Queue = queue.Queue()
        self.closed = threading.Event()
        self.done = False
        self.outcome_value = ("ended", "The container stopped.")
        self.diagnostics: list[str] | None = None

    def put(self, stdout: bytes = b"", stderr: bytes = b"") -> None:
        self.chunks.put((stdout, stderr))

    def end(self) -> None:
        self.chunks.put(None)

    def read(self, timeout: float) -> tuple[bytes, bytes]:
        try:
            item = self.chunks.get(timeout=timeout)
        except queue.Empty:
            return b"", b""
        if item is None:
            self.done = True
            return b"", b""
        return item

    @property
    def finished(self) -> bool:
        return self.done

    def outcome(self, diagnostics: list[str]) -> tuple[str, str]:
        self.diagnostics = diagnostics
        return self.outcome_value

    def close(self) -> None:
        self.closed.set()


class Opener:
    def __init__(self, source: FakeSource | None = None, error: Exception | None = None):
        self.source = source or FakeSource()
        self.error = error
        self.tails: list[int] = []

    def __call__(self, tail: int) -> FakeSource:
        self.tails.append(tail)
        if self.error is not None:
            raise self.error
        return self.source


class Viewer:
    """A subscriber that records when it is notified."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def notify(self) -> None:
        self.event.set()


def stamped(*texts: str, second: int = 0) -> bytes:
    return b"".join(
        f"2025-01-31T12:00:{second:02d}.{i:09d}Z {text}\n".encode() for i, text in enumerate(texts)
    )


async def until(predicate, what: str, timeout: float = TIMEOUT):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"Timed out waiting for {what}.")
        await asyncio.sleep(0.01)


def texts(lines) -> list[str]:
    return [json.loads(encoded)["text"] for _, encoded in lines]


async def take_all(subscription, count: int) -> list[str]:
    got: list[str] = []

    def enough():
        got.extend(texts(subscription.take(10_000)[1]))
        return len(got) >= count

    await until(enough, f"{count} lines")
    return got


@pytest.mark.asyncio
async def test_two_viewers_of_a_container_share_one_reader_and_both_get_every_line():
    hub, opener = LogHub(), Opener()
    first = hub.subscribe(("s", "c"), opener, tail=10, notify=Viewer().notify)
    second = hub.subscribe(("s", "c"), opener, tail=10, notify=Viewer().notify)

    opener.source.put(stamped("one", "two"))

    assert await take_all(first, 2) == ["one", "two"]
    assert await take_all(second, 2) == ["one", "two"]
    assert opener.tails == [10]
    assert len(hub.feeds) == 1
    hub.unsubscribe(first)
    hub.unsubscribe(second)


@pytest.mark.asyncio
async def test_the_status_goes_to_following_once_the_stream_is_open():
    hub, opener = LogHub(), Opener()
    viewer = Viewer()
    subscription = hub.subscribe("k", opener, tail=0, notify=viewer.notify)

    await until(lambda: subscription.statuses, "a status")

    assert subscription.take_statuses() == [{"type": "status", "state": "following", "message": ""}]
    assert viewer.event.is_set()
    hub.unsubscribe(subscription)


@pytest.mark.asyncio
async def test_the_last_viewer_leaving_closes_the_remote_stream_and_forgets_the_feed():
    hub, opener = LogHub(), Opener()
    first = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)
    second = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)
    await until(lambda: first.statuses, "the stream to open")
    feed = first.feed

    hub.unsubscribe(first)
    await asyncio.sleep(0.4)
    assert not opener.source.closed.is_set()

    hub.unsubscribe(second)
    await until(opener.source.closed.is_set, "the stream to close")
    assert hub.feeds == {}
    await asyncio.to_thread(feed.thread.join, TIMEOUT)
    assert not feed.thread.is_alive()


@pytest.mark.asyncio
async def test_a_viewer_after_the_last_one_left_starts_a_new_reader():
    hub, opener = LogHub(), Opener()
    first = hub.subscribe("k", opener, tail=5, notify=Viewer().notify)
    hub.unsubscribe(first)
    second = hub.subscribe("k", opener, tail=7, notify=Viewer().notify)

    await until(lambda: len(opener.tails) == 2, "a second opening")

    assert opener.tails == [5, 7]
    hub.unsubscribe(second)


@pytest.mark.asyncio
async def test_a_late_viewer_gets_the_history_the_feed_kept_up_to_its_tail():
    hub, opener = LogHub(), Opener()
    first = hub.subscribe("k", opener, tail=100, notify=Viewer().notify)
    opener.source.put(stamped(*(f"line {i}" for i in range(20))))
    await take_all(first, 20)

    late = hub.subscribe("k", opener, tail=3, notify=Viewer().notify)
    opener.source.put(stamped("new"))

    assert await take_all(late, 4) == ["line 17", "line 18", "line 19", "new"]
    hub.unsubscribe(first)
    hub.unsubscribe(late)


@pytest.mark.asyncio
async def test_a_viewer_that_does_not_read_drops_its_oldest_lines_and_counts_them():
    hub, opener = LogHub(), Opener()
    slow = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)
    fast = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)
    total = QUEUE_LINES * 3
    fast_lines = []
    for start in range(0, total, 500):
        opener.source.put(stamped(*(f"n{i}" for i in range(start, start + 500))))
        fast_lines += await take_all(fast, 500)

    await until(lambda: len(slow) + slow.skipped == total, "every line offered to the slow one")

    assert len(fast_lines) == total
    assert len(slow) == QUEUE_LINES
    skipped, lines = slow.take(10)
    assert skipped == total - QUEUE_LINES
    assert texts(lines)[0] == f"n{total - QUEUE_LINES}"
    assert slow.take(10)[0] == 0
    hub.unsubscribe(slow)
    hub.unsubscribe(fast)


@pytest.mark.asyncio
async def test_stdout_and_stderr_of_one_read_are_merged_in_time_order():
    hub, opener = LogHub(), Opener()
    subscription = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)

    opener.source.put(
        b"2025-01-31T12:00:01Z out-1\n2025-01-31T12:00:03Z out-3\n",
        b"2025-01-31T12:00:02Z err-2\n",
    )

    await until(lambda: len(subscription) == 3, "three lines")
    _, lines = subscription.take(3)
    assert [(json.loads(e)["text"], json.loads(e)["stream"]) for _, e in lines] == [
        ("out-1", "stdout"),
        ("err-2", "stderr"),
        ("out-3", "stdout"),
    ]
    hub.unsubscribe(subscription)


@pytest.mark.asyncio
async def test_a_stream_that_ends_sends_its_last_lines_then_its_outcome():
    hub, opener = LogHub(), Opener()
    subscription = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)
    opener.source.put(stamped("last words") + b"2025-01-31T12:00:09Z no newline")
    opener.source.put(b"", b"Error: something docker said\n")
    opener.source.end()

    await until(lambda: any(s["state"] == "ended" for s in subscription.statuses), "the end")

    assert texts(subscription.take(10)[1]) == ["last words", "no newline"]
    assert subscription.take_statuses()[-1] == {
        "type": "status",
        "state": "ended",
        "message": "The container stopped.",
    }
    assert opener.source.diagnostics == ["Error: something docker said"]
    await until(lambda: hub.feeds == {}, "the feed to be forgotten")
    assert opener.source.closed.is_set()
    hub.unsubscribe(subscription)


@pytest.mark.asyncio
async def test_a_failure_to_connect_is_an_error_status_with_the_reason():
    hub = LogHub()
    opener = Opener(
        error=SSHError("Cannot reach gpu-1:22: connection refused.", kind="unreachable")
    )
    subscription = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)

    await until(lambda: subscription.statuses, "a status")

    assert subscription.take_statuses() == [
        {
            "type": "status",
            "state": "error",
            "message": "Cannot reach gpu-1:22: connection refused.",
        }
    ]
    await until(lambda: hub.feeds == {}, "the feed to be forgotten")
    hub.unsubscribe(subscription)


@pytest.mark.asyncio
async def test_an_unexpected_failure_is_an_error_status_too():
    hub = LogHub()
    subscription = hub.subscribe(
        "k", Opener(error=RuntimeError("boom")), tail=0, notify=Viewer().notify
    )

    await until(lambda: subscription.statuses, "a status")

    (message,) = subscription.take_statuses()
    assert message["state"] == "error"
    assert "boom" in message["message"]
    hub.unsubscribe(subscription)


@pytest.mark.asyncio
async def test_a_reader_whose_loop_does_not_take_batches_waits_instead_of_piling_them_up(
    monkeypatch,
):
    monkeypatch.setattr(hub_module, "BATCHES_IN_FLIGHT", 2)
    hub, opener = LogHub(), Opener()
    subscription = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)
    await until(lambda: subscription.statuses, "the stream to open")
    for i in range(10):
        opener.source.put(stamped(f"batch {i}"))

    # The loop is blocked (no await) while the reader runs: it may hand over two batches.
    threading.Event().wait(1.0)
    waiting = opener.source.chunks.qsize()

    assert waiting >= 7
    await until(lambda: len(subscription) == 10, "every batch once the loop runs")
    hub.unsubscribe(subscription)


@pytest.mark.asyncio
async def test_a_reader_holds_back_while_every_viewer_is_behind_then_goes_on(monkeypatch):
    monkeypatch.setattr(hub_module, "ROOM_WAIT_SECONDS", 1.0)
    hub, opener = LogHub(), Opener()
    subscription = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)
    half = subscription.high_water
    opener.source.put(stamped(*(f"a{i}" for i in range(half))))
    await until(lambda: len(subscription) == half, "the first half")

    opener.source.put(stamped("held back"))
    await asyncio.sleep(0.4)
    assert len(subscription) == half  # read, and waiting for room

    subscription.take(1)
    await until(lambda: len(subscription) == half, "the held line once there is room")
    assert texts(subscription.take(half)[1])[-1] == "held back"
    hub.unsubscribe(subscription)


@pytest.mark.asyncio
async def test_a_reader_stops_holding_back_for_a_viewer_that_stays_behind(monkeypatch):
    monkeypatch.setattr(hub_module, "ROOM_WAIT_SECONDS", 0.2)
    hub, opener = LogHub(), Opener()
    subscription = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)
    total = subscription.limit * 2
    for start in range(0, total, 1000):
        opener.source.put(stamped(*(f"n{i}" for i in range(start, start + 1000))))

    await until(lambda: len(subscription) + subscription.skipped == total, "every line")

    assert len(subscription) == subscription.limit
    assert subscription.skipped == total - subscription.limit
    hub.unsubscribe(subscription)


def test_bounded_lines_drop_the_oldest_past_either_bound():
    queue = BoundedLines(max_lines=3, max_bytes=10)

    assert queue.extend([("t", "aa"), ("t", "bb")], 4) == 0
    assert queue.extend([("t", "cccccccc")], 8) == 1  # 12 bytes: "aa" goes
    assert [e for _, e in queue.lines] == ["bb", "cccccccc"]
    assert queue.size == 10
    assert queue.extend([("t", "d"), ("t", "e")], 2) == 1  # 12 bytes again
    assert [e for _, e in queue.take(2)] == ["cccccccc", "d"]
    assert queue.size == 1


def test_a_single_line_larger_than_the_byte_bound_is_still_kept():
    queue = BoundedLines(max_lines=3, max_bytes=4)

    assert queue.extend([("t", "x" * 10)], 10) == 0
    assert len(queue) == 1


@pytest.mark.asyncio
async def test_long_lines_fill_a_queue_by_bytes_before_its_line_count(monkeypatch):
    monkeypatch.setattr(hub_module, "QUEUE_BYTES", 200_000)
    monkeypatch.setattr(hub_module, "ROOM_WAIT_SECONDS", 0.05)
    hub, opener = LogHub(), Opener()
    subscription = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)
    line = "y" * 10_000
    for _ in range(10):
        opener.source.put(stamped(*([line] * 10)))

    await until(lambda: len(subscription) + subscription.skipped == 100, "every line")

    assert len(subscription) < 21
    assert subscription._lines.size <= 200_000
    hub.unsubscribe(subscription)


# Polls: a feed kept without subscribers (deployments/logs/polls.py)


@pytest.mark.asyncio
async def test_a_feed_kept_by_polls_outlives_its_last_subscriber_until_the_polls_stop():
    hub, opener = LogHub(), Opener()
    subscription = hub.subscribe("k", opener, tail=0, notify=Viewer().notify)
    feed = hub.keep("k", opener, tail=0, seconds=0.5)

    assert feed is subscription.feed
    hub.unsubscribe(subscription)
    await asyncio.sleep(0.3)
    assert hub.keep("k", opener, tail=0, seconds=0.5) is feed
    await asyncio.sleep(0.3)
    assert not opener.source.closed.is_set()

    await until(opener.source.closed.is_set, "the stream to close once no poll keeps it")
    assert hub.feeds == {}
    assert opener.tails == [0]


@pytest.mark.asyncio
async def test_a_feed_only_polls_keep_reads_on_without_waiting_for_room(monkeypatch):
    monkeypatch.setattr(hub_module, "ROOM_WAIT_SECONDS", 5.0)
    hub, opener = LogHub(), Opener()
    feed = hub.keep("k", opener, tail=0, seconds=10)
    opener.source.put(stamped(*(f"n{i}" for i in range(5 * hub_module.BATCH_LINES))))

    # Nobody to fall behind: five batches go through without the reader holding back.
    await until(lambda: feed.received == 5 * hub_module.BATCH_LINES, "every batch", timeout=2)
    feed.stop()


@pytest.mark.asyncio
async def test_lines_after_a_count_are_the_newer_ones_and_dropped_ones_are_counted(monkeypatch):
    monkeypatch.setattr(hub_module, "HISTORY_LINES", 4)
    hub, opener = LogHub(), Opener()
    feed = hub.keep("k", opener, tail=0, seconds=10)
    opener.source.put(stamped(*(f"n{i}" for i in range(6))))
    await until(lambda: feed.received == 6, "six lines")

    skipped, lines = feed.lines_after(3)
    assert (skipped, texts(lines)) == (0, ["n3", "n4", "n5"])
    skipped, lines = feed.lines_after(0)
    assert (skipped, texts(lines)) == (2, ["n2", "n3", "n4", "n5"])
    assert feed.lines_after(6) == (0, [])
    assert feed.lines_after(99) == (0, [])
    feed.stop()


@pytest.mark.asyncio
async def test_a_feed_that_ended_by_itself_still_answers_polls_for_a_while(monkeypatch):
    monkeypatch.setattr(hub_module, "ENDED_KEPT_SECONDS", 0.3)
    hub, opener = LogHub(), Opener()
    feed = hub.keep("k", opener, tail=0, seconds=10)
    opener.source.put(stamped("last"))
    opener.source.end()
    await until(lambda: "k" not in hub.feeds, "the feed to end")

    assert hub.keep("k", opener, tail=0, seconds=10) is feed
    assert feed.status["state"] == "ended"
    await until(lambda: hub.ended == {}, "the ended feed to be forgotten")
    assert hub.keep("k", opener, tail=0, seconds=10) is not feed
    await until(lambda: len(opener.tails) == 2, "a new opening")


def test_a_feed_whose_event_loop_closed_stops_and_closes_its_stream():
    loop, opener = LoopThread(), Opener()

    async def keep():
        return get_hub().keep("k", opener, tail=0, seconds=60)

    feed = asyncio.run_coroutine_threadsafe(keep(), loop.loop).result(TIMEOUT)
    assert opener.source.closed.wait(0.3) is False

    loop.close()

    assert opener.source.closed.wait(TIMEOUT)
    feed.thread.join(TIMEOUT)
    assert not feed.thread.is_alive()
