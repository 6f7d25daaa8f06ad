"""The log websockets over the real ASGI app, sessions and channels-redis: who may connect, the
message protocol, batching, acknowledgements and what a slow viewer costs.

The remote stream is a stand-in here; test_log_stream.py follows real containers over SSH.
"""

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from controlpanel.asgi import application
from deployments.choices import Role
from deployments.consumers import logs as log_consumers
from deployments.logs import hub as hub_module
from deployments.logs.hub import QUEUE_LINES, get_hub
from deployments.models import Service
from testkit.factories import add_member, make_server, make_stack, make_team
from testkit.websockets import in_thread, session_cookie
from tests.test_log_hub import FakeSource, stamped

ORIGIN = b"http://localhost"
TIMEOUT = 10


class Remote:
    """Stands in for open_remote_logs: one FakeSource per container, opened as asked."""

    def __init__(self) -> None:
        self.sources: dict[str, FakeSource] = {}
        self.opened: list[tuple[str, int]] = []

    def __call__(self, server, container: str, tail: int) -> FakeSource:
        self.opened.append((container, tail))
        return self.sources.setdefault(container, FakeSource())

    async def source(self, container: str) -> FakeSource:
        await until(lambda: container in self.sources, f"{container} to be opened")
        return self.sources[container]


@pytest.fixture
def remote(monkeypatch):
    fake = Remote()
    monkeypatch.setattr(log_consumers, "open_remote_logs", fake)
    return fake


@pytest.fixture
def stack(team):
    server = make_server(team)
    stack = make_stack(server)
    Service.objects.create(stack=stack, name="fastgpt", container_name="stack-fastgpt-1")
    return stack


@pytest.fixture
def oneapi(stack):
    return Service.objects.create(stack=stack, name="oneapi", container_name="stack-oneapi-1")


async def until(predicate, what: str, timeout: float = TIMEOUT):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"Timed out waiting for {what}.")
        await asyncio.sleep(0.01)


async def open_socket(path: str, user=None, origin: bytes = ORIGIN):
    headers = [(b"host", b"localhost"), (b"origin", origin)]
    if user is not None:
        headers.append((b"cookie", await in_thread(session_cookie, user)))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected, code


async def follow(path: str, user) -> WebsocketCommunicator:
    communicator, connected, code = await open_socket(path, user)
    assert connected, f"refused with {code}"
    return communicator


async def receive(communicator) -> dict:
    return json.loads(await communicator.receive_from(timeout=TIMEOUT))


async def receive_lines(communicator, count: int, *, ack: bool = True) -> list[dict]:
    """Lines messages until `count` lines came, acknowledging each; statuses are skipped."""
    messages = []
    while sum(len(m["lines"]) for m in messages) < count:
        message = await receive(communicator)
        if message["type"] == "lines":
            messages.append(message)
            if ack:
                await communicator.send_json_to({"type": "ack", "seq": message["seq"]})
    return messages


async def receive_status(communicator, state: str) -> dict:
    while True:
        message = await receive(communicator)
        if message["type"] == "status" and message["state"] == state:
            return message


def texts(messages: list[dict]) -> list[str]:
    return [line["text"] for message in messages for line in message["lines"]]


# Who may connect


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["services", "stacks"])
async def test_an_anonymous_visitor_is_refused_before_the_handshake(stack, oneapi, remote, kind):
    object_id = oneapi.pk if kind == "services" else stack.pk

    communicator, connected, code = await open_socket(f"/ws/{kind}/{object_id}/logs/")

    assert connected is False
    assert code == log_consumers.CLOSE_NOT_LOGGED_IN
    assert remote.opened == []
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["services", "stacks"])
async def test_a_user_of_another_team_is_refused_and_nothing_is_opened(stack, oneapi, remote, kind):
    outsider = await in_thread(lambda: add_member(make_team("Other"), role=Role.OWNER))
    object_id = oneapi.pk if kind == "services" else stack.pk

    communicator, connected, code = await open_socket(f"/ws/{kind}/{object_id}/logs/", outsider)

    assert connected is False
    assert code == log_consumers.CLOSE_NOT_VISIBLE
    assert remote.opened == []
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_unknown_service_is_refused_like_a_hidden_one(viewer, remote):
    communicator, connected, code = await open_socket("/ws/services/999999/logs/", viewer)

    assert connected is False
    assert code == log_consumers.CLOSE_NOT_VISIBLE
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_socket_from_another_origin_is_refused(stack, oneapi, viewer, remote):
    path = f"/ws/services/{oneapi.pk}/logs/"

    communicator, connected, _ = await open_socket(path, viewer, origin=b"https://evil.example")

    assert connected is False
    assert remote.opened == []
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_viewer_of_the_team_may_follow_a_service(stack, oneapi, viewer, remote):
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)

    assert await receive(communicator) == {"type": "status", "state": "connecting", "message": ""}
    assert await receive_status(communicator, "following")
    assert remote.opened == [("stack-oneapi-1", log_consumers.DEFAULT_TAIL)]
    await communicator.disconnect()


