"""The pipeline runner, called in this process: claim, steps, failure, retry, cancel, reaper."""

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from django.db import connections
from django.utils import timezone

from deployments.actions import ActionError
from deployments.actions.pipelines import do_cancel_run, do_retry_run, do_start_run
from deployments.choices import EventKind, RunStatus, StepStatus
from deployments.models import AuditEvent, PipelineEvent, PipelineRun, StepRun
from deployments.pipelines import Pipeline, StepFailed, events, reaper, register, runner
from deployments.tasks import reap_stale_runs, run_pipeline
from testkit.factories import make_team
from testkit.pipelines import STEPS, journal_lines, step_rows
from testkit.workers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "test-host:1"


@pytest.fixture
def team():
    return make_team()


@pytest.fixture
def journal(tmp_path):
    return tmp_path / "journal.txt"


@pytest.fixture
def enqueued(monkeypatch):
    """Ids sent to run_pipeline; here the test calls runner.run itself."""
    sent = []
    monkeypatch.setattr(run_pipeline, "delay_on_commit", sent.append)
    return sent


def make_run(team, kind=STEPS, status=RunStatus.QUEUED, **fields) -> PipelineRun:
    return PipelineRun.objects.create(team=team, kind=kind, status=status, **fields)


def events_of(run) -> list[tuple]:
    return list(
        PipelineEvent.objects.filter(run=run).order_by("seq").values_list("seq", "kind", "message")
    )


# Pipelines of this module only: their steps act on the run from inside a step.


def _cancel_from_inside(ctx):
    do_cancel_run(ctx.run)
    return "asked to cancel"


def _reap_from_inside(ctx):
    # The reaper decides this worker is dead while the step still runs.
    reaped = reaper.reap_stale_runs(stale_after=0)
    ctx.log(f"reaped {reaped}")
    return "done, but too late"


def _never(ctx):
    raise AssertionError("this step must not run")


_heartbeats: list = []


def _sleep_and_watch_heartbeat(ctx):
    _heartbeats.append(PipelineRun.objects.get(pk=ctx.run.pk).heartbeat_at)
    time.sleep(0.5)
    _heartbeats.append(PipelineRun.objects.get(pk=ctx.run.pk).heartbeat_at)


CANCELS = register(Pipeline("tests.cancels", (("ask", _cancel_from_inside), ("after", _never))))
REAPED = register(Pipeline("tests.reaped", (("slow", _reap_from_inside), ("after", _never))))
WATCHED = register(Pipeline("tests.heartbeat", (("sleep", _sleep_and_watch_heartbeat),)))
FAILS_PLAINLY = register(
    Pipeline("tests.step-failed", (("check disk", lambda ctx: _raise(StepFailed("Disk full."))),))
)


def _raise(exc):
    raise exc


def test_steps_run_in_order_and_the_run_succeeds_with_rows_timings_output_and_events(team, journal):
    run = make_run(team, params={"journal": str(journal)})

    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.error == ""
    assert run.next_step == 3
    assert run.claimed_by == WORKER
    assert run.started_at <= run.finished_at
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
    rows = list(StepRun.objects.filter(run=run).order_by("index"))
    assert [row.output for row in rows] == [
        "first: starting\nfirst: done",
        "second: starting\nsecond: done",
        "third: starting\nthird: done",
    ]
    assert all(run.started_at <= row.started_at <= row.finished_at for row in rows)
    assert rows[0].finished_at <= rows[1].started_at
    kinds = [kind for _, kind, _ in events_of(run)]
    assert kinds == [
        EventKind.RUN_STARTED,
        *[EventKind.STEP_STARTED, EventKind.OUTPUT, EventKind.OUTPUT, EventKind.STEP_FINISHED] * 3,
        EventKind.RUN_FINISHED,
    ]
    output = PipelineEvent.objects.filter(run=run, kind=EventKind.OUTPUT, step_index=1)
    assert [event.message for event in output] == ["second: starting", "second: done"]


