"""Pipelines run by real Celery worker processes over a real Redis broker."""

import pytest

from controlpanel.celery import app as celery_app
from deployments.actions.pipelines import do_retry_run, do_start_run
from deployments.choices import RunStatus, StepStatus
from deployments.models import PipelineRun, StepRun
from deployments.pipelines import reaper
from deployments.tasks import run_pipeline
from testkit.factories import make_team
from testkit.pipelines import STEPS, journal_lines, step_rows
from testkit.workers import Worker, stop_all, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Workers beat every second, so a dead one is noticed within a few seconds.
WORKER_ENV = {"PIPELINE_HEARTBEAT_SECONDS": "1"}


@pytest.fixture
def start_workers(transactional_db, tmp_path):
    """start_workers(n) starts n single-process workers and waits until all are ready."""
    # Messages left by an earlier, interrupted session must not reach these workers.
    celery_app.control.purge()
    workers: list[Worker] = []

    def start(count: int = 1) -> list[Worker]:
        new = [
            Worker(tmp_path / f"worker-{len(workers) + n}.log", env=WORKER_ENV).spawn()
            for n in range(count)
        ]
        workers.extend(new)
        return [worker.wait_ready() for worker in new]

    yield start
    stop_all(workers)


@pytest.fixture
def team():
    return make_team()


@pytest.fixture
def journal(tmp_path):
    return tmp_path / "journal.txt"


def wait_for_status(run: PipelineRun, status: RunStatus, timeout: float = 30) -> PipelineRun:
    def reached():
        run.refresh_from_db()
        return run.status == status

    wait_until(reached, timeout, f"run {run.pk} to be {status} (it is {run.status}: {run.error})")
    return run


def test_a_started_run_is_run_to_success_by_a_worker(start_workers, team, journal):
    (worker,) = start_workers()

    run = do_start_run(team=team, kind=STEPS, params={"journal": str(journal)})

    wait_for_status(run, RunStatus.SUCCEEDED)
    assert run.claimed_by.startswith(f"{worker.name}@")
    assert journal_lines(journal) == [
        "0 first attempt=1",
        "1 second attempt=1",
        "2 third attempt=1",
    ]
    assert step_rows(run) == [
        (0, "first", 1, StepStatus.SUCCEEDED),
        (1, "second", 1, StepStatus.SUCCEEDED),
        (2, "third", 1, StepStatus.SUCCEEDED),
    ]


def test_a_run_delivered_three_times_to_two_workers_runs_each_step_once(
    start_workers, team, journal
):
    workers = start_workers(2)

    # Slow steps, so the extra deliveries arrive while the run is in progress.
    run = do_start_run(team=team, kind=STEPS, params={"journal": str(journal), "sleep": 0.3})
    run_pipeline.delay(run.pk)
    run_pipeline.delay(run.pk)

    wait_for_status(run, RunStatus.SUCCEEDED)
    logs = lambda: "".join(worker.log for worker in workers)  # noqa: E731
    wait_until(
        lambda: logs().count("run_pipeline[") >= 6 and logs().count("succeeded in") >= 3,
        10,
        "all three deliveries to be handled",
    )
    assert logs().count(f"Run {run.pk} is not queued") == 2
    assert journal_lines(journal) == [
        "0 first attempt=1",
        "1 second attempt=1",
        "2 third attempt=1",
    ]
    assert StepRun.objects.filter(run=run).count() == 3


def test_a_run_whose_worker_is_killed_is_failed_by_the_reaper_and_a_retry_resumes_it(
    start_workers, team, journal, tmp_path
):
    (worker,) = start_workers()
    run = do_start_run(
        team=team,
        kind=STEPS,
        params={
            "journal": str(journal),
            "block_at": 1,
            "release": str(tmp_path / "never-created"),
            "until_attempt": 1,
        },
    )
    wait_until(
        lambda: StepRun.objects.filter(run=run, index=1, status=StepStatus.RUNNING).exists(),
        30,
        "step 'second' to start",
    )
    claimed = PipelineRun.objects.get(pk=run.pk).heartbeat_at
    wait_until(
        lambda: PipelineRun.objects.get(pk=run.pk).heartbeat_at > claimed,
        10,
        "the worker to beat while its step blocks",
    )
    assert reaper.reap_stale_runs(stale_after=2) == 0

    worker.kill()

    wait_until(lambda: reaper.reap_stale_runs(stale_after=2), 15, "the reaper to fail the run")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith(
        "The worker running this stopped responding during step 'second' (last heartbeat "
    )
    assert run.error.endswith("Retry to resume from that step.")
    assert run.next_step == 1

    start_workers()
    do_retry_run(run)

    wait_for_status(run, RunStatus.SUCCEEDED)
    assert journal_lines(journal) == [
        "0 first attempt=1",
        "1 second attempt=1",
        "1 second attempt=2",
        "2 third attempt=2",
    ]
    assert step_rows(run) == [
        (0, "first", 1, StepStatus.SUCCEEDED),
        (1, "second", 1, StepStatus.FAILED),
        (1, "second", 2, StepStatus.SUCCEEDED),
        (2, "third", 2, StepStatus.SUCCEEDED),
    ]
