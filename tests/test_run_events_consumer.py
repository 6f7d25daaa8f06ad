"""Live run progress over websockets: the real ASGI app, sessions and channels-redis.

A viewer connects to /ws/runs/<id>/, sends {"after": N} and gets every event after N once,
in order, whether it was stored before the connection, recorded while it was open or
recorded while the viewer was away.
"""

import asyncio
from pathlib import Path

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from controlpanel.asgi import application
from deployments.actions.pipelines import do_retry_run, do_start_run
from deployments.choices import EventKind, Role, RunStatus, StepStatus
from deployments.consumers import runs as run_consumers
from deployments.models import Membership, PipelineEvent, PipelineRun, StepRun
from deployments.pipelines import events, runner
from deployments.views.runs import steps_as_of_last_event
from testkit.factories import add_member, make_run
from testkit.pipelines import STEPS
from testkit.websockets import in_thread, session_cookie
from testkit.workers import Worker

ORIGIN = b"http://localhost"
# Generous: a loaded machine is slow, and a message that never comes fails at once anyway.
RECEIVE_TIMEOUT = 10
WORKER = "test-worker@host:1"


async def open_socket(run_id: int, user=None, origin: bytes = ORIGIN):
    """(communicator, connected, close code) for a websocket to the run's events."""
    headers = [(b"host", b"localhost"), (b"origin", origin)]
    if user is not None:
        headers.append((b"cookie", await in_thread(session_cookie, user)))
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)
    connected, code = await communicator.connect(timeout=RECEIVE_TIMEOUT)
    return communicator, connected, code


async def follow(run_id: int, user, after: int = 0) -> WebsocketCommunicator:
    communicator, connected, code = await open_socket(run_id, user)
    assert connected, f"refused with {code}"
    await communicator.send_json_to({"after": after})
    return communicator


async def receive_through(communicator, last_seq: int) -> list[dict]:
    """Every message up to and including seq `last_seq`."""
    received = []
    while not received or received[-1]["seq"] < last_seq:
        received.append(await communicator.receive_json_from(timeout=RECEIVE_TIMEOUT))
    return received


def record_lines(run_id: int, lines: list[str], step_index: int = 0) -> None:
    for line in lines:
        events.record(
            run_id, EventKind.OUTPUT, status=RunStatus.RUNNING, step_index=step_index, message=line
        )


def store_unpublished(run, seqs, message: str | None = None) -> None:
    """Output events written to the database only, as when their live message was lost."""
    PipelineEvent.objects.bulk_create(
        PipelineEvent(
            run=run, seq=seq, kind=EventKind.OUTPUT, step_index=0, message=message or str(seq)
        )
        for seq in seqs
    )


def stored(run_id: int) -> list[tuple]:
    return list(
        PipelineEvent.objects.filter(run_id=run_id)
        .order_by("seq")
        .values_list("seq", "kind", "step_index", "message")
    )


def as_rows(messages: list[dict]) -> list[tuple]:
    return [(m["seq"], m["kind"], m["step_index"], m["message"]) for m in messages]


@pytest.fixture
def running_run(team):
    return make_run(team, status=RunStatus.RUNNING, kind=STEPS)


@pytest.fixture
def fast_catch_up(monkeypatch):
    monkeypatch.setattr(run_consumers.PipelineRunConsumer, "catch_up_seconds", 0.2)


