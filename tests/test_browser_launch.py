"""A real browser on the launch pages: launch a config on a stack, watch the progress block
follow the launch as htmx polls it, then see a flagged smoke test on the page."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from deployments.choices import LaunchStatus, Role, RunStatus, StackStatus, StepStatus
from deployments.llm.presets import PRESETS
from deployments.models import ModelLaunch, PipelineRun, StepRun
from testkit.factories import add_member, make_server, make_stack, make_team, make_user

pytestmark = pytest.mark.slow


def step(run: PipelineRun, index: int, name: str, status: StepStatus) -> None:
    """Where a worker would have left one of the run's steps."""
    now = timezone.now()
    StepRun.objects.update_or_create(
        run=run,
        index=index,
        attempt=1,
        defaults={
            "name": name,
            "status": status,
            "started_at": now,
            "finished_at": None if status == StepStatus.RUNNING else now,
        },
    )


def test_an_operator_launches_a_model_and_the_page_follows_its_progress(
    live_server, transactional_db, page, tmp_path
):
    team = make_team("Alpha")
    operator = make_user("ops-alice")
    add_member(team, operator, role=Role.OPERATOR)
    make_stack(make_server(team, name="gpu-1"), name="prod", status=StackStatus.RUNNING)
    config = PRESETS["qwen2-instruct-7b"].build(team)
    config.save()

    page.goto(f"{live_server.url}/models/llm/{config.pk}/")
    page.get_by_label("Username").fill("ops-alice")
    page.get_by_label("Password").fill(operator.raw_password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_role("heading", name=f"Launch of {config.model}")).to_be_visible()
    status = page.locator("#launch-status")
    expect(status).to_contain_text("queued, waiting for a worker")

    # No worker runs here: the test moves the launch along as the pipeline would.
    launch = ModelLaunch.objects.get()
    PipelineRun.objects.filter(pk=launch.run_id).update(status=RunStatus.RUNNING)
    ModelLaunch.objects.filter(pk=launch.pk).update(
        status=LaunchStatus.LAUNCHING, progress=0.42, stage="downloading (42%)"
    )
    expect(status).to_contain_text("downloading (42%)", timeout=10_000)
    expect(page.locator("#launch-progress")).to_have_attribute("value", "42")
    expect(status.locator(".badge.status-running")).to_have_text("Running")
    expect(page.get_by_role("button", name="Cancel launch")).to_be_visible()

    ModelLaunch.objects.filter(pk=launch.pk).update(
        status=LaunchStatus.READY,
        progress=1.0,
        stage="ready",
        smoke_test={
            "passed": False,
            "verdict": "json_only",
            "message": 'The answer is only a JSON object: {"answer": 42}.',
            "details": {"kind": "chat"},
        },
    )
    expect(status).to_contain_text("Smoke test flagged this model", timeout=10_000)
    expect(status).to_contain_text("only a JSON object")
    expect(page.get_by_role("button", name="Terminate")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel launch")).to_have_count(0)

    # The model is ready, but the run goes on wiring it into One API and FastGPT: the page
    # follows that too, and says when FastGPT has the model, all without a reload.
    expect(status).to_have_attribute("hx-trigger", "every 2s")
    expect(status).to_contain_text("adding it to One API and FastGPT")
    step(launch.run, 6, "update One API", StepStatus.SUCCEEDED)
    step(launch.run, 7, "update FastGPT", StepStatus.RUNNING)
    expect(page.locator("#wiring-oneapi")).to_have_attribute("data-state", "done", timeout=10_000)
    expect(page.locator("#wiring-fastgpt")).to_have_attribute("data-state", "running")
    expect(status.locator("[data-launch-run-status]")).to_have_text("Running")
    page.screenshot(path=str(tmp_path / "launch-wiring.png"), full_page=True)

    step(launch.run, 7, "update FastGPT", StepStatus.SUCCEEDED)
    step(launch.run, 8, "check FastGPT", StepStatus.SUCCEEDED)
    PipelineRun.objects.filter(pk=launch.run_id).update(status=RunStatus.SUCCEEDED)
    expect(page.locator("#wiring-fastgpt")).to_contain_text("Has the model", timeout=10_000)
    expect(status.locator("[data-launch-run-status]")).to_have_text("Succeeded")
    # Once the whole run is over the block stops polling.
    expect(status).not_to_have_attribute("hx-trigger", "every 2s")
    expect(status).not_to_contain_text("adding it to One API and FastGPT")

    page.get_by_role("link", name="prod").first.click()
    models = page.locator("section#models")
    expect(models).to_contain_text(config.model)
    expect(models).to_contain_text("Flagged")
