"""A worker killed (SIGKILL) in the middle of a model launch, once Xinference has the launch:
the reaper fails the run in words, the launch shows as failed rather than launching forever,
and a retry on another worker resumes it, leaving one instance of the model in Xinference."""

import re

import pytest
from django.urls import reverse

from controlpanel.celery import app as celery_app
from deployments.actions.launches import do_launch_model
from deployments.actions.pipelines import do_retry_run
from deployments.choices import EventKind, LaunchStatus, RunStatus, StepStatus
from deployments.models import ModelLaunch, PipelineRun, StepRun
from deployments.pipelines import reaper
from deployments.pipelines.model_launch import LAUNCH
from deployments.stacks.xinference_access import xinference_client
from testkit.pipelines import step_rows
from testkit.real_launches import deployed, embedding_config
from testkit.workers import Worker, stop_all, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Workers beat every second; the reaper calls a run stale after a few silent seconds.
WORKER_ENV = {"PIPELINE_HEARTBEAT_SECONDS": "1", "MODEL_LAUNCH_POLL_SECONDS": "1"}
STALE_AFTER = 5
LAUNCH_DEADLINE = 300
STEPS = tuple(step.name for step in LAUNCH.steps)
CLASS_NAME = re.compile(r"Traceback|\w+(Error|Exception)\b|<class ")


@pytest.fixture
def start_worker(transactional_db, tmp_path, settings):
    """start_worker() starts one single-process worker and waits until it is ready."""
    settings.PIPELINE_STALE_AFTER = STALE_AFTER
    # Messages left by an earlier, interrupted session must not reach these workers.
    celery_app.control.purge()
    workers: list[Worker] = []

    def start() -> Worker:
        worker = Worker(tmp_path / f"worker-{len(workers)}.log", env=WORKER_ENV)
        workers.append(worker)
        return worker.start()

    yield start
    stop_all(workers)


def wait_for_end(run: PipelineRun, timeout: float) -> PipelineRun:
    def ended():
        run.refresh_from_db()
        return run.status not in (RunStatus.QUEUED, RunStatus.RUNNING)

    wait_until(ended, timeout, f"run {run.pk} to end (it is {run.status})", 0.5)
    return run


def test_a_launch_whose_worker_is_killed_mid_launch_is_failed_then_resumed_with_one_model(
    ssh_target_image, team, operator, data_dir, models_dir, settings, start_worker, client
):
    settings.STACK_HEALTH_TIMEOUT = 300
    with deployed(ssh_target_image, team, operator, data_dir, models_dir, auth=False) as stack:
        worker = start_worker()
        launch = do_launch_model(embedding_config(team, operator), stack=stack, user=operator)
        run = launch.run
        uid = launch.model_uid

        # Killed once Xinference has the launch: the moment a retry could launch it twice.
        with xinference_client(stack) as xinference:
            wait_until(
                lambda: xinference.instance_status(uid) is not None,
                LAUNCH_DEADLINE,
                f"Xinference to know of {uid}",
                0.2,
            )
        worker.kill()

        wait_until(reaper.reap_stale_runs, 60, "the reaper to fail the run", 0.5)
        run.refresh_from_db()
        assert run.status == RunStatus.FAILED
        crashed = StepRun.objects.get(run=run, status=StepStatus.FAILED)
        assert crashed.name in ("launch", "wait until ready"), crashed.name
        assert run.error.startswith(
            f"The worker running this stopped responding during step '{crashed.name}' "
            "(last heartbeat "
        )
        assert run.error.endswith("Retry to resume from that step.")
        assert not CLASS_NAME.search(run.error), run.error
        assert run.next_step == crashed.index
        launch.refresh_from_db()
        assert launch.current_status == LaunchStatus.FAILED
        client.force_login(operator)
        page = client.get(reverse("model_launch_detail", args=[launch.pk]))
        assert page.status_code == 200
        assert not CLASS_NAME.search(page.content.decode())

        start_worker()
        do_retry_run(run, user=operator)
        wait_for_end(run, LAUNCH_DEADLINE)

        assert run.status == RunStatus.SUCCEEDED, run.error
        resumed = run.events.filter(kind=EventKind.RUN_STARTED).last()
        assert resumed.message == f"Resuming launch model at step '{crashed.name}' (attempt 2)."
        assert step_rows(run) == [
            *((index, STEPS[index], 1, StepStatus.SUCCEEDED) for index in range(crashed.index)),
            (crashed.index, crashed.name, 1, StepStatus.FAILED),
            *(
                (index, STEPS[index], 2, StepStatus.SUCCEEDED)
                for index in range(crashed.index, len(STEPS))
            ),
        ]
        # Nothing either worker recorded was lost: each step row's start is in the log, and
        # the reaper's word on the first attempt before the second attempt's start.
        assert run.events.filter(kind=EventKind.STEP_STARTED).count() == len(step_rows(run))
        reaped = run.events.filter(kind=EventKind.RUN_FINISHED).first()
        assert reaped.message.startswith("The worker running this stopped responding")
        assert reaped.pk < resumed.pk
        launch.refresh_from_db()
        assert launch.status == LaunchStatus.READY
        assert ModelLaunch.objects.filter(stack=stack).count() == 1
        with xinference_client(stack) as xinference:
            assert list(xinference.models()) == [uid]
