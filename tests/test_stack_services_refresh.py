"""The stack page's services table reads itself again, so a service's state and "last seen"
follow the server without a press of Refresh. The table's GET reads no server: when the rows
are stale it queues a worker's read, one per stack in each interval."""

import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from deployments import tasks
from deployments.choices import Health, Role, RunStatus, ServiceState, StackStatus
from deployments.clients.ssh import SSHError
from deployments.models import Service
from deployments.views import stacks as stack_views
from testkit.factories import add_member, make_deployment, make_server, make_stack

UNREACHABLE = "The server did not answer on port 22."


def forget_reads(stack) -> None:
    """Which stack's containers were read lately, and why a read failed, are kept in the cache
    per stack id, which outlives a test's database."""
    cache.delete_many([f"stack-services-read:{stack.pk}", tasks.services_unread_key(stack.pk)])


@pytest.fixture
def stack(team):
    stack = make_stack(make_server(team, name="gpu-1"), name="chatbot")
    forget_reads(stack)
    yield stack
    forget_reads(stack)


@pytest.fixture
def deployed(stack, operator):
    make_deployment(stack, user=operator)
    stack.status = StackStatus.RUNNING
    stack.rendered_files = {"docker-compose.yml": "services: {}\n"}
    stack.save(update_fields=["status", "rendered_files"])
    return stack


@pytest.fixture
def queued_reads(monkeypatch):
    """The reads the table queues for a worker, as (stack id, seconds a failure is kept)."""
    calls = []
    monkeypatch.setattr(
        tasks.read_stack_services, "delay_on_commit", lambda *args: calls.append(args)
    )
    return calls


@pytest.fixture
def reads(monkeypatch):
    """The worker's reads of the server's containers, each marking the stack's services seen
    now."""
    calls = []

    def refresh(stack):
        calls.append(stack.pk)
        stack.services.update(last_seen_at=timezone.now(), state=ServiceState.EXITED)
        return {}

    monkeypatch.setattr(tasks, "refresh_services", refresh)
    return calls


@pytest.fixture
def unreachable(monkeypatch):
    calls = []

    def refresh(stack):
        calls.append(stack.pk)
        raise SSHError(UNREACHABLE, kind="unreachable")

    monkeypatch.setattr(tasks, "refresh_services", refresh)
    return calls


def service(stack, minutes_ago: float, **fields) -> Service:
    fields.setdefault("state", ServiceState.RUNNING)
    fields.setdefault("health", Health.HEALTHY)
    seen = timezone.now() - timedelta(minutes=minutes_ago)
    return Service.objects.create(stack=stack, name="fastgpt", last_seen_at=seen, **fields)