# Messages


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_service_without_a_container_gets_an_error_and_the_socket_closes(
    stack, oneapi, viewer, remote
):
    pending = await in_thread(Service.objects.create, stack=stack, name="xinference")
    communicator = await follow(f"/ws/services/{pending.pk}/logs/", viewer)

    message = await receive(communicator)

    assert message == {
        "type": "status",
        "state": "error",
        "message": "xinference has no container yet: deploy the stack first.",
    }
    assert (await communicator.receive_output(timeout=TIMEOUT))["type"] == "websocket.close"
    assert remote.opened == []


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_lines_come_in_numbered_batches_with_their_fields(stack, oneapi, viewer, remote):
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)
    source = await remote.source("stack-oneapi-1")

    source.put(stamped("plain", "\x1b[31mred\x1b[0m"), b"2025-01-31T12:00:00.5Z on stderr\n")
    (message,) = await receive_lines(communicator, 3)

    assert message["type"] == "lines"
    assert message["seq"] == 1
    assert message["skipped"] == 0
    assert message["lines"] == [
        {"ts": "2025-01-31T12:00:00.000Z", "stream": "stdout", "text": "plain"},
        {
            "ts": "2025-01-31T12:00:00.000Z",
            "stream": "stdout",
            "text": "red",
            "segments": [["red", "ansi-red"]],
        },
        {"ts": "2025-01-31T12:00:00.500Z", "stream": "stderr", "text": "on stderr"},
    ]
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_burst_is_sent_in_messages_of_at_most_the_batch_size(stack, oneapi, viewer, remote):
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)
    source = await remote.source("stack-oneapi-1")

    source.put(stamped(*(f"l{i}" for i in range(1200))))
    messages = await receive_lines(communicator, 1200)

    assert texts(messages) == [f"l{i}" for i in range(1200)]
    assert all(len(m["lines"]) <= log_consumers.BATCH_LINES for m in messages)
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_end_of_the_stream_comes_after_its_lines_and_closes_the_socket(
    stack, oneapi, viewer, remote
):
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)
    source = await remote.source("stack-oneapi-1")

    source.put(stamped("bye"))
    source.end()

    assert texts(await receive_lines(communicator, 1)) == ["bye"]
    assert await receive_status(communicator, "ended") == {
        "type": "status",
        "state": "ended",
        "message": "The container stopped.",
    }
    assert (await communicator.receive_output(timeout=TIMEOUT))["type"] == "websocket.close"
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_tail_is_taken_from_the_query_and_bounded(stack, oneapi, viewer, remote):
    path = f"/ws/services/{oneapi.pk}/logs/?tail=999999"

    communicator = await follow(path, viewer)
    await remote.source("stack-oneapi-1")

    assert remote.opened == [("stack-oneapi-1", log_consumers.MAX_TAIL)]
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("query", "tail"),
    [(b"", 300), (b"tail=50", 50), (b"tail=-5", 0), (b"tail=abc", 300), (b"tail=9000", 5000)],
)
def test_parse_tail(query, tail):
    assert log_consumers.parse_tail(query) == tail


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_leaving_closes_the_remote_stream(stack, oneapi, viewer, remote):
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)
    source = await remote.source("stack-oneapi-1")
    await receive_status(communicator, "following")

    await communicator.disconnect()

    await until(source.closed.is_set, "the remote stream to close")
    assert get_hub().feeds == {}


