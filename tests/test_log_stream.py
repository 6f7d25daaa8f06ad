"""Live logs of real containers: `docker logs --follow` on an SSH target (testkit/target.py),
whose docker command reaches this machine's engine, read through the panel's SSH client, and
served over the real ASGI app with channels-redis.

The containers are log writers (testkit/logwriter.py): the test writes their log byte for byte.
"""

import asyncio
import json
import time

import pytest
from django.test import Client
from django.urls import reverse

from deployments.logs import hub as hub_module
from deployments.logs import polls
from deployments.logs.hub import get_hub
from deployments.logs.lines import MAX_LINE_BYTES, LineSplitter
from deployments.logs.source import follow_command, open_remote_logs
from deployments.models import Service
from deployments.views import logs as log_views
from testkit.factories import make_server, make_stack
from testkit.logwriter import LogWriter
from testkit.logwriter import remove_leftovers as remove_writer_leftovers
from testkit.websockets import in_thread
from tests.test_log_consumers import (
    open_socket,
    receive,
    receive_lines,
    receive_status,
    texts,
)
from tests.test_views_logs import get_json, poll_until
from tests.test_views_logs import texts as polled_texts

slow = pytest.mark.slow

TIMEOUT = 20
LONG = 100_000


@pytest.fixture(scope="module")
def _no_leftover_writers():
    remove_writer_leftovers()


@pytest.fixture
def writer(_no_leftover_writers):
    with LogWriter() as container:
        yield container


@pytest.fixture
def server(team, ssh_target):
    return make_server(
        team,
        host=ssh_target.host,
        ssh_port=ssh_target.port,
        ssh_user="root",
        ssh_private_key=ssh_target.key.private_openssh,
    )


@pytest.fixture
def log_service(server, writer):
    stack = make_stack(server)
    return Service.objects.create(stack=stack, name="writer", container_name=writer.name)


def write_known_lines(writer: LogWriter) -> None:
    """Plain text, a character written in two writes, colours, a long line, invalid bytes,
    and stderr."""
    writer.write(b"plain line\n")
    writer.write("split \u20ac here\n".encode(), pieces=[len(b"split ") + 2], pause=0.3)
    writer.write(b"\x1b[1;32mINFO\x1b[0m ready\n")
    writer.write(b"L" * LONG + b"\n")
    writer.write(b"bad \xff\xfe bytes\x00\n")
    writer.write(b"on stderr\n", "stderr")


EXPECTED = [
    ("stdout", "plain line"),
    ("stdout", "split \u20ac here"),
    ("stdout", "INFO ready"),
    ("stdout", "L" * MAX_LINE_BYTES + f" \u2026 [{LONG - MAX_LINE_BYTES:,} more bytes]"),
    ("stdout", "bad \ufffd\ufffd bytes\u2400"),
    ("stderr", "on stderr"),
]


def docker_logs_processes(ssh_target) -> list[str]:
    """`docker logs` processes running in the target (not the scripts that mention it)."""
    output = ssh_target.exec(["ps", "-eo", "args"]).stdout.decode()
    return [line for line in output.splitlines() if line.startswith("docker logs")]


def read_lines(remote, count: int, timeout: float = TIMEOUT) -> list[dict]:
    out, err = LineSplitter("stdout"), LineSplitter("stderr")
    lines: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        assert time.monotonic() < deadline, f"got {len(lines)} of {count} lines: {lines}"
        stdout, stderr = remote.read(0.5)
        lines += out.feed(stdout) + err.feed(stderr)
    return lines


async def until(predicate, what: str, timeout: float = TIMEOUT):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"Timed out waiting for {what}.")
        await asyncio.sleep(0.1)


# The SSH stream and the remote command


