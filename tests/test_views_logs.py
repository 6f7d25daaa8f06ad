"""The log viewer's pages and the recent-lines JSON that browsers poll when websockets are cut.

Polls read the hub's shared feed of each container; the remote stream is a stand-in here
(test_log_stream.py polls real containers over SSH).
"""

import asyncio
import json
import time

import pytest
from django.test import AsyncClient, Client
from django.urls import reverse

from deployments.clients.ssh import SSHError
from deployments.consumers import logs as log_consumers
from deployments.logs import hub as hub_module
from deployments.logs import polls
from deployments.logs.hub import get_hub
from deployments.models import Service
from deployments.views import logs as log_views
from deployments.views.logs import (
    DEFAULT_POLL_TAIL,
    MAX_CURSOR_CHARS,
    MAX_POLL_TAIL,
    MAX_TAIL,
    parse_cursors,
    ts_key,
)
from testkit.factories import add_member, make_server, make_stack, make_user
from tests.test_log_consumers import follow, receive_lines
from tests.test_log_hub import FakeSource

TIMEOUT = 5


@pytest.fixture
def stack(team):
    return make_stack(make_server(team, name="gpu-a"), name="prod")


@pytest.fixture
def service(stack):
    return Service.objects.create(stack=stack, name="fastgpt", container_name="prod-fastgpt-1")


@pytest.fixture
def oneapi(stack):
    return Service.objects.create(stack=stack, name="oneapi", container_name="prod-oneapi-1")


@pytest.fixture
def foreign_service(other_team):
    stack = make_stack(make_server(other_team, name="gpu-b"), name="theirs")
    return Service.objects.create(stack=stack, name="oneapi", container_name="theirs-oneapi-1")


class Remote:
    """Stands in for open_remote_logs in the views: one FakeSource per container, counted."""

    def __init__(self) -> None:
        self.sources: dict[str, FakeSource] = {}
        self.opened: list[tuple[str, int]] = []
        self.errors: dict[str, Exception] = {}

    def source(self, container: str) -> FakeSource:
        return self.sources.setdefault(container, FakeSource())

    def __call__(self, server, container: str, tail: int) -> FakeSource:
        self.opened.append((container, tail))
        if container in self.errors:
            raise self.errors[container]
        return self.source(container)


def install_remote(monkeypatch) -> tuple[Remote, polls.LoopThread]:
    """Fake remote logs, and a loop for the polls of this test alone: closing it after the
    test ends its feeds."""
    remote = Remote()
    monkeypatch.setattr(log_views, "open_remote_logs", remote)
    loop = polls.LoopThread()
    monkeypatch.setattr(polls, "own_loop", lambda: loop)
    return remote, loop


@pytest.fixture
def remote(monkeypatch):
    remote, loop = install_remote(monkeypatch)
    yield remote
    loop.close()


def stamped(ts: str, text: str) -> bytes:
    """A line as `docker logs --timestamps` writes it."""
    return f"{ts} {text}\n".encode()


def line(ts: str, text: str, stream: str = "stdout") -> dict:
    return {"ts": ts, "stream": stream, "text": text}


def texts(answer: dict) -> list[str]:
    return [item["text"] for item in answer["lines"]]


def get_json(client, url: str, **query) -> dict:
    response = client.get(url, {key: value for key, value in query.items() if value is not None})
    assert response.status_code == 200, response.content
    return response.json()


