"""A worker killed in the middle of a real stack deploy: the run is failed by the reaper,
never left running, and a retry on another worker resumes it at the step it stopped on,
leaving exactly one container per compose service."""

import subprocess

import pytest

from deployments.actions.pipelines import do_retry_run
from deployments.actions.stacks import do_deploy_stack
from deployments.choices import EventKind, Health, RunStatus, StackStatus, StepStatus
from deployments.models import Deployment, PipelineRun, StepRun
from deployments.pipelines import reaper
from deployments.pipelines.stack_deploy import DEPLOY
from testkit.pipelines import step_rows
from testkit.stacks import deployable_stack, project_containers, stack_target
from testkit.workers import wait_until, worker_starter

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Workers beat every second; the reaper calls a run stale after a few silent seconds.
WORKER_ENV = {
    "PIPELINE_HEARTBEAT_SECONDS": "1",
    "STACK_HEALTH_TIMEOUT": "300",
    "STACK_HEALTH_POLL_SECONDS": "1",
}
STALE_AFTER = 5
# Generous: the whole stack is pulled, created and started on a shared machine.
DEPLOY_DEADLINE = 600

STEPS = tuple(step.name for step in DEPLOY.steps)
CRASH_STEP = STEPS.index("wait until healthy")
SERVICES = {"pg", "mongo", "sandbox", "fastgpt", "mysql", "oneapi", "xinference"}


@pytest.fixture
def target(ssh_target_image, data_dir):
    with stack_target(ssh_target_image, data_dir) as target:
        yield target


@pytest.fixture
def stack(target, team, data_dir):
    with deployable_stack(team, target, data_dir) as stack:
        yield stack


@pytest.fixture
def start_worker(transactional_db, tmp_path, settings):
    """start_worker() starts one single-process worker and waits until it is ready."""
    settings.PIPELINE_STALE_AFTER = STALE_AFTER
    with worker_starter(tmp_path, WORKER_ENV) as start:
        yield start


def wait_for_status(run: PipelineRun, status: RunStatus, timeout: float) -> PipelineRun:
    def reached():
        run.refresh_from_db()
        return run.status == status

    wait_until(
        reached, timeout, f"run {run.pk} to be {status} (it is {run.status}: {run.error})", 0.5
    )
    return run


def wait_for_step(run: PipelineRun, index: int) -> None:
    """Wait until step `index` of `run` is running; fail at once if the run ends before."""

    def started():
        run.refresh_from_db()
        assert run.status in (RunStatus.QUEUED, RunStatus.RUNNING), run.error
        return StepRun.objects.filter(run=run, index=index, status=StepStatus.RUNNING).exists()

    wait_until(started, DEPLOY_DEADLINE, f"step '{STEPS[index]}' to start", 0.5)


def container_health(name: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Health.Status}}", name],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def test_a_deploy_whose_worker_is_killed_while_waiting_for_health_is_failed_then_resumed(
    stack, operator, start_worker
):
    worker = start_worker()
    deployment = do_deploy_stack(stack, user=operator)
    run = deployment.run

    wait_for_step(run, CRASH_STEP)
    beat = PipelineRun.objects.get(pk=run.pk).heartbeat_at
    wait_until(
        lambda: PipelineRun.objects.get(pk=run.pk).heartbeat_at > beat,
        30,
        "the worker to beat while it waits for the services",
    )
    assert reaper.reap_stale_runs() == 0, "a run whose worker beats is not stale"

    worker.kill()

    # Dead workers do not beat: the run turns stale and the reaper fails it.
    wait_until(reaper.reap_stale_runs, 60, "the reaper to fail the run", 0.5)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith(
        "The worker running this stopped responding during step 'wait until healthy' "
        "(last heartbeat "
    )
    assert run.error.endswith("Retry to resume from that step.")
    assert run.next_step == CRASH_STEP
    assert run.events.filter(kind=EventKind.RUN_FINISHED).last().message == run.error
    crashed = StepRun.objects.get(run=run, index=CRASH_STEP)
    assert crashed.status == StepStatus.FAILED
    assert crashed.error == "The worker running this step stopped responding."
    assert crashed.finished_at is not None
    # Nothing says the stack is still being deployed.
    assert not Deployment.objects.filter(
        stack=stack, run__status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
    ).exists()
    # `compose up -d` ran before the crash: one container per service is there already.
    containers = project_containers(stack)
    assert set(containers) == SERVICES
    assert all(len(names) == 1 for names in containers.values()), containers

    start_worker()
    do_retry_run(run, user=operator)

    wait_for_status(run, RunStatus.SUCCEEDED, DEPLOY_DEADLINE)
    assert run.attempt == 2
    resumed = run.events.filter(kind=EventKind.RUN_STARTED).last()
    assert resumed.message == "Resuming deploy stack at step 'wait until healthy' (attempt 2)."
    # The steps before the crash ran once, on the first attempt; the crashed step ran again.
    assert step_rows(run) == [
        *((index, STEPS[index], 1, StepStatus.SUCCEEDED) for index in range(CRASH_STEP)),
        (CRASH_STEP, "wait until healthy", 1, StepStatus.FAILED),
        *(
            (index, STEPS[index], 2, StepStatus.SUCCEEDED)
            for index in range(CRASH_STEP, len(STEPS))
        ),
    ]
    services = {service.name: service for service in stack.services.all()}
    assert set(services) == SERVICES
    assert all(service.health == Health.HEALTHY for service in services.values())
    stack.refresh_from_db()
    assert stack.status == StackStatus.RUNNING
    # No duplicates: the same single container per service as before the crash, healthy.
    assert project_containers(stack) == containers
    assert {name: container_health(names[0]) for name, names in containers.items()} == {
        name: "healthy" for name in SERVICES
    }