def test_event_seq_numbers_are_contiguous_from_one(team):
    run = make_run(team)

    runner.run(run.pk, WORKER)

    seqs = [seq for seq, _, _ in events_of(run)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_events_written_at_once_by_several_threads_get_distinct_contiguous_seqs(team):
    run = make_run(team, status=RunStatus.RUNNING)
    errors = []

    def write(thread: int):
        try:
            for line in range(10):
                events.record(
                    run.pk, EventKind.OUTPUT, status=RunStatus.RUNNING, message=f"{thread}.{line}"
                )
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert [seq for seq, _, _ in events_of(run)] == list(range(1, 41))


def test_a_failing_step_fails_the_run_with_its_message_and_later_steps_do_not_run(team, journal):
    run = make_run(
        team, params={"journal": str(journal), "fail_at": 1, "fail_message": "Image not found."}
    )

    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "Step 'second' failed: Image not found."
    assert run.next_step == 1
    assert run.finished_at is not None
    assert journal_lines(journal) == ["0 first attempt=1", "1 second attempt=1"]
    assert step_rows(run) == [
        (0, "first", 1, StepStatus.SUCCEEDED),
        (1, "second", 1, StepStatus.FAILED),
    ]
    failed = StepRun.objects.get(run=run, index=1)
    assert failed.error == "Image not found."
    assert failed.output == "second: starting"
    assert events_of(run)[-1][1:] == (EventKind.RUN_FINISHED, run.error)


def test_step_failed_message_is_shown_as_is(team):
    run = make_run(team, kind=FAILS_PLAINLY.kind)

    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.error == "Step 'check disk' failed: Disk full."


def test_an_unexpected_exception_fails_the_run_with_a_short_message_and_no_traceback(team):
    run = make_run(team, params={"crash_at": 0})

    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "Step 'first' failed: Unexpected error: boom"
    assert "RuntimeError" not in run.error
    assert "Traceback" not in StepRun.objects.get(run=run).error


def test_an_unknown_kind_fails_the_run_with_a_readable_message(team):
    run = make_run(team, kind="no-such-pipeline")

    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "There is no pipeline called 'no-such-pipeline'" in run.error
    assert not StepRun.objects.filter(run=run).exists()


def test_do_start_run_refuses_an_unknown_kind(team, enqueued):
    with pytest.raises(ActionError, match="no pipeline called 'nope'"):
        do_start_run(team=team, kind="nope")

    assert not PipelineRun.objects.exists()
    assert enqueued == []


def test_do_start_run_queues_the_run_audits_it_and_enqueues_it(team, enqueued):
    run = do_start_run(team=team, kind=STEPS, params={"sleep": 0})

    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert run.params == {"sleep": 0}
    assert enqueued == [run.pk]
    audit = AuditEvent.objects.get(action="pipeline.start")
    assert (audit.team, audit.target_id, audit.details) == (team, str(run.pk), {"kind": STEPS})


@pytest.mark.parametrize(
    ("status", "claimed_by"),
    [
        (RunStatus.RUNNING, "other-host:2"),
        (RunStatus.SUCCEEDED, WORKER),
        (RunStatus.FAILED, WORKER),
        (RunStatus.CANCELLED, ""),
    ],
)
def test_run_does_nothing_unless_the_run_is_queued(team, journal, status, claimed_by):
    run = make_run(team, status=status, claimed_by=claimed_by, params={"journal": str(journal)})

    runner.run(run.pk, WORKER)

    after = PipelineRun.objects.get(pk=run.pk)
    assert (after.status, after.claimed_by, after.next_step) == (status, claimed_by, 0)
    assert journal_lines(journal) == []
    assert not StepRun.objects.filter(run=run).exists()
    assert not PipelineEvent.objects.filter(run=run).exists()


def test_a_second_run_call_after_success_runs_nothing_again(team, journal):
    run = make_run(team, params={"journal": str(journal)})

    runner.run(run.pk, WORKER)
    runner.run(run.pk, "another-host:3")

    assert len(journal_lines(journal)) == 3
    assert StepRun.objects.filter(run=run).count() == 3


def test_retry_resumes_at_the_failed_step_and_keeps_the_old_step_rows(team, journal, enqueued):
    run = make_run(team, params={"journal": str(journal), "fail_at": 1, "until_attempt": 1})
    runner.run(run.pk, WORKER)

    retried = do_retry_run(run)

    assert enqueued == [run.pk]
    assert (retried.status, retried.attempt, retried.error) == (RunStatus.QUEUED, 2, "")
    audit = AuditEvent.objects.get(action="pipeline.retry")
    assert audit.details == {"kind": STEPS, "attempt": 2, "resume_at": 1}

    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
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
    resumed = PipelineEvent.objects.filter(run=run, kind=EventKind.RUN_STARTED).last()
    assert resumed.message == f"Resuming {STEPS} at step 'second' (attempt 2)."


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED])
def test_retry_is_refused_unless_the_run_failed_or_was_cancelled(team, enqueued, status):
    run = make_run(team, status=status)

    with pytest.raises(ActionError, match="Only a failed or cancelled run can be retried"):
        do_retry_run(run)

    run.refresh_from_db()
    assert (run.status, run.attempt) == (status, 1)
    assert enqueued == []
    assert not AuditEvent.objects.filter(action="pipeline.retry").exists()