@slow
def test_a_character_split_between_two_network_chunks_is_decoded_whole(ssh_target):
    from deployments.clients.ssh import SSHClient

    script = "printf 'x \\342\\202'; sleep 0.5; printf '\\254 y\\n'"
    with (
        SSHClient(
            ssh_target.host,
            ssh_target.port,
            "root",
            private_key=ssh_target.key.private_openssh,
            allow_local=True,
        ) as client,
        client.stream(["sh", "-c", script]) as stream,
    ):
        first = b""
        while not first:
            first, _ = stream.read(5)
        splitter = LineSplitter("stdout")
        assert first == b"x \xe2\x82"
        assert splitter.feed(first) == []
        rest = b""
        while not stream.finished:
            rest += stream.read(5)[0]
        assert splitter.feed(rest) == [{"ts": None, "stream": "stdout", "text": "x \u20ac y"}]
        assert stream.exit_status(wait=5) == 0


@slow
def test_known_lines_arrive_decoded_through_docker_logs_over_ssh(server, writer):
    write_known_lines(writer)

    remote = open_remote_logs(server, writer.name, 100)
    try:
        lines = read_lines(remote, len(EXPECTED))
    finally:
        remote.close()

    stdout = [(line["stream"], line["text"]) for line in lines if line["stream"] == "stdout"]
    stderr = [(line["stream"], line["text"]) for line in lines if line["stream"] == "stderr"]
    assert stdout + stderr == EXPECTED
    assert all(line["ts"].endswith("Z") and len(line["ts"]) == 24 for line in lines)
    (coloured,) = [line for line in lines if line["text"] == "INFO ready"]
    assert coloured["segments"] == [["INFO", "ansi-bold ansi-green"], [" ready", ""]]
    (long,) = [line for line in lines if "cut" in line]
    assert long["cut"] == LONG - MAX_LINE_BYTES


@slow
def test_closing_the_stream_ends_the_remote_docker_logs(server, writer, ssh_target):
    writer.write(b"hello\n")
    remote = open_remote_logs(server, writer.name, 1)
    assert [line["text"] for line in read_lines(remote, 1)] == ["hello"]
    assert len(docker_logs_processes(ssh_target)) == 1

    remote.close()

    deadline = time.monotonic() + 10
    while docker_logs_processes(ssh_target):
        assert time.monotonic() < deadline, docker_logs_processes(ssh_target)
        time.sleep(0.1)
    leftovers = ssh_target.exec(["ps", "-eo", "args"]).stdout.decode()
    assert "follow-logs" not in leftovers


@slow
def test_the_stream_ends_when_the_container_stops(server, writer):
    writer.write(b"last\n")
    remote = open_remote_logs(server, writer.name, 1)
    try:
        read_lines(remote, 1)
        writer.stop()
        deadline = time.monotonic() + TIMEOUT
        while not remote.finished:
            assert time.monotonic() < deadline
            remote.read(0.5)

        assert remote.outcome([]) == (
            "ended",
            f"The container {writer.name} stopped; its log ends here.",
        )
    finally:
        remote.close()


@slow
def test_a_missing_container_is_an_error_in_docker_s_words(server):
    remote = open_remote_logs(server, "no-such-container-here", 10)
    try:
        lines = []
        out, err = LineSplitter("stdout"), LineSplitter("stderr")
        deadline = time.monotonic() + TIMEOUT
        while not remote.finished:
            assert time.monotonic() < deadline
            stdout, stderr = remote.read(0.5)
            lines += out.feed(stdout) + err.feed(stderr)
        lines += err.feed(b"", final=True)
        state, message = remote.outcome([line["text"] for line in lines if line["ts"] is None])
    finally:
        remote.close()

    assert state == "error"
    assert message.startswith("Reading the log of no-such-container-here failed: docker failed")
    assert "No such container: no-such-container-here" in message


def test_the_follow_command_passes_names_as_arguments_only():
    argv = follow_command("web-1", 50)

    assert argv[-2:] == ["50", "web-1"]
    assert "web-1" not in argv[2]
    with pytest.raises(ValueError):
        follow_command("x; rm -rf /", 50)
    with pytest.raises(ValueError):
        follow_command("-f", 50)


# Polled, as a browser does when websockets are cut


