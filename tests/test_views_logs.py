"""The log viewer's pages and the recent-lines JSON that browsers poll when websockets are cut."""

import json
import sys
import types

import pytest
from django.urls import reverse

from deployments.clients.ssh import SSHError
from deployments.models import Service
from deployments.views.logs import DEFAULT_POLL_TAIL, MAX_POLL_TAIL, MAX_TAIL, ts_key
from testkit.factories import add_member, make_server, make_stack, make_user


@pytest.fixture
def stack(team):
    return make_stack(make_server(team, name="gpu-a"), name="prod")


@pytest.fixture
def service(stack):
    return Service.objects.create(stack=stack, name="fastgpt", container_name="prod-fastgpt-1")


@pytest.fixture
def foreign_service(other_team):
    stack = make_stack(make_server(other_team, name="gpu-b"), name="theirs")
    return Service.objects.create(stack=stack, name="oneapi", container_name="theirs-oneapi-1")


class FakeRecentLines:
    """Stands in for deployments.logs.recent_lines; remembers what it was asked."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self.lines: dict[str, list[dict]] = {}
        self.errors: dict[str, Exception] = {}

    def __call__(self, service, tail):
        self.calls.append((service.name, tail))
        if service.name in self.errors:
            raise self.errors[service.name]
        return self.lines.get(service.name, [])[-tail:]


def install_recent_lines(monkeypatch, fake) -> None:
    try:
        import deployments.logs as module
    except ImportError:
        module = types.ModuleType("deployments.logs")
        monkeypatch.setitem(sys.modules, "deployments.logs", module)
    monkeypatch.setattr(module, "recent_lines", fake, raising=False)


@pytest.fixture
def recent(monkeypatch):
    fake = FakeRecentLines()
    install_recent_lines(monkeypatch, fake)
    return fake


def line(ts: str, text: str, stream: str = "stdout") -> dict:
    return {"ts": ts, "stream": stream, "text": text}


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
def test_another_teams_service_is_not_found(client, viewer, foreign_service, recent, name):
    client.force_login(viewer)
    assert client.get(reverse(name, args=[foreign_service.pk])).status_code == 404
    assert recent.calls == []


@pytest.mark.parametrize("name", ["stack_logs", "stack_logs_recent"])
def test_another_teams_stack_is_not_found(client, viewer, foreign_service, recent, name):
    client.force_login(viewer)
    assert client.get(reverse(name, args=[foreign_service.stack_id])).status_code == 404
    assert recent.calls == []


def test_a_user_without_a_team_sees_no_logs(client, service, recent):
    client.force_login(make_user())
    assert client.get(reverse("stack_service_logs", args=[service.pk])).status_code == 404
    assert client.get(reverse("stack_service_logs_recent", args=[service.pk])).status_code == 404


@pytest.mark.parametrize(
    "name", ["stack_service_logs", "stack_service_logs_recent", "stack_logs", "stack_logs_recent"]
)
def test_anonymous_visitors_are_sent_to_log_in(client, service, recent, name):
    pk = service.stack_id if name.startswith("stack_logs") else service.pk
    url = reverse(name, args=[pk])
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert recent.calls == []


def test_recent_json_returns_the_lines_in_the_viewers_shape(client, viewer, service, recent):
    recent.lines["fastgpt"] = [
        line("2026-11-24T22:00:00.1Z", "started"),
        line("2026-11-24T22:00:01.2Z", "warning: <b>x</b>", "stderr"),
    ]
    client.force_login(viewer)
    response = client.get(reverse("stack_service_logs_recent", args=[service.pk]), {"tail": "50"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    assert response.json() == {"lines": recent.lines["fastgpt"]}
    assert recent.calls == [("fastgpt", 50)]


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
def test_recent_json_tail_is_clamped_never_a_crash(client, viewer, service, recent, raw, expected):
    client.force_login(viewer)
    query = {} if raw is None else {"tail": raw}
    response = client.get(reverse("stack_service_logs_recent", args=[service.pk]), query)
    assert response.status_code == 200
    assert recent.calls == [("fastgpt", expected)]


def test_an_unreachable_server_answers_502_with_a_readable_error(client, viewer, service, recent):
    recent.errors["fastgpt"] = SSHError(
        "Could not connect to gpu-a: timed out.", kind="unreachable"
    )
    client.force_login(viewer)
    response = client.get(reverse("stack_service_logs_recent", args=[service.pk]))
    assert response.status_code == 502
    assert response.json() == {"lines": [], "error": "Could not connect to gpu-a: timed out."}


def test_an_unexpected_failure_answers_502_without_its_details(client, viewer, service, recent):
    recent.errors["fastgpt"] = RuntimeError("secret internals at /root/.ssh")
    client.force_login(viewer)
    response = client.get(reverse("stack_service_logs_recent", args=[service.pk]))
    assert response.status_code == 502
    assert "internals" not in response.content.decode()
    assert response.json()["error"] == "The logs could not be read from the server."


def test_stack_recent_json_merges_services_by_time_and_names_them(
    client, viewer, stack, service, recent
):
    Service.objects.create(stack=stack, name="oneapi")
    recent.lines["fastgpt"] = [
        line("2026-11-24T22:00:00.5Z", "f1"),
        line("2026-11-24T22:00:02Z", "f2"),
    ]
    recent.lines["oneapi"] = [
        line("2026-11-24T22:00:00.25Z", "o1"),
        line("2026-11-24T22:00:01.123456789Z", "o2"),
    ]
    client.force_login(viewer)
    response = client.get(reverse("stack_logs_recent", args=[stack.pk]), {"tail": "3"})
    assert response.status_code == 200
    lines = response.json()["lines"]
    assert [(item["service"], item["text"]) for item in lines] == [
        ("fastgpt", "f1"),
        ("oneapi", "o2"),
        ("fastgpt", "f2"),
    ]
    assert sorted(recent.calls) == [("fastgpt", 3), ("oneapi", 3)]


def test_stack_recent_json_keeps_the_services_that_answer(client, viewer, stack, service, recent):
    Service.objects.create(stack=stack, name="oneapi")
    recent.lines["fastgpt"] = [line("2026-11-24T22:00:00Z", "still here")]
    recent.errors["oneapi"] = SSHError("No such container.", kind="command")
    client.force_login(viewer)
    response = client.get(reverse("stack_logs_recent", args=[stack.pk]))
    assert response.status_code == 200
    assert [item["text"] for item in response.json()["lines"]] == ["still here"]

    recent.errors["fastgpt"] = SSHError("Could not connect.", kind="unreachable")
    response = client.get(reverse("stack_logs_recent", args=[stack.pk]))
    assert response.status_code == 502
    assert json.loads(response.content)["error"] == "Could not connect."


def test_a_stack_without_services_has_no_recent_lines(client, viewer, stack, recent):
    client.force_login(viewer)
    response = client.get(reverse("stack_logs_recent", args=[stack.pk]))
    assert response.json() == {"lines": []}


def test_a_viewer_of_two_teams_sees_the_logs_of_both(client, viewer, foreign_service, recent):
    add_member(foreign_service.stack.team, viewer)
    client.force_login(viewer)
    assert client.get(reverse("stack_service_logs", args=[foreign_service.pk])).status_code == 200


def test_timestamps_sort_by_time_even_when_docker_trims_their_zeros():
    times = ["2026-11-24T22:00:00.12345Z", "2026-11-24T22:00:00.1234Z", "2026-11-24T22:00:00Z"]
    assert sorted(times, key=lambda ts: ts_key({"ts": ts})) == [
        "2026-11-24T22:00:00Z",
        "2026-11-24T22:00:00.1234Z",
        "2026-11-24T22:00:00.12345Z",
    ]
    assert ts_key({"ts": None}) == ""
    assert ts_key({"ts": "garbage"}) == "garbage"