def test_cancelling_a_queued_run_cancels_it_at_once_and_a_worker_then_skips_it(team, journal):
    run = make_run(team, params={"journal": str(journal)})

    do_cancel_run(run)
    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.finished_at is not None
    assert journal_lines(journal) == []
    assert AuditEvent.objects.get(action="pipeline.cancel").details == {
        "kind": STEPS,
        "was": "queued",
    }
    assert events_of(run) == [(1, EventKind.RUN_FINISHED, "Cancelled before it started.")]


def test_cancel_requested_during_a_step_stops_the_run_before_the_next_step(team):
    run = make_run(team, kind=CANCELS.kind)

    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.error == "Cancelled before step 'after'."
    assert run.next_step == 1
    assert step_rows(run) == [(0, "ask", 1, StepStatus.SUCCEEDED)]
    assert AuditEvent.objects.get(action="pipeline.cancel").details["was"] == "running"


def test_a_waiting_step_that_checks_for_cancel_stops_when_cancelled(team, journal, tmp_path):
    run = make_run(
        team,
        params={"journal": str(journal), "block_at": 1, "release": str(tmp_path / "never")},
    )
    thread = threading.Thread(target=_closing, args=(runner.run, run.pk, WORKER))
    thread.start()
    try:
        wait_until(
            lambda: StepRun.objects.filter(run=run, index=1).exists(), 10, "step 'second' to start"
        )
        do_cancel_run(run)
    finally:
        thread.join(20)

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.error == "Cancelled during step 'second'."
    assert run.next_step == 1
    assert StepRun.objects.get(run=run, index=1).error == "Cancelled."
    assert journal_lines(journal) == ["0 first attempt=1", "1 second attempt=1"]


def test_cancel_is_refused_for_a_finished_run(team):
    run = make_run(team, status=RunStatus.SUCCEEDED)

    with pytest.raises(ActionError, match="this one is succeeded"):
        do_cancel_run(run)


def _closing(func, *args):
    """Call func in a thread of its own, then close that thread's database connections
    (an open one keeps the test database from being dropped)."""
    try:
        return func(*args)
    finally:
        connections.close_all()


def test_reaper_fails_a_stale_run_with_a_readable_message_and_leaves_a_fresh_one_alone(team):
    now = timezone.now()
    last_beat = now - timedelta(seconds=120)
    stale = make_run(
        team, status=RunStatus.RUNNING, claimed_by="dead:1", heartbeat_at=last_beat, next_step=1
    )
    StepRun.objects.create(
        run=stale,
        index=0,
        name="first",
        status=StepStatus.SUCCEEDED,
        started_at=last_beat,
        finished_at=last_beat,
    )
    StepRun.objects.create(run=stale, index=1, name="second", started_at=last_beat)
    fresh = make_run(
        team,
        status=RunStatus.RUNNING,
        claimed_by="alive:2",
        heartbeat_at=now - timedelta(seconds=5),
    )

    assert reaper.reap_stale_runs(now=now, stale_after=60) == 1

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == RunStatus.FAILED
    assert stale.error.startswith(
        "The worker running this stopped responding during step 'second' (last heartbeat "
    )
    assert stale.error.endswith("). Retry to resume from that step.")
    assert stale.finished_at == now
    assert step_rows(stale) == [
        (0, "first", 1, StepStatus.SUCCEEDED),
        (1, "second", 1, StepStatus.FAILED),
    ]
    assert events_of(stale) == [(1, EventKind.RUN_FINISHED, stale.error)]
    assert fresh.status == RunStatus.RUNNING
    assert reaper.reap_stale_runs(now=now, stale_after=60) == 0