# The stack socket


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_stack_interleaves_its_services_by_time_and_names_them(
    stack, oneapi, viewer, remote
):
    pending = await in_thread(Service.objects.create, stack=stack, name="xinference")
    communicator = await follow(f"/ws/stacks/{stack.pk}/logs/", viewer)
    fastgpt = await remote.source("stack-fastgpt-1")
    oneapi = await remote.source("stack-oneapi-1")
    statuses = []
    while len(statuses) < 5:
        message = await receive(communicator)
        statuses.append((message["state"], message.get("service")))

    oneapi.put(b"2025-01-31T12:00:02Z second\n")
    fastgpt.put(b"2025-01-31T12:00:01Z first\n2025-01-31T12:00:03Z third\n")
    messages = await receive_lines(communicator, 3)

    assert sorted(statuses) == sorted(
        [
            ("error", pending.name),
            ("connecting", "fastgpt"),
            ("connecting", "oneapi"),
            ("following", "fastgpt"),
            ("following", "oneapi"),
        ]
    )
    lines = [line for m in messages for line in m["lines"]]
    assert {(line["service"], line["text"]) for line in lines} == {
        ("fastgpt", "first"),
        ("oneapi", "second"),
        ("fastgpt", "third"),
    }
    if len(messages) == 1:
        assert [line["text"] for line in lines] == ["first", "second", "third"]
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_stack_without_services_says_so_and_closes(team, viewer, remote):
    empty = await in_thread(lambda: make_stack(make_server(team)))
    communicator = await follow(f"/ws/stacks/{empty.pk}/logs/", viewer)

    assert await receive(communicator) == {
        "type": "status",
        "state": "error",
        "message": "This stack has no services.",
    }
    assert (await communicator.receive_output(timeout=TIMEOUT))["type"] == "websocket.close"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_stack_and_a_service_socket_share_the_services_stream(
    stack, oneapi, viewer, remote
):
    whole = await follow(f"/ws/stacks/{stack.pk}/logs/", viewer)
    single = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)
    source = await remote.source("stack-oneapi-1")

    source.put(stamped("shared"))

    assert texts(await receive_lines(single, 1)) == ["shared"]
    (line,) = [line for m in await receive_lines(whole, 1) for line in m["lines"]]
    assert line["service"] == "oneapi"
    assert [container for container, _ in remote.opened].count("stack-oneapi-1") == 1
    await single.disconnect()
    await whole.disconnect()


# Backpressure


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_viewer_that_does_not_acknowledge_gets_no_more_than_the_window(
    stack, oneapi, viewer, remote, monkeypatch
):
    # The reader holds back only briefly for a viewer that is behind.
    monkeypatch.setattr(hub_module, "ROOM_WAIT_SECONDS", 0.01)
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/?tail=0", viewer)
    source = await remote.source("stack-oneapi-1")
    total = 20_000
    for start in range(0, total, 1000):
        source.put(stamped(*(f"n{i}" for i in range(start, start + 1000))))
    (feed,) = get_hub().feeds.values()
    (subscription,) = feed.subscriptions
    await until(lambda: len(subscription) + subscription.skipped > 0, "lines to queue")
    await until(lambda: source.chunks.empty(), "every chunk to be read")
    await asyncio.sleep(0.3)

    sent = [m for m in await drain(communicator) if m["type"] == "lines"]

    assert len(sent) == log_consumers.WINDOW
    assert len(subscription) <= subscription.limit == QUEUE_LINES
    received = sum(len(m["lines"]) for m in sent)
    assert received + len(subscription) + subscription.skipped == total

    # Catching up: the next message says how many lines the viewer missed, then the newest.
    await communicator.send_json_to({"type": "ack", "seq": sent[-1]["seq"]})
    rest = await receive_lines(communicator, len(subscription))
    assert rest[0]["skipped"] == total - received - QUEUE_LINES
    assert texts(rest)[-1] == f"n{total - 1}"
    assert texts(rest)[0] == f"n{total - QUEUE_LINES}"
    await communicator.disconnect()


async def drain(communicator) -> list[dict]:
    messages = []
    while not await communicator.receive_nothing(timeout=0.2):
        messages.append(await receive(communicator))
    return messages


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_acknowledgements_that_make_no_sense_are_ignored(stack, oneapi, viewer, remote):
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)
    source = await remote.source("stack-oneapi-1")

    for nonsense in ("not json", "[]", '{"type":"ack","seq":"1"}', '{"type":"ack","seq":99}'):
        await communicator.send_to(text_data=nonsense)
    source.put(stamped("still here"))

    assert texts(await receive_lines(communicator, 1)) == ["still here"]
    await communicator.disconnect()