@pytest.fixture
def opened(monkeypatch):
    """The remote streams the polling views open, counted; their loop closed after the test."""
    calls: list[str] = []

    def counted(server, container: str, tail: int):
        calls.append(container)
        return open_remote_logs(server, container, tail)

    monkeypatch.setattr(log_views, "open_remote_logs", counted)
    loop = polls.LoopThread()
    monkeypatch.setattr(polls, "own_loop", lambda: loop)
    yield calls
    loop.close()


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@slow
@pytest.mark.django_db(transaction=True)
def test_polls_of_several_viewers_share_one_docker_logs_per_container(
    log_service, writer, viewer, owner, ssh_target, opened
):
    writer.write(b"w0\n")
    with LogWriter() as other:
        another = Service.objects.create(
            stack=log_service.stack, name="another", container_name=other.name
        )
        other.write(b"a0\n", "stderr")
        urls = [
            reverse("stack_logs_recent", args=[log_service.stack_id]),
            reverse("stack_service_logs_recent", args=[log_service.pk]),
            reverse("stack_service_logs_recent", args=[another.pk]),
        ]
        clients = [logged_in(viewer), logged_in(owner)]
        pairs = [(client, url) for client in clients for url in urls]
        first = {pair: get_json(*pair, tail="10") for pair in pairs}
        assert sorted(polled_texts(first[clients[1], urls[0]])) == ["a0", "w0"]
        cursors = {key: answer["cursor"] for key, answer in first.items()}
        for _round in range(3):
            for key, cursor in cursors.items():
                cursors[key] = get_json(*key, cursor=cursor)["cursor"]
        assert len(docker_logs_processes(ssh_target)) == 2

        writer.write(b"w1\n")
        other.write(b"a1\n", "stderr")

        for (client, url), cursor in cursors.items():
            expected = {urls[0]: ["a1", "w1"], urls[1]: ["w1"], urls[2]: ["a1"]}[url]
            got, _ = poll_until(client, url, cursor, len(expected), timeout=TIMEOUT)
            assert sorted(got) == expected
        # Thirty polls of two containers by two viewers: two `docker logs`, opened once each.
        assert sorted(opened) == sorted([writer.name, other.name])
        assert len(docker_logs_processes(ssh_target)) == 2


@slow
@pytest.mark.django_db(transaction=True)
def test_the_recent_lines_of_a_stacks_containers_come_interleaved_by_time(
    log_service, writer, viewer
):
    with LogWriter() as other:
        Service.objects.create(stack=log_service.stack, name="another", container_name=other.name)
        # Written in turns, so that each container's lines are apart in time.
        for turn in range(3):
            writer.write(f"writer {turn}\n")
            other.write(f"another {turn}\n", "stderr" if turn == 1 else "stdout")
        answer = get_json(
            logged_in(viewer), reverse("stack_logs_recent", args=[log_service.stack_id]), tail="10"
        )
    assert [(line["service"], line["text"]) for line in answer["lines"]] == [
        (name, f"{name} {turn}") for turn in range(3) for name in ("writer", "another")
    ]
    times = [line["ts"] for line in answer["lines"]]
    assert times == sorted(times)


# Over the websocket


@slow
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_viewer_gets_the_last_lines_then_what_is_written_after(log_service, writer, viewer):
    await in_thread(write_known_lines, writer)
    communicator, connected, code = await open_socket(
        f"/ws/services/{log_service.pk}/logs/?tail=2", viewer
    )
    assert connected, code

    assert (await receive_status(communicator, "following"))["message"] == ""
    history = await receive_lines(communicator, 2)
    await in_thread(writer.write, b"written after connecting\n")
    live = await receive_lines(communicator, 1)

    assert sorted(texts(history)) == sorted(text for _, text in EXPECTED[-2:])
    assert texts(live) == ["written after connecting"]
    await communicator.disconnect()


