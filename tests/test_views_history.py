from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deployments.choices import DeploymentAction, Role, RunStatus, StepStatus
from deployments.models import StepRun
from testkit.factories import add_member, make_deployment, make_server, make_stack


@pytest.fixture
def history(team, operator, viewer):
    """Two servers, three stacks, deployments by two users with different outcomes."""
    gpu_a = make_server(team, name="gpu-a")
    gpu_b = make_server(team, name="gpu-b")
    prod = make_stack(gpu_a, name="prod")
    test = make_stack(gpu_a, name="test")
    other = make_stack(gpu_b, name="other")
    return {
        "servers": (gpu_a, gpu_b),
        "stacks": (prod, test, other),
        "deployments": [
            make_deployment(prod, user=operator, status=RunStatus.SUCCEEDED),
            make_deployment(prod, user=operator, status=RunStatus.FAILED),
            make_deployment(test, user=viewer, status=RunStatus.SUCCEEDED),
            make_deployment(other, user=operator, status=RunStatus.RUNNING),
        ],
    }


def listed(response) -> list[int]:
    return [d.pk for d in response.context["page"].object_list]


def test_history_lists_the_teams_deployments_newest_first(client, history, viewer):
    client.force_login(viewer)
    response = client.get(reverse("deployment_list"))
    assert listed(response) == [d.pk for d in reversed(history["deployments"])]


def test_filter_by_server_narrows_to_its_stacks(client, history, viewer):
    client.force_login(viewer)
    gpu_a, _ = history["servers"]
    response = client.get(reverse("deployment_list"), {"server": gpu_a.pk})
    assert sorted(listed(response)) == [d.pk for d in history["deployments"][:3]]


def test_filter_by_stack(client, history, viewer):
    client.force_login(viewer)
    prod = history["stacks"][0]
    response = client.get(reverse("deployment_list"), {"stack": prod.pk})
    assert sorted(listed(response)) == [d.pk for d in history["deployments"][:2]]


def test_filter_by_user(client, history, viewer):
    client.force_login(viewer)
    response = client.get(reverse("deployment_list"), {"user": viewer.pk})
    assert listed(response) == [history["deployments"][2].pk]


def test_filter_by_outcome(client, history, viewer):
    client.force_login(viewer)
    response = client.get(reverse("deployment_list"), {"outcome": "failed"})
    assert listed(response) == [history["deployments"][1].pk]


def test_filters_combine(client, history, operator):
    client.force_login(operator)
    prod = history["stacks"][0]
    response = client.get(
        reverse("deployment_list"), {"stack": prod.pk, "user": operator.pk, "outcome": "succeeded"}
    )
    assert listed(response) == [history["deployments"][0].pk]


@pytest.mark.parametrize(
    "params",
    [
        {"server": "abc"},
        {"stack": "999999"},
        {"user": "-1"},
        {"outcome": "exploded"},
        {"server": "1' OR '1'='1"},
        {"page": "abc"},
        {"page": "-3"},
    ],
)
def test_invalid_filter_values_give_a_valid_page_not_a_500(client, history, viewer, params):
    client.force_login(viewer)
    response = client.get(reverse("deployment_list"), params)
    assert response.status_code == 200


def test_another_teams_server_as_a_filter_matches_nothing_and_says_why(
    client, history, viewer, other_team
):
    theirs = make_server(other_team, name="theirs")
    make_deployment(make_stack(theirs))
    client.force_login(viewer)
    response = client.get(reverse("deployment_list"), {"server": theirs.pk})
    assert response.status_code == 200
    assert listed(response) == []
    assert "server" in response.context["form"].errors
    assert "Select a valid choice" in response.content.decode()