@pytest.fixture
def no_catch_up(monkeypatch):
    monkeypatch.setattr(run_consumers.PipelineRunConsumer, "catch_up_seconds", 3600)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_backlog_after_the_given_seq_arrives_in_order_once(running_run, viewer):
    await in_thread(record_lines, running_run.pk, [f"line {n}" for n in range(1, 11)])

    communicator = await follow(running_run.pk, viewer, after=4)
    received = await receive_through(communicator, 10)

    assert [m["seq"] for m in received] == list(range(5, 11))
    assert [m["message"] for m in received] == [f"line {n}" for n in range(5, 11)]
    assert received[0] == {
        "seq": 5,
        "kind": "output",
        "step_index": 0,
        "message": "line 5",
        "status": "running",
    }
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_backlog_longer_than_a_batch_arrives_whole_and_in_order(running_run, viewer):
    count = run_consumers.BATCH_SIZE * 2 + 17
    await in_thread(store_unpublished, running_run, range(1, count + 1))

    communicator = await follow(running_run.pk, viewer)
    received = await receive_through(communicator, count)

    assert [m["seq"] for m in received] == list(range(1, count + 1))
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_events_recorded_after_connecting_arrive_live_after_the_backlog(running_run, viewer):
    await in_thread(record_lines, running_run.pk, ["before 1", "before 2", "before 3"])
    communicator = await follow(running_run.pk, viewer)
    assert [m["seq"] for m in await receive_through(communicator, 3)] == [1, 2, 3]

    await in_thread(record_lines, running_run.pk, ["live 1", "live 2"], step_index=1)

    received = await receive_through(communicator, 5)
    assert [(m["seq"], m["message"], m["step_index"]) for m in received] == [
        (4, "live 1", 1),
        (5, "live 2", 1),
    ]
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_events_recorded_while_the_backlog_is_sent_arrive_once(running_run, viewer):
    await in_thread(record_lines, running_run.pk, [f"old {n}" for n in range(300)])
    communicator = await follow(running_run.pk, viewer)
    # Written while the consumer reads and sends the backlog: each is both in the
    # database and published to the group, and must arrive once.
    await in_thread(record_lines, running_run.pk, [f"new {n}" for n in range(50)])

    received = await receive_through(communicator, 350)

    assert [m["seq"] for m in received] == list(range(1, 351))
    assert await communicator.receive_nothing(0.5)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reconnect_gets_exactly_what_came_after_its_last_seq(running_run, viewer):
    communicator = await follow(running_run.pk, viewer)
    await in_thread(record_lines, running_run.pk, [f"first {n}" for n in range(5)])
    assert [m["seq"] for m in await receive_through(communicator, 5)] == [1, 2, 3, 4, 5]
    await communicator.disconnect()

    await in_thread(record_lines, running_run.pk, [f"away {n}" for n in range(4)])
    communicator = await follow(running_run.pk, viewer, after=5)
    backlog = await receive_through(communicator, 9)
    await in_thread(record_lines, running_run.pk, ["back"])
    live = await receive_through(communicator, 10)

    assert [m["seq"] for m in backlog + live] == [6, 7, 8, 9, 10]
    assert [m["message"] for m in backlog + live] == [*(f"away {n}" for n in range(4)), "back"]
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_lost_live_message_is_sent_from_the_database(running_run, viewer, fast_catch_up):
    communicator = await follow(running_run.pk, viewer)
    assert await communicator.receive_nothing(0.3)

    # Stored but never published, as when the channel layer dropped the message.
    await in_thread(store_unpublished, running_run, [1], message="unpublished")

    message = await communicator.receive_json_from(timeout=RECEIVE_TIMEOUT)
    assert (message["seq"], message["message"]) == (1, "unpublished")
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_live_event_past_a_gap_comes_after_the_missing_ones(
    running_run, viewer, no_catch_up
):
    communicator = await follow(running_run.pk, viewer)
    assert await communicator.receive_nothing(0.3)

    await in_thread(store_unpublished, running_run, (1, 2))
    await in_thread(record_lines, running_run.pk, ["3"])

    received = await receive_through(communicator, 3)
    assert [(m["seq"], m["message"]) for m in received] == [(1, "1"), (2, "2"), (3, "3")]
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_stored_events_carry_the_status_their_live_messages_had(team, eager_tasks):
    """A failed attempt, then a retry that succeeds: the statuses read back from the
    database for a late viewer are those the live messages carried."""
    owner = await in_thread(add_member, team, role=Role.OWNER)
    run = await in_thread(
        make_run,
        team,
        status=RunStatus.QUEUED,
        kind=STEPS,
        params={"fail_at": 1, "fail_message": "no disk", "until_attempt": 1},
    )
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(events.group_name(run.pk), channel)
    try:
        await in_thread(runner.run, run.pk, WORKER)
        await in_thread(do_retry_run, run)  # eager: the retry runs here and now
        published = []
        while [m["kind"] for m in published].count(EventKind.RUN_FINISHED) < 2:
            published.append(await asyncio.wait_for(layer.receive(channel), RECEIVE_TIMEOUT))
    finally:
        await layer.group_discard(events.group_name(run.pk), channel)
    assert [m["status"] for m in published if m["kind"] == EventKind.RUN_FINISHED] == [
        RunStatus.FAILED,
        RunStatus.SUCCEEDED,
    ]

    communicator = await follow(run.pk, owner)
    received = await receive_through(communicator, published[-1]["seq"])

    assert received == [
        {key: m[key] for key in ("seq", "kind", "step_index", "message", "status")}
        for m in published
    ]
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_viewer_of_the_runs_team_is_accepted(running_run, viewer):
    communicator, connected, _ = await open_socket(running_run.pk, viewer)
    assert connected
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_member_of_another_team_is_refused(running_run, other_team):
    outsider = await in_thread(add_member, other_team, role=Role.OWNER)
    communicator, connected, code = await open_socket(running_run.pk, outsider)
    assert (connected, code) == (False, run_consumers.CLOSE_NOT_VISIBLE)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_run_that_does_not_exist_is_refused_like_another_teams(viewer):
    communicator, connected, code = await open_socket(987654, viewer)
    assert (connected, code) == (False, run_consumers.CLOSE_NOT_VISIBLE)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_anonymous_user_is_refused(running_run):
    communicator, connected, code = await open_socket(running_run.pk)
    assert (connected, code) == (False, run_consumers.CLOSE_NOT_LOGGED_IN)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_logged_in_member_from_a_foreign_origin_is_refused(running_run, owner):
    communicator, connected, _ = await open_socket(
        running_run.pk, owner, origin=b"https://evil.example"
    )
    assert connected is False
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_member_removed_from_the_team_is_disconnected(
    running_run, team, viewer, fast_catch_up
):
    communicator = await follow(running_run.pk, viewer)
    assert await communicator.receive_nothing(0.3)

    await in_thread(Membership.objects.filter(team=team, user=viewer).delete)

    closed = await communicator.receive_output(timeout=RECEIVE_TIMEOUT)
    assert closed == {"type": "websocket.close", "code": run_consumers.CLOSE_NOT_VISIBLE}
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ['{"after": -1}', '{"after": "3"}', "[]", "not json"])
async def test_a_first_message_that_is_not_a_seq_closes_the_socket(running_run, viewer, first):
    communicator, connected, _ = await open_socket(running_run.pk, viewer)
    assert connected
    await communicator.send_to(text_data=first)
    closed = await communicator.receive_output(timeout=RECEIVE_TIMEOUT)
    assert closed == {"type": "websocket.close", "code": run_consumers.CLOSE_BAD_REQUEST}
    await communicator.disconnect()