@slow
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_two_viewers_share_one_remote_stream_closed_when_the_last_leaves(
    log_service, writer, viewer, owner, ssh_target
):
    # A line first, and a tail of one: once it arrives, docker logs is following.
    await in_thread(writer.write, b"ready\n")
    path = f"/ws/services/{log_service.pk}/logs/?tail=1"
    first, connected, _ = await open_socket(path, viewer)
    assert connected
    assert texts(await receive_lines(first, 1)) == ["ready"]
    second, connected, _ = await open_socket(path, owner)
    assert connected
    assert texts(await receive_lines(second, 1)) == ["ready"]

    await in_thread(writer.write, b"for both\n")

    assert texts(await receive_lines(first, 1)) == ["for both"]
    assert texts(await receive_lines(second, 1)) == ["for both"]
    assert len(await in_thread(docker_logs_processes, ssh_target)) == 1
    assert len(get_hub().feeds) == 1

    await first.disconnect()
    await asyncio.sleep(0.5)
    assert len(await in_thread(docker_logs_processes, ssh_target)) == 1
    await second.disconnect()

    async def gone():
        return not await in_thread(docker_logs_processes, ssh_target)

    await until(gone, "the remote docker logs to end")
    assert get_hub().feeds == {}


@slow
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_viewer_that_stops_reading_is_skipped_ahead_with_bounded_memory(
    log_service, writer, viewer, monkeypatch
):
    # The reader holds back only briefly for a viewer that stays behind.
    monkeypatch.setattr(hub_module, "ROOM_WAIT_SECONDS", 0.05)
    await in_thread(writer.write, b"ready\n")
    communicator, connected, _ = await open_socket(
        f"/ws/services/{log_service.pk}/logs/?tail=1", viewer
    )
    assert connected
    assert texts(await receive_lines(communicator, 1)) == ["ready"]
    total = 30_000
    await in_thread(writer.write, "".join(f"line {i}\n" for i in range(total)))
    (feed,) = get_hub().feeds.values()
    (subscription,) = feed.subscriptions

    async def all_read():
        return len(feed.history) == min(total, feed.history.max_lines) and (
            feed.history.lines[-1][1].endswith(f'"line {total - 1}"}}')
        )

    await until(all_read, "the writer's lines to reach the panel")
    assert len(subscription) <= subscription.limit
    waiting = communicator.output_queue.qsize()
    assert waiting <= 4 + 2  # the window of line messages, and statuses

    messages = []
    while sum(len(m["lines"]) for m in messages) + sum(m["skipped"] for m in messages) < total:
        message = await receive(communicator)
        if message["type"] == "lines":
            messages.append(message)
            await communicator.send_json_to({"type": "ack", "seq": message["seq"]})

    skipped = sum(m["skipped"] for m in messages)
    assert skipped > 0
    assert texts(messages)[-1] == f"line {total - 1}"
    assert len(texts(messages)) + skipped == total
    await communicator.disconnect()


@slow
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_stack_socket_follows_every_container_of_the_stack(
    server, log_service, writer, viewer
):
    with LogWriter() as other:
        await in_thread(
            Service.objects.create,
            stack=log_service.stack,
            name="another",
            container_name=other.name,
        )
        await in_thread(writer.write, b"ready\n")
        await in_thread(other.write, b"ready\n")
        communicator, connected, _ = await open_socket(
            f"/ws/stacks/{log_service.stack_id}/logs/?tail=1", viewer
        )
        assert connected
        ready = await receive_lines(communicator, 2)
        assert {line["service"] for m in ready for line in m["lines"]} == {"writer", "another"}

        await in_thread(writer.write, b"from writer\n")
        await in_thread(other.write, b"from another\n", "stderr")
        messages = await receive_lines(communicator, 2)

        lines = {
            (line["service"], line["stream"], line["text"]) for m in messages for line in m["lines"]
        }
        assert lines == {("writer", "stdout", "from writer"), ("another", "stderr", "from another")}
        await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_server_that_cannot_be_reached_is_an_error_status(team, viewer):
    def make():
        server = make_server(team, host="127.0.0.1", ssh_port=1, ssh_private_key=_a_key())
        stack = make_stack(server)
        return Service.objects.create(stack=stack, name="web", container_name="web-1")

    service = await in_thread(make)
    communicator, connected, _ = await open_socket(f"/ws/services/{service.pk}/logs/", viewer)
    assert connected

    message = await receive_status(communicator, "error")

    assert "Cannot reach 127.0.0.1:1: connection refused" in message["message"]
    assert json.loads(json.dumps(message)) == message
    await communicator.disconnect()


def _a_key() -> str:
    from deployments.clients.ssh import generate_keypair

    return generate_keypair()[0]
