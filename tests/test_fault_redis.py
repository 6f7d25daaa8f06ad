"""Redis, the Celery broker and the channel layer, restarted under a real worker and under a
viewer's page: the run under way ends as if nothing happened, a run whose message the restart lost
is sent again by the reaper, nothing runs twice or goes missing, and the page that follows a run's
output says its live updates are interrupted while Redis is away, catches up with the lines
whose live messages were lost, then follows it live again.

Each test starts a Redis of its own (testkit/private_redis.py) and points its worker or web server
at it: the Redis of REDIS_URL is shared by the whole test run and is never restarted.

(The stack's log viewer is not here: its lines come from the web process's own hub, never through
Redis, and its sessions are in the database, so a Redis restart does not reach it.)
"""

import contextlib
import time

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from deployments.actions.pipelines import do_start_run
from deployments.choices import EventKind, Role, RunStatus, StepStatus
from deployments.models import PipelineRun, StepRun
from deployments.pipelines import events
from deployments.tasks import reap_stale_runs, run_pipeline
from testkit.asgi_server import AsgiServer
from testkit.browser import in_thread, log_in
from testkit.factories import add_member, make_run, make_team, make_user
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
    worker.kill()  # idle by then: nothing to finish, and a warm shutdown takes seconds


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


# A viewer's page ----------------------------------------------------------------------------

LIVE_TRIGGER = "htmx:wsClose from:#run-progress"  # a section the websocket sent


@pytest.fixture
def web(private_redis, transactional_db, tmp_path):
    """The panel served by its ASGI server on the test database and the test's own Redis."""
    server = AsgiServer(tmp_path / "web.log", env={"REDIS_URL": private_redis.url}).start()
    yield server
    server.stop()


@pytest.fixture
def publishing_to_private_redis(private_redis, settings):
    """Events this process records are published on the test's own Redis, as a worker's are."""
    layer = settings.CHANNEL_LAYERS["default"]
    settings.CHANNEL_LAYERS = {
        "default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": [private_redis.url]}}
    }


def running_run_and_viewer():
    team = make_team()
    viewer = add_member(team, make_user(), role=Role.VIEWER)
    run = make_run(team, status=RunStatus.RUNNING, kind=STEPS, started_at=timezone.now())
    events.record(run.pk, EventKind.RUN_STARTED, status=RunStatus.RUNNING, message="Started.")
    StepRun.objects.create(
        run=run, index=0, name="first", status=StepStatus.RUNNING, started_at=timezone.now()
    )
    events.record(
        run.pk, EventKind.STEP_STARTED, status=RunStatus.RUNNING, step_index=0, message="first"
    )
    return run, viewer


def output(run: PipelineRun, *lines: str) -> None:
    """Lines of the running step, recorded and published as a worker records them."""
    for line in lines:
        events.record(
            run.pk, EventKind.OUTPUT, status=RunStatus.RUNNING, step_index=0, message=line
        )


def wait_for_output(page, expected: str, timeout_s: float = 15) -> None:
    """The exact text of the first step's output (Playwright's matchers fold whitespace)."""
    pre = page.locator('tr[data-step-index="0"] + tr.step-output pre').first

    def shown():
        with contextlib.suppress(Exception):
            return pre.text_content(timeout=500) == expected
        return False

    deadline = time.monotonic() + timeout_s
    while not shown():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the output never showed {expected!r} (it shows {pre.text_content()!r})"
            )
        page.wait_for_timeout(50)


def test_a_viewer_of_a_run_rides_out_a_redis_restart_and_catches_up_without_a_gap_or_a_repeat(
    private_redis, web, publishing_to_private_redis, page
):
    run, viewer = in_thread(running_run_and_viewer)
    log_in(page, web.url, viewer.username, viewer.raw_password)
    page.goto(f"{web.url}{reverse('run_detail', args=[run.pk])}")
    steps = page.locator("#run-steps")
    expect(steps).to_have_attribute("hx-trigger", LIVE_TRIGGER)
    # Retry at once rather than after the extension's growing random delay.
    page.evaluate("htmx.config.wsReconnectDelay = () => 200")
    in_thread(output, run, "line 1")
    wait_for_output(page, "line 1")

    notice = page.locator("#run-live-status")
    private_redis.stop()
    in_thread(output, run, "line 2", "line 3")  # stored; their live messages are lost
    # The page says its live updates are interrupted, and that it reconnects by itself.
    expect(notice).to_be_visible(timeout=20_000)
    private_redis.start()
    in_thread(output, run, "line 4")

    wait_for_output(page, "line 1\nline 2\nline 3\nline 4", timeout_s=30)
    expect(steps).to_have_attribute("hx-trigger", LIVE_TRIGGER)
    expect(notice).to_be_hidden()
    in_thread(output, run, "line 5")
    wait_for_output(page, "line 1\nline 2\nline 3\nline 4\nline 5")

    # The panel still serves the page, which follows the run live again.
    page.reload()
    expect(steps).to_have_attribute("hx-trigger", LIVE_TRIGGER)
    wait_for_output(page, "line 1\nline 2\nline 3\nline 4\nline 5")
    in_thread(output, run, "line 6")
    wait_for_output(page, "line 1\nline 2\nline 3\nline 4\nline 5\nline 6")