# The page's starting point: what it shows must match the seq it resumes from.


def start_step(run, index: int, name: str) -> StepRun:
    return StepRun.objects.create(
        run=run, index=index, name=name, status=StepStatus.RUNNING, started_at=timezone.now()
    )


@pytest.mark.django_db
def test_a_page_shows_a_running_steps_output_from_the_events_up_to_its_seq(running_run):
    start_step(running_run, 0, "first")
    events.record(running_run.pk, EventKind.STEP_STARTED, status=RunStatus.RUNNING, step_index=0)
    record_lines(running_run.pk, ["one", "two"])

    last_seq, steps = steps_as_of_last_event(running_run)

    assert last_seq == 3
    assert [(s.name, s.status, s.output) for s in steps] == [("first", "running", "one\ntwo")]


@pytest.mark.django_db
def test_a_page_read_while_a_step_ends_and_the_next_starts_shows_them_as_at_its_seq(
    running_run, monkeypatch
):
    first = start_step(running_run, 0, "first")
    events.record(running_run.pk, EventKind.STEP_STARTED, status=RunStatus.RUNNING, step_index=0)
    record_lines(running_run.pk, ["one"])

    # The worker goes on between reading the seq and reading the steps.
    real_refresh = PipelineRun.refresh_from_db

    def worker_moves_on(run, *args, **kwargs):
        monkeypatch.setattr(PipelineRun, "refresh_from_db", real_refresh)
        record_lines(running_run.pk, ["two"])
        StepRun.objects.filter(pk=first.pk).update(
            status=StepStatus.SUCCEEDED, output="one\ntwo", finished_at=timezone.now()
        )
        events.record(
            running_run.pk, EventKind.STEP_FINISHED, status=RunStatus.RUNNING, step_index=0
        )
        start_step(running_run, 1, "second")
        events.record(
            running_run.pk, EventKind.STEP_STARTED, status=RunStatus.RUNNING, step_index=1
        )
        real_refresh(run, *args, **kwargs)

    monkeypatch.setattr(PipelineRun, "refresh_from_db", worker_moves_on)
    last_seq, steps = steps_as_of_last_event(running_run)

    assert last_seq == 2
    assert [(s.name, s.status, s.output) for s in steps] == [("first", "running", "one")]