def test_reaper_cancels_a_stale_run_whose_cancel_was_asked_before_its_worker_died(team):
    now = timezone.now()
    last_beat = now - timedelta(seconds=120)
    run = make_run(team, status=RunStatus.RUNNING, claimed_by="dead:1", heartbeat_at=last_beat)
    StepRun.objects.create(run=run, index=0, name="first", started_at=last_beat)
    do_cancel_run(run)

    assert reaper.reap_stale_runs(now=now, stale_after=60) == 1

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.error.startswith(
        "Cancelled during step 'first': the worker stopped after the cancel was asked "
        "(last heartbeat "
    )
    assert run.finished_at == now
    step = StepRun.objects.get(run=run)
    assert (step.status, step.error, step.finished_at) == (StepStatus.FAILED, "Cancelled.", now)
    assert events_of(run) == [(1, EventKind.RUN_FINISHED, run.error)]


def test_reaper_leaves_alone_a_run_that_beat_after_it_was_read(team):
    now = timezone.now()
    run = make_run(
        team, status=RunStatus.RUNNING, claimed_by="slow:1", heartbeat_at=now - timedelta(hours=1)
    )
    as_read_by_reaper = PipelineRun.objects.get(pk=run.pk)
    PipelineRun.objects.filter(pk=run.pk).update(heartbeat_at=now)

    assert reaper._reap(as_read_by_reaper, now) is False

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_a_run_reaped_while_its_step_ran_does_not_report_success(team):
    run = make_run(team, kind=REAPED.kind)

    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "stopped responding during step 'slow'" in run.error
    assert run.next_step == 0
    step = StepRun.objects.get(run=run)
    assert step.status == StepStatus.FAILED
    assert step.output == "reaped 1\ndone, but too late"
    assert not PipelineEvent.objects.filter(run=run, kind=EventKind.STEP_FINISHED).exists()


def test_requeue_sends_long_queued_runs_again_once_per_period(team, enqueued):
    now = timezone.now()
    old = make_run(team, heartbeat_at=now - timedelta(minutes=5))
    make_run(team, heartbeat_at=now)

    assert reaper.requeue_lost_runs(enqueued.append, now=now, stale_after=60) == 1
    assert reaper.requeue_lost_runs(enqueued.append, now=now, stale_after=60) == 0

    assert enqueued == [old.pk]
    old.refresh_from_db()
    assert (old.status, old.heartbeat_at) == (RunStatus.QUEUED, now)


def test_the_periodic_task_fails_stale_runs_and_sends_lost_queued_runs_again(
    team, enqueued, settings
):
    settings.PIPELINE_STALE_AFTER = 60
    long_ago = timezone.now() - timedelta(minutes=5)
    lost = make_run(team, heartbeat_at=long_ago)
    dead = make_run(team, status=RunStatus.RUNNING, claimed_by="dead:1", heartbeat_at=long_ago)

    assert reap_stale_runs() == 1

    dead.refresh_from_db()
    assert dead.status == RunStatus.FAILED
    assert enqueued == [lost.pk]
    beat = settings.CELERY_BEAT_SCHEDULE["reap-stale-pipeline-runs"]
    assert beat["task"] == reap_stale_runs.name


def test_the_heartbeat_advances_while_a_long_step_runs(team, settings):
    settings.PIPELINE_HEARTBEAT_SECONDS = 0.1
    _heartbeats.clear()
    run = make_run(team, kind=WATCHED.kind)

    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    before, after = _heartbeats
    assert after > before


def test_an_unreachable_channel_layer_does_not_fail_the_run(team, settings, caplog):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    run = make_run(team)

    runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert "Could not publish event" in caplog.text


@pytest.mark.asyncio
async def test_events_are_published_to_the_group_of_the_run_on_a_real_redis_layer(team):
    run = await asyncio.to_thread(_closing, make_run, team)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.group_name(run.pk), channel)
    try:
        await asyncio.to_thread(_closing, runner.run, run.pk, WORKER)
        received = []
        while not received or received[-1]["kind"] != EventKind.RUN_FINISHED:
            received.append(await asyncio.wait_for(layer.receive(channel), 5))
    finally:
        await layer.group_discard(events.group_name(run.pk), channel)

    stored = await asyncio.to_thread(_closing, events_of, run)
    assert [(m["seq"], m["kind"], m["message"]) for m in received] == stored
    assert {m["type"] for m in received} == {"pipeline.event"}
    assert {m["run_id"] for m in received} == {run.pk}
    assert received[0]["status"] == RunStatus.RUNNING
    assert received[-1]["status"] == RunStatus.SUCCEEDED
    assert [m["step_index"] for m in received if m["kind"] == EventKind.STEP_STARTED] == [0, 1, 2]