def test_history_is_paginated_by_25_and_keeps_the_filters(client, team, viewer):
    stack = make_stack(make_server(team))
    for _ in range(30):
        make_deployment(stack, status=RunStatus.FAILED)
    make_deployment(stack, status=RunStatus.SUCCEEDED)
    client.force_login(viewer)
    first = client.get(reverse("deployment_list"), {"outcome": "failed"})
    assert len(listed(first)) == 25
    assert first.context["page"].paginator.num_pages == 2
    assert "?outcome=failed&amp;page=2" in first.content.decode()
    second = client.get(reverse("deployment_list"), {"outcome": "failed", "page": 2})
    assert len(listed(second)) == 5
    assert not set(listed(first)) & set(listed(second))


def test_a_page_number_past_the_end_shows_the_last_page(client, team, viewer):
    stack = make_stack(make_server(team))
    for _ in range(27):
        make_deployment(stack)
    client.force_login(viewer)
    response = client.get(reverse("deployment_list"), {"page": 99})
    assert response.status_code == 200
    assert response.context["page"].number == 2
    assert len(listed(response)) == 2


def test_an_htmx_request_gets_only_the_table_partial(client, history, viewer):
    client.force_login(viewer)
    response = client.get(
        reverse("deployment_list"), {"outcome": "failed"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="deployment-table">')
    assert "<html" not in html
    assert "topbar" not in html
    assert "HX-Request" in response["Vary"]


def test_an_htmx_history_restore_gets_the_whole_page(client, history, viewer):
    client.force_login(viewer)
    response = client.get(
        reverse("deployment_list"),
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in response.content.decode()


def test_the_filter_form_swaps_the_table_with_htmx(client, history, viewer):
    client.force_login(viewer)
    html = client.get(reverse("deployment_list")).content.decode()
    assert 'hx-target="#deployment-table"' in html
    assert 'hx-push-url="true"' in html
    assert 'hx-get="/deployments/"' in html


def test_detail_shows_the_deployment_its_steps_and_an_escaped_diff(client, team, operator):
    stack = make_stack(make_server(team, name="gpu-a"), name="prod")
    start = timezone.now() - timedelta(minutes=3)
    deployment = make_deployment(
        stack,
        user=operator,
        status=RunStatus.FAILED,
        action=DeploymentAction.UPGRADE,
        files_diff="--- a/config.json\n+++ b/config.json\n+<script>alert(1)</script>\n",
    )
    run = deployment.run
    run.started_at, run.finished_at, run.error = start, start + timedelta(seconds=95), "boom"
    run.save()
    StepRun.objects.create(
        run=run,
        index=0,
        name="upload_files",
        status=StepStatus.SUCCEEDED,
        output="wrote <docker-compose.yml>",
        started_at=start,
        finished_at=start + timedelta(seconds=5),
    )
    StepRun.objects.create(
        run=run,
        index=1,
        name="compose_up",
        status=StepStatus.FAILED,
        error="pull failed",
        started_at=start + timedelta(seconds=5),
        finished_at=start + timedelta(seconds=95),
    )
    client.force_login(operator)
    html = client.get(reverse("deployment_detail", args=[deployment.pk])).content.decode()
    assert "Upgrade" in html
    assert "prod" in html and "gpu-a" in html
    assert operator.username in html
    assert "1 min 35 s" in html
    assert "upload_files" in html and "compose_up" in html and "pull failed" in html
    assert "wrote &lt;docker-compose.yml&gt;" in html
    assert "+&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html


def test_a_running_deployment_follows_its_run_over_the_websocket_and_can_poll(client, team, viewer):
    deployment = make_deployment(make_stack(make_server(team)), status=RunStatus.RUNNING)
    client.force_login(viewer)
    steps_url = reverse("run_steps", args=[deployment.run_id])
    page = client.get(reverse("deployment_detail", args=[deployment.pk])).content.decode()
    # htmx's websocket extension, for the htmx version the page loads, on an element that
    # holds the steps section; the section polls until the socket's first message replaces it.
    assert "django_htmx/htmx-2.min.js" in page and "django_htmx/ext/hx-ws-2.min.js" in page
    assert f'hx-ext="ws" ws-connect="/ws/runs/{deployment.run_id}/"' in page
    assert f'hx-get="{steps_url}" hx-trigger="every 2s"' in page
    assert page.index('id="run-progress"') < page.index('<section id="run-steps"')
    assert "run_events.js" not in page
    partial = client.get(steps_url, headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<section id="run-steps"')
    assert 'hx-trigger="every 2s"' in partial
    assert "ws-connect" not in partial and "<html" not in partial


def test_a_finished_runs_page_neither_connects_nor_polls(client, team, viewer):
    deployment = make_deployment(make_stack(make_server(team)), status=RunStatus.RUNNING)
    client.force_login(viewer)
    steps_url = reverse("run_steps", args=[deployment.run_id])
    deployment.run.status = RunStatus.SUCCEEDED
    deployment.run.save()
    partial = client.get(steps_url, headers={"HX-Request": "true"}).content.decode()
    assert "every 2s" not in partial and "hx-trigger" not in partial
    assert "Succeeded" in partial
    page = client.get(reverse("deployment_detail", args=[deployment.pk])).content.decode()
    assert "ws-connect" not in page and "hx-trigger" not in page
    assert 'id="run-steps"' in page


def test_operators_see_retry_on_a_failed_run_and_cancel_on_a_running_one(
    client, team, operator, viewer
):
    stack = make_stack(make_server(team))
    failed = make_deployment(stack, status=RunStatus.FAILED)
    running = make_deployment(stack, status=RunStatus.RUNNING)
    client.force_login(operator)
    failed_html = client.get(reverse("deployment_detail", args=[failed.pk])).content.decode()
    assert reverse("run_retry", args=[failed.run_id]) in failed_html
    assert reverse("run_cancel", args=[failed.run_id]) not in failed_html
    running_html = client.get(reverse("deployment_detail", args=[running.pk])).content.decode()
    assert reverse("run_cancel", args=[running.run_id]) in running_html
    assert reverse("run_retry", args=[running.run_id]) not in running_html
    client.force_login(viewer)
    viewer_html = client.get(reverse("deployment_detail", args=[failed.pk])).content.decode()
    assert reverse("run_retry", args=[failed.run_id]) not in viewer_html


def test_retry_queues_the_run_again_and_says_so(client, team, operator):
    deployment = make_deployment(make_stack(make_server(team)), status=RunStatus.FAILED)
    client.force_login(operator)
    response = client.post(reverse("run_retry", args=[deployment.run_id]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("deployment_detail", args=[deployment.pk])
    deployment.run.refresh_from_db()
    assert (deployment.run.status, deployment.run.attempt) == (RunStatus.QUEUED, 2)
    assert "Retry queued." in response.content.decode()


def test_a_refused_cancel_shows_the_actions_reason(client, team, operator):
    deployment = make_deployment(make_stack(make_server(team)), status=RunStatus.SUCCEEDED)
    client.force_login(operator)
    response = client.post(reverse("run_cancel", args=[deployment.run_id]), follow=True)
    assert response.status_code == 200
    assert "Only a queued or running run can be cancelled" in response.content.decode()
    deployment.run.refresh_from_db()
    assert not deployment.run.cancel_requested


def test_viewers_cannot_retry_or_cancel(client, team, viewer):
    deployment = make_deployment(make_stack(make_server(team)), status=RunStatus.FAILED)
    client.force_login(viewer)
    assert client.post(reverse("run_retry", args=[deployment.run_id])).status_code == 403
    assert client.post(reverse("run_cancel", args=[deployment.run_id])).status_code == 403
    deployment.run.refresh_from_db()
    assert deployment.run.status == RunStatus.FAILED and deployment.run.attempt == 1


def test_a_member_of_two_teams_sees_both_histories(client, team, other_team, operator):
    add_member(other_team, operator, role=Role.VIEWER)
    mine = make_deployment(make_stack(make_server(team)))
    theirs = make_deployment(make_stack(make_server(other_team)))
    client.force_login(operator)
    assert sorted(listed(client.get(reverse("deployment_list")))) == sorted([mine.pk, theirs.pk])