@pytest.mark.django_db
def test_a_finished_run_shows_its_steps_as_stored(team):
    run = make_run(team, status=RunStatus.SUCCEEDED)
    StepRun.objects.create(
        run=run,
        index=0,
        name="only",
        status=StepStatus.SUCCEEDED,
        output="all of it",
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )

    assert [(s.status, s.output) for s in steps_as_of_last_event(run)[1]] == [
        ("succeeded", "all of it")
    ]


# A real worker runs a real pipeline while a viewer watches.


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_viewer_gets_every_event_of_a_run_a_real_worker_runs_once_and_in_order(
    team, viewer, tmp_path
):
    from controlpanel.celery import app as celery_app

    await in_thread(celery_app.control.purge)
    worker = await in_thread(lambda: Worker(tmp_path / "worker.log").start())
    try:
        release = tmp_path / "release"
        run = await in_thread(
            do_start_run,
            team=team,
            kind=STEPS,
            params={"block_at": 1, "release": str(release)},
        )
        communicator = await follow(run.pk, viewer)
        received = []

        async def until(predicate, what):
            async def receive():
                while not received or not predicate(received[-1]):
                    received.append(await communicator.receive_json_from(timeout=60))

            try:
                await asyncio.wait_for(receive(), 60)
            except TimeoutError:
                raise AssertionError(f"no {what}; got {received}\n{worker.log}") from None

        await until(lambda m: m["message"] == "second: starting", "output of the blocked step")
        blocked_at = received[-1]["seq"]
        Path(release).touch()
        await until(lambda m: m["kind"] == EventKind.RUN_FINISHED, "end of the run")
        assert await communicator.receive_nothing(0.5)
        await communicator.disconnect()
    finally:
        await in_thread(worker.stop)

    rows = await in_thread(stored, run.pk)
    assert [m["seq"] for m in received] == list(range(1, len(rows) + 1))
    assert as_rows(received) == rows
    assert len(received) > blocked_at  # the rest came live, after the step was released
    assert received[-1]["status"] == RunStatus.SUCCEEDED
    kinds = [m["kind"] for m in received]
    assert kinds.count(EventKind.STEP_STARTED) == kinds.count(EventKind.STEP_FINISHED) == 3