def poll_until(
    client, url: str, cursor: str, count: int, timeout: float = TIMEOUT
) -> tuple[list[str], dict]:
    """Polls from `cursor` on, as the page does, until `count` lines came: their texts, and
    the last answer."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        answer = get_json(client, url, cursor=cursor)
        assert not answer["replayed"]
        got += texts(answer)
        cursor = answer["cursor"]
        if len(got) >= count:
            return got, answer
        assert time.monotonic() < deadline, f"got {got}"
        time.sleep(0.05)


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"Timed out waiting for {what}."
        time.sleep(0.02)


def test_service_logs_page_carries_where_to_connect(client, viewer, service):
    client.force_login(viewer)
    response = client.get(reverse("stack_service_logs", args=[service.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-ws-path="/ws/services/{service.pk}/logs/"' in html
    assert f'data-poll-url="/services/{service.pk}/logs/recent.json"' in html
    assert 'data-tail="500"' in html
    assert 'data-multi="false"' in html
    assert 'role="log" aria-live="off"' in html
    assert "/static/js/log_viewer.js" in html
    assert "<title>Logs of fastgpt" in html
    assert reverse("stack_logs", args=[service.stack_id]) in html


def test_stack_logs_page_interleaves_its_services_and_offers_a_service_filter(
    client, viewer, stack, service
):
    Service.objects.create(stack=stack, name="oneapi")
    client.force_login(viewer)
    response = client.get(reverse("stack_logs", args=[stack.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-ws-path="/ws/stacks/{stack.pk}/logs/"' in html
    assert f'data-poll-url="/stacks/{stack.pk}/logs/recent.json"' in html
    assert 'data-multi="true"' in html
    assert '<option value="fastgpt">fastgpt</option>' in html
    assert '<option value="oneapi">oneapi</option>' in html


@pytest.mark.parametrize(
    ("raw", "expected"), [("100", 100), ("abc", 500), ("0", 1), ("-5", 1), (str(10**9), MAX_TAIL)]
)
def test_the_page_tail_comes_from_the_query_within_bounds(client, viewer, service, raw, expected):
    client.force_login(viewer)
    response = client.get(reverse("stack_service_logs", args=[service.pk]), {"tail": raw})
    assert response.status_code == 200
    assert f'data-tail="{expected}"' in response.content.decode()


def test_stack_page_links_to_each_services_logs_and_to_all_logs(client, viewer, stack, service):
    client.force_login(viewer)
    html = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert f'href="{reverse("stack_service_logs", args=[service.pk])}"' in html
    assert 'aria-label="Logs of fastgpt"' in html
    assert f'href="{reverse("stack_logs", args=[stack.pk])}"' in html


@pytest.mark.parametrize("name", ["stack_service_logs", "stack_service_logs_recent"])
def test_another_teams_service_is_not_found(client, viewer, foreign_service, remote, name):
    client.force_login(viewer)
    assert client.get(reverse(name, args=[foreign_service.pk])).status_code == 404
    assert remote.opened == []


@pytest.mark.parametrize("name", ["stack_logs", "stack_logs_recent"])
def test_another_teams_stack_is_not_found(client, viewer, foreign_service, remote, name):
    client.force_login(viewer)
    assert client.get(reverse(name, args=[foreign_service.stack_id])).status_code == 404
    assert remote.opened == []


def test_a_user_without_a_team_sees_no_logs(client, service, remote):
    client.force_login(make_user())
    assert client.get(reverse("stack_service_logs", args=[service.pk])).status_code == 404
    assert client.get(reverse("stack_service_logs_recent", args=[service.pk])).status_code == 404
    assert remote.opened == []


@pytest.mark.parametrize(
    "name", ["stack_service_logs", "stack_service_logs_recent", "stack_logs", "stack_logs_recent"]
)
def test_anonymous_visitors_are_sent_to_log_in(client, service, remote, name):
    pk = service.stack_id if name.startswith("stack_logs") else service.pk
    url = reverse(name, args=[pk])
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert remote.opened == []


def test_a_first_poll_answers_with_the_last_lines_in_the_viewers_shape(
    client, viewer, service, remote
):
    remote.source("prod-fastgpt-1").put(
        stamped("2026-11-24T22:00:00.1Z", "too old")
        + stamped("2026-11-24T22:00:01.25Z", "started")
        + stamped("2026-11-24T22:00:03Z", "\x1b[32mready\x1b[0m"),
        stamped("2026-11-24T22:00:02.123456789Z", "warning: <b>x</b>"),
    )
    client.force_login(viewer)
    response = client.get(reverse("stack_service_logs_recent", args=[service.pk]), {"tail": "3"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    answer = response.json()
    assert answer["lines"] == [
        line("2026-11-24T22:00:01.250Z", "started"),
        line("2026-11-24T22:00:02.123Z", "warning: <b>x</b>", "stderr"),
        {
            **line("2026-11-24T22:00:03.000Z", "ready"),
            "segments": [["ready", "ansi-green"]],
        },
    ]
    assert answer["replayed"] is True
    assert answer["skipped"] == 0
    assert parse_cursors(answer["cursor"])[service.pk].count == 4
    assert remote.opened == [("prod-fastgpt-1", 3)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, DEFAULT_POLL_TAIL),
        ("abc", DEFAULT_POLL_TAIL),
        ("", DEFAULT_POLL_TAIL),
        ("1.5", DEFAULT_POLL_TAIL),
        ("0", 1),
        ("-3", 1),
        (str(10**9), MAX_POLL_TAIL),
        ("9" * 400, MAX_POLL_TAIL),
    ],
)
def test_recent_json_tail_is_clamped_never_a_crash(client, viewer, service, remote, raw, expected):
    client.force_login(viewer)
    query = {} if raw is None else {"tail": raw}
    response = client.get(reverse("stack_service_logs_recent", args=[service.pk]), query)
    assert response.status_code == 200
    assert remote.opened == [("prod-fastgpt-1", expected)]


def test_polls_of_several_viewers_and_services_share_one_feed_per_container(
    viewer, owner, stack, service, oneapi, remote
):
    fastgpt = remote.source("prod-fastgpt-1")
    other = remote.source("prod-oneapi-1")
    fastgpt.put(stamped("2026-11-24T22:00:00Z", "f0"))
    other.put(stamped("2026-11-24T22:00:01Z", "o0"))
    urls = [
        reverse("stack_logs_recent", args=[stack.pk]),
        reverse("stack_service_logs_recent", args=[service.pk]),
        reverse("stack_service_logs_recent", args=[oneapi.pk]),
    ]
    clients = []
    for user in (viewer, owner):
        client = Client()
        client.force_login(user)
        clients.append(client)

    cursors = {}
    for client in clients:
        for url in urls:
            answer = get_json(client, url, tail="10")
            assert answer["replayed"] is True
            cursors[client, url] = answer["cursor"]
    assert texts(get_json(clients[0], urls[0], tail="10")) == ["f0", "o0"]
    for _round in range(3):
        for key, cursor in cursors.items():
            answer = get_json(key[0], key[1], cursor=cursor)
            assert (answer["lines"], answer["replayed"]) == ([], False)
            cursors[key] = answer["cursor"]

    fastgpt.put(stamped("2026-11-24T22:00:02Z", "f1"))
    other.put(b"", stamped("2026-11-24T22:00:03Z", "o1"))

    for (client, url), cursor in cursors.items():
        expected = {urls[0]: ["f1", "o1"], urls[1]: ["f1"], urls[2]: ["o1"]}[url]
        got, answer = poll_until(client, url, cursor, len(expected))
        assert got == expected
        assert get_json(client, url, cursor=answer["cursor"])["lines"] == []
    stack_answer = get_json(clients[1], urls[0], cursor=cursors[clients[1], urls[0]])
    assert stack_answer["lines"] == [
        {**line("2026-11-24T22:00:02.000Z", "f1"), "service": "fastgpt"},
        {**line("2026-11-24T22:00:03.000Z", "o1", "stderr"), "service": "oneapi"},
    ]
    # Twenty-odd polls of two services by two viewers: one remote stream per container.
    assert sorted(remote.opened) == [("prod-fastgpt-1", 10), ("prod-oneapi-1", 10)]


def test_lines_the_feed_no_longer_kept_are_counted_as_skipped(
    client, viewer, service, remote, monkeypatch
):
    monkeypatch.setattr(hub_module, "HISTORY_LINES", 5)
    source = remote.source("prod-fastgpt-1")
    source.put(stamped("2026-11-24T22:00:00Z", "old"))
    client.force_login(viewer)
    url = reverse("stack_service_logs_recent", args=[service.pk])
    cursor = get_json(client, url)["cursor"]

    source.put(b"".join(stamped(f"2026-11-24T22:00:0{i}Z", f"n{i}") for i in range(1, 9)))
    answer = {"lines": [], "skipped": 0}
    deadline = time.monotonic() + TIMEOUT
    while len(answer["lines"]) + answer["skipped"] < 8:
        assert time.monotonic() < deadline, answer
        answer = get_json(client, url, cursor=cursor)

    assert answer["skipped"] == 3
    assert texts(answer) == ["n4", "n5", "n6", "n7", "n8"]
    assert answer["replayed"] is False


def test_the_feed_ends_once_nobody_polls_and_a_later_poll_starts_over(
    client, viewer, service, remote, monkeypatch
):
    monkeypatch.setattr(polls, "KEEP_SECONDS", 0.6)
    source = remote.source("prod-fastgpt-1")
    source.put(stamped("2026-11-24T22:00:00Z", "seen"))
    client.force_login(viewer)
    url = reverse("stack_service_logs_recent", args=[service.pk])
    first = get_json(client, url)
    for _poll in range(3):
        time.sleep(0.3)
        assert not source.closed.is_set()
        first = get_json(client, url, cursor=first["cursor"])

    wait_for(source.closed.is_set, "the remote stream to be closed")
    source.put(stamped("2026-11-24T22:00:01Z", "the new stream's tail"))
    again = get_json(client, url, cursor=first["cursor"])

    # The cursor was of the feed that ended: the answer starts over with the last lines.
    assert again["replayed"] is True
    assert texts(again) == ["the new stream's tail"]
    assert [tail for _, tail in remote.opened] == [DEFAULT_POLL_TAIL, DEFAULT_POLL_TAIL]


def test_a_container_that_stopped_is_not_reopened_by_every_poll(client, viewer, service, remote):
    source = remote.source("prod-fastgpt-1")
    source.put(stamped("2026-11-24T22:00:00Z", "last words"))
    source.end()
    client.force_login(viewer)
    url = reverse("stack_service_logs_recent", args=[service.pk])

    answers = [get_json(client, url) for _poll in range(4)]

    assert all(texts(answer) == ["last words"] for answer in answers)
    assert len(remote.opened) == 1


def test_a_cursor_that_does_not_parse_counts_as_none():
    assert parse_cursors("7:0123456789ab.42,8:zz.1,x:0123456789ab.1,9:0123456789ab.-1") == {
        7: polls.Cursor("0123456789ab", 42)
    }
    assert parse_cursors(None) == {}
    assert parse_cursors("7:0123456789ab.1," * (MAX_CURSOR_CHARS // 10)) == {}


def test_an_unreachable_server_answers_502_with_a_readable_error(client, viewer, service, remote):
    remote.errors["prod-fastgpt-1"] = SSHError(
        "Could not connect to gpu-a: timed out.", kind="unreachable"
    )
    client.force_login(viewer)
    response = client.get(reverse("stack_service_logs_recent", args=[service.pk]))
    assert response.status_code == 502
    assert response.json() == {"lines": [], "error": "Could not connect to gpu-a: timed out."}


def test_an_unexpected_failure_answers_502_without_its_details(client, viewer, service, remote):
    remote.errors["prod-fastgpt-1"] = RuntimeError("secret internals at /root/.ssh")
    client.force_login(viewer)
    response = client.get(reverse("stack_service_logs_recent", args=[service.pk]))
    assert response.status_code == 502
    assert "internals" not in response.content.decode()
    assert response.json()["error"] == "The logs could not be read from the server."


def test_a_service_without_a_container_answers_502_and_opens_nothing(client, viewer, stack, remote):
    service = Service.objects.create(stack=stack, name="fresh")
    client.force_login(viewer)
    response = client.get(reverse("stack_service_logs_recent", args=[service.pk]))
    assert response.status_code == 502
    assert response.json()["error"] == "fresh has no container yet: deploy the stack first."
    assert remote.opened == []


def test_stack_recent_json_merges_services_by_time_and_names_them(
    client, viewer, stack, service, oneapi, remote
):
    remote.source("prod-fastgpt-1").put(
        stamped("2026-11-24T22:00:00.5Z", "f1") + stamped("2026-11-24T22:00:02Z", "f2")
    )
    remote.source("prod-oneapi-1").put(
        stamped("2026-11-24T22:00:00.25Z", "o1") + stamped("2026-11-24T22:00:01.123456789Z", "o2")
    )
    client.force_login(viewer)
    response = client.get(reverse("stack_logs_recent", args=[stack.pk]), {"tail": "3"})
    assert response.status_code == 200
    lines = response.json()["lines"]
    assert [(item["service"], item["text"]) for item in lines] == [
        ("fastgpt", "f1"),
        ("oneapi", "o2"),
        ("fastgpt", "f2"),
    ]
    assert sorted(remote.opened) == [("prod-fastgpt-1", 3), ("prod-oneapi-1", 3)]


def test_stack_recent_json_keeps_the_services_that_answer(
    client, viewer, stack, service, oneapi, remote
):
    remote.source("prod-fastgpt-1").put(stamped("2026-11-24T22:00:00Z", "still here"))
    remote.errors["prod-oneapi-1"] = SSHError("No such container.", kind="command")
    client.force_login(viewer)
    response = client.get(reverse("stack_logs_recent", args=[stack.pk]))
    assert response.status_code == 200
    assert texts(response.json()) == ["still here"]
    assert list(parse_cursors(response.json()["cursor"])) == [service.pk]


def test_a_stack_whose_every_service_fails_answers_502(
    client, viewer, stack, service, oneapi, remote
):
    remote.errors["prod-fastgpt-1"] = SSHError("Could not connect.", kind="unreachable")
    remote.errors["prod-oneapi-1"] = SSHError("Could not connect.", kind="unreachable")
    client.force_login(viewer)
    response = client.get(reverse("stack_logs_recent", args=[stack.pk]))
    assert response.status_code == 502
    assert json.loads(response.content)["error"] == "Could not connect."


def test_a_stack_without_services_has_no_recent_lines(client, viewer, stack, remote):
    client.force_login(viewer)
    response = client.get(reverse("stack_logs_recent", args=[stack.pk]))
    assert response.json() == {"lines": [], "cursor": "", "skipped": 0, "replayed": False}


def test_a_viewer_of_two_teams_sees_the_logs_of_both(client, viewer, foreign_service):
    add_member(foreign_service.stack.team, viewer)
    client.force_login(viewer)
    assert client.get(reverse("stack_service_logs", args=[foreign_service.pk])).status_code == 200


def test_timestamps_sort_by_time_even_when_docker_trims_their_zeros():
    times = ["2026-11-24T22:00:00.12345Z", "2026-11-24T22:00:00.1234Z", "2026-11-24T22:00:00Z"]
    assert sorted(times, key=ts_key) == [
        "2026-11-24T22:00:00Z",
        "2026-11-24T22:00:00.1234Z",
        "2026-11-24T22:00:00.12345Z",
    ]
    assert ts_key(None) == ""
    assert ts_key("garbage") == "garbage"


# Under the ASGI server: the poll runs in the server's loop and reads the websockets' feed.


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_under_asgi_a_poll_reads_the_feed_the_websocket_viewers_share(
    service, viewer, monkeypatch
):
    remote = Remote()
    monkeypatch.setattr(log_views, "open_remote_logs", remote)
    monkeypatch.setattr(log_consumers, "open_remote_logs", remote)
    monkeypatch.setattr(polls, "KEEP_SECONDS", 0.5)
    source = remote.source("prod-fastgpt-1")
    source.put(stamped("2026-11-24T22:00:00Z", "one"))
    socket = await follow(f"/ws/services/{service.pk}/logs/?tail=10", viewer)
    await receive_lines(socket, 1)
    client = AsyncClient()
    await client.aforce_login(viewer)
    url = reverse("stack_service_logs_recent", args=[service.pk])

    first = (await client.get(url)).json()
    await socket.disconnect()
    await asyncio.sleep(0.3)
    source.put(stamped("2026-11-24T22:00:01Z", "two"))
    got: list[str] = []
    cursor = first["cursor"]
    while not got:
        answer = (await client.get(url, {"cursor": cursor})).json()
        got, cursor = texts(answer), answer["cursor"]

    assert texts(first) == ["one"]
    assert got == ["two"]
    # The socket's feed, kept by the polls after the socket left: opened once.
    assert remote.opened == [("prod-fastgpt-1", 10)]
    assert not source.closed.is_set()
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not source.closed.is_set():
        assert asyncio.get_running_loop().time() < deadline, "the feed outlived its polls"
        await asyncio.sleep(0.05)
    assert get_hub().feeds == {}