def table(client, stack) -> str:
    response = client.get(reverse("stack_services_table", args=[stack.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def test_the_table_shows_each_services_state_and_last_seen_as_stored_now(client, stack, viewer):
    row = service(stack, minutes_ago=10)
    client.force_login(viewer)
    html = table(client, stack)
    assert html.lstrip().startswith('<section id="services"')
    assert "<title>" not in html
    assert f'<time datetime="{row.last_seen_at.isoformat()}">' in html
    assert "Running" in html and "Healthy" in html
    later = timezone.now().replace(microsecond=0)
    Service.objects.filter(pk=row.pk).update(
        state=ServiceState.EXITED, health=Health.UNHEALTHY, last_seen_at=later
    )
    html = table(client, stack)
    assert later.strftime("%Y-%m-%d %H:%M:%S") in html
    assert "Exited" in html and "Unhealthy" in html and "Running" not in html
    # A viewer may read the table, not refresh it by hand.
    assert "services-refresh" not in html


def test_the_table_is_refused_to_other_teams_and_visitors_and_queues_nothing(
    client, deployed, other_team, queued_reads
):
    service(deployed, minutes_ago=60)
    url = reverse("stack_services_table", args=[deployed.pk])
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    client.force_login(add_member(other_team, role=Role.OWNER))
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 404
    assert client.get(url).status_code == 404
    assert queued_reads == []


def test_the_table_opened_as_a_page_is_the_stack_page_at_its_services(
    client, deployed, viewer, queued_reads
):
    service(deployed, minutes_ago=60)
    client.force_login(viewer)
    response = client.get(reverse("stack_services_table", args=[deployed.pk]))
    assert response.status_code == 302
    assert response.url == reverse("stack_detail", args=[deployed.pk]) + "#services"
    assert queued_reads == []


def test_the_stack_page_and_the_refresh_answer_poll_the_table(client, stack, operator):
    service(stack, minutes_ago=1)
    client.force_login(operator)
    poll = (
        f'<section id="services" hx-get="{reverse("stack_services_table", args=[stack.pk])}" '
        f'hx-trigger="every {stack_views.SERVICES_POLL_SECONDS}s, services-visible" '
        'hx-swap="outerHTML" data-poll-visible>'
    )
    page = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert poll in page
    assert 'src="/static/js/stack_page.js"' in page
    # Refresh swaps the section for one that goes on polling (it reads no server here: the
    # stack has no key, and says so).
    refreshed = client.post(reverse("stack_services", args=[stack.pk]), HTTP_HX_REQUEST="true")
    assert poll in refreshed.content.decode()


def test_a_stale_table_queues_one_read_per_interval_and_changes_no_row(
    client, deployed, operator, viewer, queued_reads
):
    row = service(deployed, minutes_ago=5)
    client.force_login(operator)
    html = table(client, deployed)
    assert queued_reads == [(deployed.pk, 3 * stack_views.SERVICES_POLL_SECONDS)]
    # The rows are shown as they are; the worker's read updates them for a later poll.
    assert "Running" in html and f'<time datetime="{row.last_seen_at.isoformat()}">' in html
    assert Service.objects.get().last_seen_at == row.last_seen_at
    # Every open page shares that read until the interval is over.
    table(client, deployed)
    client.force_login(viewer)
    table(client, deployed)
    assert len(queued_reads) == 1
    cache.delete(f"stack-services-read:{deployed.pk}")  # the interval is over
    table(client, deployed)
    assert len(queued_reads) == 2
    assert Service.objects.get().state == ServiceState.RUNNING


def test_the_read_records_the_rows_and_forgets_the_last_failure(client, deployed, operator, reads):
    service(deployed, minutes_ago=5)
    cache.set(tasks.services_unread_key(deployed.pk), UNREACHABLE, 60)
    tasks.read_stack_services(deployed.pk, 60)
    assert reads == [deployed.pk]
    assert Service.objects.get().state == ServiceState.EXITED
    assert cache.get(tasks.services_unread_key(deployed.pk)) is None
    client.force_login(operator)
    html = table(client, deployed)
    assert "Exited" in html and "Could not read" not in html
    # A stack deleted before the worker came to it is not read.
    stack_id = deployed.pk
    deployed.delete()
    tasks.read_stack_services(stack_id, 60)
    assert reads == [stack_id]


def test_a_failed_read_is_said_on_every_open_page_while_the_rows_are_stale(
    client, deployed, operator, viewer, unreachable, queued_reads
):
    service(deployed, minutes_ago=5)
    tasks.read_stack_services(deployed.pk, 60)
    assert unreachable == [deployed.pk]
    assert cache.get(tasks.services_unread_key(deployed.pk)) == UNREACHABLE
    said = f"Could not read the containers from gpu-1: {UNREACHABLE}"
    client.force_login(operator)
    first = table(client, deployed)
    assert said in first and "The table shows what was last seen." in first
    assert 'role="alert"' not in first
    client.force_login(viewer)
    assert said in table(client, deployed)
    # The read ran in the worker, never in a request.
    assert unreachable == [deployed.pk] and len(queued_reads) == 1
    # Seen again since (a press of Refresh): the old failure is not said.
    Service.objects.update(last_seen_at=timezone.now())
    assert "Could not read" not in table(client, deployed)


@pytest.mark.parametrize("case", ["never deployed", "action under way", "seen lately"])
def test_no_read_where_it_would_tell_nothing_new(client, stack, operator, queued_reads, case):
    if case == "never deployed":
        service(stack, minutes_ago=60)
    else:
        stack.rendered_files = {"docker-compose.yml": "services: {}\n"}
        stack.save(update_fields=["rendered_files"])
        if case == "action under way":
            make_deployment(stack, user=operator, status=RunStatus.RUNNING)
            service(stack, minutes_ago=60)
        else:
            make_deployment(stack, user=operator)
            service(stack, minutes_ago=0.1)
    client.force_login(operator)
    html = table(client, stack)
    assert queued_reads == []
    assert "Running" in html
    assert re.search(r"Could not read", html) is None


def skipped_polls(page, at_least: int) -> None:
    """Wait until the page skipped that many polls (the CSP forbids wait_for_function's eval)."""
    for _ in range(150):
        if page.evaluate("window.skipped") >= at_least:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"the page skipped fewer than {at_least} polls")


@pytest.mark.slow
def test_in_a_browser_the_table_follows_the_server_and_rests_while_the_tab_is_hidden(
    live_server, transactional_db, page, monkeypatch, tmp_path, eager_tasks
):
    from playwright.sync_api import expect

    from testkit.browser import log_in
    from testkit.factories import make_team, make_user

    monkeypatch.setattr(stack_views, "SERVICES_POLL_SECONDS", 1)
    team = make_team("Alpha")
    operator = add_member(team, make_user("ops-alice"), role=Role.OPERATOR)
    stack = make_stack(make_server(team, name="gpu-1"), name="chatbot")
    make_deployment(stack, user=operator)
    stack.rendered_files = {"docker-compose.yml": "services: {}\n"}
    stack.save(update_fields=["rendered_files"])
    forget_reads(stack)
    service(stack, minutes_ago=60)
    answers = {"state": ServiceState.RUNNING}

    def refresh(stack):
        stack.services.update(last_seen_at=timezone.now(), state=answers["state"])
        return {}

    # The worker's read, run where the table queues it.
    monkeypatch.setattr(tasks, "refresh_services", refresh)
    polls = []
    page.on("request", lambda r: "/services/table/" in r.url and polls.append(r.url))
    log_in(page, live_server.url, "ops-alice", operator.raw_password)
    page.goto(f"{live_server.url}/stacks/{stack.pk}/")
    row = page.locator("#services tbody tr").filter(has_text="fastgpt")
    expect(row).to_contain_text("Running")
    refresh_button = page.locator("#services-refresh")
    refresh_button.focus()

    answers["state"] = ServiceState.EXITED
    expect(row).to_contain_text("Exited")
    assert page.url == f"{live_server.url}/stacks/{stack.pk}/"
    # The swap gave the focus back to the same button.
    expect(refresh_button).to_be_focused()
    page.screenshot(path=str(tmp_path / "services.png"), full_page=True)

    # A hidden tab asks nothing (its polls are skipped); shown again, it asks at once.
    page.evaluate(
        "window.skipped = 0;"
        "document.addEventListener('htmx:beforeRequest', (event) => {"
        "  if (event.detail.elt.id === 'services' && document.hidden) window.skipped++; });"
        "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    skipped_polls(page, at_least=1)
    asked = len(polls)
    answers["state"] = ServiceState.RESTARTING
    skipped_polls(page, at_least=3)
    assert len(polls) == asked
    expect(row).to_contain_text("Exited")
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    expect(row).to_contain_text("Restarting")


def test_while_redis_is_away_the_table_shows_the_rows_as_last_read_and_says_why(
    client, deployed, operator
):
    row = service(deployed, minutes_ago=5)
    client.force_login(operator)
    # The cache on a port where nothing answers, as while Redis restarts.
    away = {**django_settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}

    with override_settings(CACHES={**django_settings.CACHES, "default": away}):
        html = table(client, deployed)

    assert "Running" in html and f'<time datetime="{row.last_seen_at.isoformat()}">' in html
    assert "could not reach its Redis" in html
