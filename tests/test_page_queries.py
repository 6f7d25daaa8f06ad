"""Pages that list runs and deployments read them in a fixed number of queries, however many
rows they show: a run's title comes from the deployment read with it, not a query per row."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deployments.choices import PipelineKind, RunStatus
from deployments.models import IdleGuard, PipelineRun
from testkit.factories import make_deployment, make_server, make_stack


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def queries_before_and_after(client, url: str, add, first: int, then: int) -> tuple[int, int]:
    """The page's queries with `first` rows added, then with `then` more (add(n) adds n)."""
    add(first)
    queries_for(client, url)  # the first request fills per-process caches
    few = queries_for(client, url)
    add(then)
    return few, queries_for(client, url)


@pytest.mark.parametrize(
    "url_of",
    [
        pytest.param(lambda server: reverse("dashboard"), id="dashboard"),
        pytest.param(lambda server: reverse("deployment_list"), id="history"),
        pytest.param(lambda server: reverse("server_detail", args=[server.pk]), id="server"),
        pytest.param(lambda server: reverse("search") + "?q=deploy", id="search"),
    ],
)
def test_more_deployments_take_no_more_queries(client, team, owner, url_of):
    server = make_server(team, name="gpu-q")
    stack = make_stack(server, name="chatbot")
    client.force_login(owner)

    def add(count: int) -> None:
        for _ in range(count):
            make_deployment(stack, user=owner, status=RunStatus.FAILED)
            make_deployment(stack, user=owner, status=RunStatus.RUNNING)
        PipelineRun.objects.update(kind=PipelineKind.STACK_DEPLOY)

    few, many = queries_before_and_after(client, url_of(server), add, 1, 4)
    assert many == few, f"{few} queries for 2 deployments, {many} for 10"


def test_more_stacks_on_a_server_take_no_more_queries_on_its_page(client, team, owner):
    server = make_server(team, name="gpu-s")
    client.force_login(owner)
    url = reverse("server_detail", args=[server.pk])

    def add(count: int) -> None:
        for _ in range(count):
            stack = make_stack(server)
            make_deployment(stack, user=owner, status=RunStatus.SUCCEEDED)

    few, many = queries_before_and_after(client, url, add, 1, 4)
    assert many == few, f"{few} queries for 1 stack, {many} for 5"


def test_more_servers_take_no_more_queries_on_the_dashboard(client, team, owner):
    """Each server row's idle badge reads its guard with the servers, not one query a row."""
    client.force_login(owner)
    url = reverse("dashboard")

    def add(count: int) -> None:
        for n in range(count):
            server = make_server(team, hourly_price=Decimal("1.50"))
            if n % 2:  # servers with and without a guard of their own
                IdleGuard.objects.create(server=server, enabled=True)

    few, many = queries_before_and_after(client, url, add, 2, 6)
    assert many == few, f"{few} queries for 2 servers, {many} for 8"
