"""Redis, the Celery broker and the channel layer, restarted under a real worker: the run under way
ends as if nothing happened, a run whose message the restart lost is sent again by the reaper, and
nothing runs twice or goes missing.

Each test starts a Redis of its own (testkit/private_redis.py) and points its worker at it: the
Redis of REDIS_URL is shared by the whole test run and is never restarted.
"""

import pytest
from django.db import transaction

from deployments.actions.pipelines import do_start_run
from deployments.choices import EventKind, RunStatus, StepStatus
from deployments.models import PipelineRun
from deployments.tasks import reap_stale_runs, run_pipeline
from testkit.factories import make_team
from testkit.pipelines import STEPS, journal_lines, step_rows
from testkit.private_redis import PrivateRedis
from testkit.workers import Worker, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.engine_agnostic,
    pytest.mark.django_db(transaction=True),
]

# The worker beats every second and calls a run stale (or a queued one lost) after two.
WORKER_ENV = {"PIPELINE_HEARTBEAT_SECONDS": "1", "PIPELINE_STALE_AFTER": "2"}
EVERY_STEP_ONCE = [
    (0, "first", 1, StepStatus.SUCCEEDED),
    (1, "second", 1, StepStatus.SUCCEEDED),
    (2, "third", 1, StepStatus.SUCCEEDED),
]
# What each step records: its start, its two lines ("starting", "done"), its end.
STEP_EVENTS = (EventKind.STEP_STARTED, EventKind.OUTPUT, EventKind.OUTPUT, EventKind.STEP_FINISHED)


@pytest.fixture
def private_redis():
    with PrivateRedis() as server:
        yield server


@pytest.fixture
def worker(private_redis, transactional_db, tmp_path):
    worker = Worker(tmp_path / "worker.log", env={**WORKER_ENV, "REDIS_URL": private_redis.url})
    yield worker.start()
    worker.stop()


@pytest.fixture
def sent_to_private_redis(private_redis, monkeypatch):
    """Actions queue their runs on the test's own Redis, once their transaction commits."""

    def delay_on_commit(run_id: int) -> None:
        transaction.on_commit(lambda: private_redis.send_task(run_pipeline.name, run_id))

    monkeypatch.setattr(run_pipeline, "delay_on_commit", delay_on_commit)


def wait_for_status(run: PipelineRun, status: RunStatus, timeout: float = 60) -> PipelineRun:
    def reached():
        run.refresh_from_db()
        return run.status == status

    wait_until(reached, timeout, f"run {run.pk} to be {status} (it is {run.status}: {run.error})")
    return run


def event_kinds(run: PipelineRun) -> list[tuple[int, str, int | None]]:
    return list(run.events.order_by("seq").values_list("seq", "kind", "step_index"))


def test_a_redis_restart_mid_run_loses_neither_the_run_nor_the_run_queued_behind_it(
    private_redis, worker, sent_to_private_redis, tmp_path
):
    team = make_team()
    journal, queued_journal = tmp_path / "journal.txt", tmp_path / "queued.txt"
    release = tmp_path / "release"
    run = do_start_run(
        team=team,
        kind=STEPS,
        params={"journal": str(journal), "block_at": 1, "release": str(release)},
    )
    wait_until(
        lambda: run.steps.filter(index=1, status=StepStatus.RUNNING).exists(),
        30,
        "step 'second' to start",
    )
    # The worker runs one task at a time: this run's message waits in Redis.
    queued = do_start_run(team=team, kind=STEPS, params={"journal": str(queued_journal)})

    private_redis.restart()
    release.touch()

    wait_for_status(run, RunStatus.SUCCEEDED)
    assert journal_lines(journal) == [
        "0 first attempt=1",
        "1 second attempt=1",
        "2 third attempt=1",
    ]
    assert step_rows(run) == EVERY_STEP_ONCE
    # The events are numbered without a gap: none was lost while Redis was away.
    assert event_kinds(run) == [
        (1, EventKind.RUN_STARTED, None),
        *(
            (2 + 4 * index + offset, kind, index)
            for index in range(3)
            for offset, kind in enumerate(STEP_EVENTS)
        ),
        (14, EventKind.RUN_FINISHED, None),
    ]

    # Beat's reaper task, through the restarted Redis: the run whose message the restart took
    # is sent again (the worker sends it on the broker it reconnected to).
    def sent_again():
        queued.refresh_from_db()
        if queued.status != RunStatus.QUEUED:
            return True
        private_redis.send_task(reap_stale_runs.name)
        return False

    wait_until(sent_again, 30, "the reaper to send the queued run again", interval=1)
    wait_for_status(queued, RunStatus.SUCCEEDED)
    assert step_rows(queued) == EVERY_STEP_ONCE
    assert len(journal_lines(queued_journal)) == 3
