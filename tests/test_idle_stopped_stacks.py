"""A stack the idle guard stopped reads as stopped by the guard, with "Start again", on its
page and on the dashboard: not as failed, unhealthy or exited for no known reason (Docker calls
a stopped container's health "unhealthy")."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from deployments.choices import Health, PipelineKind, RunStatus, ServiceState, StackStatus
from deployments.models import IdleGuard, IdleState, Service
from testkit.factories import make_run, make_server, make_stack

pytestmark = pytest.mark.django_db

STOPPED = "Stopped by the idle guard"
START_AGAIN = "Start again"


@pytest.fixture
def server(team):
    return make_server(team, name="gpu-1", hourly_price=Decimal("2"))


def stopped_stack(server, name="chatbot"):
    """A running stack whose containers the guard stopped, as a refresh from Docker reads them."""
    stack = make_stack(server, name=name, status=StackStatus.RUNNING)
    for service in ("fastgpt", "oneapi"):
        Service.objects.create(
            stack=stack, name=service, state=ServiceState.EXITED, health=Health.UNHEALTHY
        )
    guard, _ = IdleGuard.objects.get_or_create(
        server=server, defaults={"enabled": True, "stop_stacks": True}
    )
    guard.state = IdleState.STOPPED
    guard.stopped_stacks = sorted({*guard.stopped_stacks, stack.pk})
    guard.save()
    return stack


def page(client, user, url, **headers) -> str:
    client.force_login(user)
    answer = client.get(url, **headers)
    assert answer.status_code == 200
    return answer.content.decode()


def section(html: str, start: str, end: str) -> str:
    return html[html.index(start) :][: html[html.index(start) :].index(end)]


def test_the_stack_page_says_the_guard_stopped_it_and_offers_start_again_to_operators(
    server, client, operator, viewer
):
    stack = stopped_stack(server)
    url = reverse("stack_detail", args=[stack.pk])
    html = page(client, operator, url)
    status = section(html, 'id="stack-status"', "</dd>")
    assert STOPPED in status and "Running" not in status
    start = reverse("server_idle_start_again", args=[server.pk])
    assert f'action="{start}"' in status and START_AGAIN in status
    services = section(html, 'id="services"', "</section>")
    assert "The idle guard stopped these containers" in services
    assert "Unhealthy" not in services and "Exited" in services

    status = section(page(client, viewer, url), 'id="stack-status"', "</dd>")
    assert STOPPED in status and START_AGAIN not in status


def test_the_services_table_it_polls_says_so_too(server, client, viewer):
    stack = stopped_stack(server)
    html = page(
        client, viewer, reverse("stack_services_table", args=[stack.pk]), HTTP_HX_REQUEST="true"
    )
    assert "The idle guard stopped these containers" in html
    assert "Unhealthy" not in html


def test_the_dashboard_shows_the_stack_stopped_by_the_guard_not_unhealthy(server, client, operator):
    stopped_stack(server)
    cards = section(
        page(client, operator, reverse("dashboard")), 'id="stacks-health"', "</section>"
    )
    assert STOPPED in cards and START_AGAIN in cards
    assert "unhealthy" not in cards and "services healthy" not in cards


def test_the_list_of_stacks_shows_it_stopped_by_the_guard(server, client, viewer):
    stopped_stack(server)
    make_stack(server, name="other", status=StackStatus.RUNNING)
    rows = page(client, viewer, reverse("stack_list")).split("<tr>")[2:]
    assert [STOPPED in row for row in rows] == [True, False]


def test_while_start_again_runs_the_stack_reads_as_starting_again(server, client, operator):
    stack = stopped_stack(server)
    run = make_run(
        server.team,
        status=RunStatus.RUNNING,
        kind=PipelineKind.IDLE_START_AGAIN,
        params={"server_id": server.pk, "stacks": [stack.pk]},
    )
    IdleGuard.objects.filter(server=server).update(step_run=run, state=IdleState.WATCHING)
    status = section(
        page(client, operator, reverse("stack_detail", args=[stack.pk])),
        'id="stack-status"',
        "</dd>",
    )
    assert "Starting again" in status and START_AGAIN not in status


def test_once_started_again_the_stack_reads_as_running(server, client, operator):
    stack = stopped_stack(server)
    IdleGuard.objects.filter(server=server).update(state=IdleState.WATCHING, stopped_stacks=[])
    html = page(client, operator, reverse("stack_detail", args=[stack.pk]))
    assert STOPPED not in html
    assert "Running" in section(html, 'id="stack-status"', "</dd>")


def test_a_stack_the_guard_left_alone_on_the_same_server_is_not_shown_stopped(
    server, client, operator
):
    stopped_stack(server)
    other = make_stack(server, name="other", status=StackStatus.RUNNING)
    status = section(
        page(client, operator, reverse("stack_detail", args=[other.pk])),
        'id="stack-status"',
        "</dd>",
    )
    assert STOPPED not in status


def test_it_reads_in_chinese_on_a_chinese_page(server, client, operator):
    stack = stopped_stack(server)
    html = page(
        client,
        operator,
        reverse("stack_detail", args=[stack.pk]),
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    status = section(html, 'id="stack-status"', "</dd>")
    with translation.override("zh-hans"):
        assert translation.gettext(STOPPED) in status
        assert translation.gettext(START_AGAIN) in status
    assert STOPPED not in status and START_AGAIN not in status
    services = section(html, 'id="services"', "</section>")
    assert "The idle guard stopped" not in services


def test_the_dashboard_reads_more_stopped_stacks_in_no_more_queries(server, client, operator):
    other = make_server(server.team, name="gpu-2", hourly_price=Decimal("2"))
    stopped_stack(server, "one")
    stopped_stack(other, "two")
    client.force_login(operator)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("dashboard")).status_code == 200
        return len(captured.captured_queries)

    queries()  # the first request fills per-process caches
    few = queries()
    for name in ("three", "four"):
        stopped_stack(server, name)
    stopped_stack(other, "five")
    assert queries() == few


def test_on_the_dashboard_a_stack_in_real_trouble_comes_before_one_the_guard_stopped(
    server, client, operator
):
    stopped_stack(server, name="a-stopped")
    failing = make_stack(server, name="b-failing", status=StackStatus.RUNNING)
    Service.objects.create(
        stack=failing, name="fastgpt", state=ServiceState.RUNNING, health=Health.UNHEALTHY
    )
    make_stack(server, name="c-fine", status=StackStatus.RUNNING)

    cards = section(
        page(client, operator, reverse("dashboard")), 'id="stacks-health"', "</section>"
    )

    order = [cards.index(name) for name in ("b-failing", "a-stopped", "c-fine")]
    assert order == sorted(order)
