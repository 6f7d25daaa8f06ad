"""A real browser on a deployment's page while it runs and when it ends: the page says what the
run is, and once it has succeeded, without a reload, what to do next; rolling back is offered
as a secondary action, and never on the deployment the stack already runs."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from deployments.choices import (
    DeploymentAction,
    EventKind,
    PipelineKind,
    Role,
    RunStatus,
    StepStatus,
)
from deployments.models import Deployment, PipelineRun, StepRun
from deployments.pipelines import events
from testkit.browser import log_in
from testkit.factories import (
    add_member,
    make_deployment,
    make_run,
    make_server,
    make_stack,
    make_team,
    make_user,
)

pytestmark = pytest.mark.slow

FILES = {"docker-compose.yml": "services: {}\n"}


def test_a_finished_deploy_says_what_next_and_rolls_back_only_elsewhere(
    live_server, transactional_db, page, tmp_path
):
    team = make_team("Alpha")
    operator = make_user("ops-olga")
    add_member(team, operator, role=Role.OPERATOR)
    stack = make_stack(make_server(team, name="gpu-1"), name="chatbot")
    earlier = make_deployment(stack, rendered_files=FILES)
    run = make_run(
        team,
        status=RunStatus.RUNNING,
        kind=PipelineKind.STACK_DEPLOY,
        params={"stack_id": stack.pk},
        started_at=timezone.now(),
    )
    current = Deployment.objects.create(
        team=team, stack=stack, run=run, action=DeploymentAction.DEPLOY, rendered_files=FILES
    )
    StepRun.objects.create(
        run=run, index=0, name="check server", status=StepStatus.RUNNING, started_at=timezone.now()
    )
    events.record(run.pk, EventKind.STEP_STARTED, status=RunStatus.RUNNING, step_index=0)

    log_in(page, live_server.url, "ops-olga", operator.raw_password)
    page.goto(f"{live_server.url}{reverse('deployment_detail', args=[current.pk])}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Deploy stack chatbot on gpu-1")
    assert "Deploy stack chatbot on gpu-1" in page.title()
    expect(page.locator("[data-run-position]")).to_contain_text("Step 1 of 9:")
    expect(page.locator("#run-next")).to_have_count(0)
    expect(page.get_by_role("button", name="Roll back to these files")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "deploy-running.png"), full_page=True)

    # The worker finishes the run; the page follows without a reload.
    now = timezone.now()
    StepRun.objects.filter(run=run).update(status=StepStatus.SUCCEEDED, finished_at=now)
    PipelineRun.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED, finished_at=now, next_step=8
    )
    events.record(run.pk, EventKind.RUN_FINISHED, status=RunStatus.SUCCEEDED, message="Done.")
    next_steps = page.locator("#run-next")
    expect(next_steps).to_contain_text("The stack is deployed", timeout=10_000)
    expect(next_steps.get_by_role("link", name="Open stack chatbot")).to_have_attribute(
        "href", reverse("stack_detail", args=[stack.pk])
    )
    expect(next_steps.get_by_role("link", name="Launch models")).to_be_visible()
    expect(page.locator("[data-run-position]")).to_contain_text("All 9 steps are done")
    page.screenshot(path=str(tmp_path / "deploy-succeeded.png"), full_page=True)

    # What the stack runs now offers no roll back to itself; the earlier deployment does.
    page.reload()
    expect(page.locator("#current-deployment")).to_be_visible()
    expect(page.get_by_role("button", name="Roll back to these files")).to_have_count(0)
    page.goto(f"{live_server.url}{reverse('deployment_detail', args=[earlier.pk])}")
    roll_back = page.get_by_role("button", name="Roll back to these files")
    expect(roll_back).to_have_class(re.compile(r"\bsecondary\b"))
