"""Live run progress over websockets: the real ASGI app, sessions and channels-redis.

A viewer connects to /ws/runs/<id>/ and gets HTML for htmx's websocket extension: the whole
steps section first, then a fragment appending each output line to its running step, and
the whole section again when a step or the run starts or ends. Applied in order, as the
extension does, the messages show every line once, whether it was stored before the
connection, recorded while it was open or recorded while the viewer was away.
"""

import html
import re
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from controlpanel.asgi import application
from deployments.actions.pipelines import do_start_run
from deployments.choices import EventKind, Role, RunStatus, StepStatus
from deployments.consumers import runs as run_consumers
from deployments.models import Membership, PipelineEvent, PipelineRun, StepRun
from deployments.pipelines import events
from deployments.views import runs as run_views
from deployments.views.runs import steps_as_of_last_event
from testkit.factories import add_member, make_run
from testkit.pipelines import STEPS
from testkit.websockets import in_thread, session_cookie
from testkit.workers import Worker

ORIGIN = b"http://localhost"
# Generous: a loaded machine is slow, and a message that never comes fails at once anyway.
RECEIVE_TIMEOUT = 10

SECTION_START = '<section id="run-steps"'
OUTPUT_PRE = re.compile(r'<pre id="(run-\d+-output-\d+)">(.*?)</pre>', re.DOTALL)
APPEND = re.compile(r'<span hx-swap-oob="beforeend:#([^"]+)">(.*?)</span>', re.DOTALL)


def output_id(run_id: int, index: int) -> str:
    return f"run-{run_id}-output-{index}"


class LivePage:
    """The page as htmx's websocket extension leaves it after each message: a section
    replaces the page's section, a fragment appends its text to the element it names."""

    def __init__(self) -> None:
        self.section = ""
        self.outputs: dict[str, str] = {}
        self.sections = 0
        self.appends = 0

    def apply(self, message: str) -> None:
        message = message.strip()
        if message.startswith(SECTION_START):
            self.section = message
            self.outputs = {id_: html.unescape(text) for id_, text in OUTPUT_PRE.findall(message)}
            self.sections += 1
            return
        fragments = APPEND.findall(message)
        assert fragments and APPEND.sub("", message).strip() == "", message
        for target, text in fragments:
            assert target in self.outputs, f"{target} is not on the page: {self.section}"
            self.outputs[target] += html.unescape(text)
            self.appends += 1

    def lines(self, run_id: int, index: int = 0) -> list[str]:
        return self.outputs[output_id(run_id, index)].split("\n")

    @property
    def finished(self) -> bool:
        return "hx-get=" not in self.section


async def open_socket(run_id: int, user=None, origin: bytes = ORIGIN, cookie: bytes = b""):
    """(communicator, connected, close code) for a websocket to the run's events."""
    headers = [(b"host", b"localhost"), (b"origin", origin)]
    if user is not None:
        cookie = b"; ".join(c for c in (await in_thread(session_cookie, user), cookie) if c)
    if cookie:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)
    connected, code = await communicator.connect(timeout=RECEIVE_TIMEOUT)
    return communicator, connected, code


async def follow(run_id: int, user, cookie: bytes = b"") -> tuple[WebsocketCommunicator, LivePage]:
    """A connected viewer, and its page with the section it got first."""
    communicator, connected, code = await open_socket(run_id, user, cookie=cookie)
    assert connected, f"refused with {code}"
    page = LivePage()
    first = await communicator.receive_from(timeout=RECEIVE_TIMEOUT)
    assert first.strip().startswith(SECTION_START), first
    page.apply(first)
    return communicator, page


async def receive_until(communicator, page: LivePage, done, timeout: float = RECEIVE_TIMEOUT):
    """Apply messages until done(page) holds."""
    while not done(page):
        page.apply(await communicator.receive_from(timeout=timeout))


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


def start_step(run, index: int, name: str, *, record: bool = True) -> StepRun:
    step = StepRun.objects.create(
        run=run, index=index, name=name, status=StepStatus.RUNNING, started_at=timezone.now()
    )
    if record:
        events.record(
            run.pk, EventKind.STEP_STARTED, status=RunStatus.RUNNING, step_index=index, message=name
        )
    return step


def end_step(run, index: int) -> None:
    StepRun.objects.filter(run=run, index=index).update(
        status=StepStatus.SUCCEEDED, finished_at=timezone.now()
    )
    events.record(
        run.pk, EventKind.STEP_FINISHED, status=RunStatus.RUNNING, step_index=index, message="ok"
    )


def finish_run(run) -> None:
    now = timezone.now()
    StepRun.objects.filter(run=run, status=StepStatus.RUNNING).update(
        status=StepStatus.SUCCEEDED, finished_at=now
    )
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=now)
    events.record(run.pk, EventKind.RUN_FINISHED, status=RunStatus.SUCCEEDED, message="Done.")


def step_with_output(run, lines: list[str]) -> None:
    """Step 0 of `run` running, with `lines` of output so far."""
    start_step(run, 0, "pull_images")
    record_lines(run.pk, lines)


@pytest.fixture
def running_run(team):
    return make_run(team, status=RunStatus.RUNNING, kind=STEPS, started_at=timezone.now())


@pytest.fixture
def fast_catch_up(monkeypatch):
    monkeypatch.setattr(run_consumers.PipelineRunConsumer, "catch_up_seconds", 0.2)


@pytest.fixture
def no_catch_up(monkeypatch):
    monkeypatch.setattr(run_consumers.PipelineRunConsumer, "catch_up_seconds", 3600)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_viewer_first_gets_the_section_the_page_shows_without_its_polling(
    running_run, viewer
):
    await in_thread(step_with_output, running_run, ["line 1", "pulling <fastgpt> & friends"])

    communicator, page = await follow(running_run.pk, viewer)

    assert page.lines(running_run.pk) == ["line 1", "pulling <fastgpt> & friends"]
    assert "&lt;fastgpt&gt;" in page.section and "<fastgpt>" not in page.section
    assert "pull_images" in page.section
    assert re.search(r"data-run-status>\s*Running\s*<", page.section)
    # Polled only once the socket closes; the page's own copy polls every 2 s.
    assert 'hx-trigger="htmx:wsClose from:#run-progress"' in page.section
    assert "every 2s" not in page.section
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_lines_recorded_after_connecting_are_appended_to_their_step(running_run, viewer):
    await in_thread(step_with_output, running_run, ["before"])
    communicator, page = await follow(running_run.pk, viewer)

    await in_thread(record_lines, running_run.pk, ["live <b>1</b>", "live 2"])

    await receive_until(communicator, page, lambda p: len(p.lines(running_run.pk)) == 3)
    assert page.lines(running_run.pk) == ["before", "live <b>1</b>", "live 2"]
    assert (page.sections, page.appends) == (1, 2)  # appended, not re-rendered
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_steps_first_line_brings_the_section_with_its_output(running_run, viewer):
    await in_thread(start_step, running_run, 0, "pull_images")
    communicator, page = await follow(running_run.pk, viewer)
    assert page.outputs == {}  # nothing to append to yet

    await in_thread(record_lines, running_run.pk, ["first line"])
    await receive_until(communicator, page, lambda p: p.outputs)
    await in_thread(record_lines, running_run.pk, ["second line"])
    await receive_until(communicator, page, lambda p: len(p.lines(running_run.pk)) == 2)

    assert page.lines(running_run.pk) == ["first line", "second line"]
    assert (page.sections, page.appends) == (2, 1)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_lines_recorded_while_the_section_is_read_show_once_in_order(
    running_run, viewer, monkeypatch
):
    await in_thread(step_with_output, running_run, [f"old {n}" for n in range(300)])
    real_render = run_consumers._render_section
    renders = []

    async def render_after_more_lines(run_id, scope):
        if not renders:
            # After the consumer joined the run's group and before it reads the section:
            # each line is both in the section and published live, and must show once.
            await in_thread(record_lines, run_id, [f"new {n}" for n in range(50)])
        renders.append(run_id)
        return await real_render(run_id, scope)

    monkeypatch.setattr(run_consumers, "_render_section", render_after_more_lines)
    communicator, page = await follow(running_run.pk, viewer)
    await in_thread(record_lines, running_run.pk, ["after"])

    await receive_until(communicator, page, lambda p: p.lines(running_run.pk)[-1] == "after")

    assert page.lines(running_run.pk) == [
        *(f"old {n}" for n in range(300)),
        *(f"new {n}" for n in range(50)),
        "after",
    ]
    assert (page.sections, page.appends) == (1, 1)
    assert await communicator.receive_nothing(0.5)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reconnect_shows_what_came_while_away_once(running_run, viewer):
    await in_thread(step_with_output, running_run, ["first"])
    communicator, page = await follow(running_run.pk, viewer)
    await in_thread(record_lines, running_run.pk, ["second"])
    await receive_until(communicator, page, lambda p: len(p.lines(running_run.pk)) == 2)
    await communicator.disconnect()

    await in_thread(record_lines, running_run.pk, ["away 1", "away 2"])
    communicator, page = await follow(running_run.pk, viewer)
    await in_thread(record_lines, running_run.pk, ["back"])
    await receive_until(communicator, page, lambda p: p.lines(running_run.pk)[-1] == "back")

    assert page.lines(running_run.pk) == ["first", "second", "away 1", "away 2", "back"]
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_lost_live_message_is_sent_from_the_database(running_run, viewer, fast_catch_up):
    await in_thread(step_with_output, running_run, ["published"])
    communicator, page = await follow(running_run.pk, viewer)
    last = await in_thread(lambda: running_run.events.order_by("-seq").first().seq)

    # Stored but never published, as when the channel layer dropped the message.
    await in_thread(store_unpublished, running_run, [last + 1], message="unpublished")

    await receive_until(communicator, page, lambda p: len(p.lines(running_run.pk)) == 2)
    assert page.lines(running_run.pk) == ["published", "unpublished"]
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_live_event_past_a_gap_comes_after_the_missing_ones(
    running_run, viewer, no_catch_up
):
    await in_thread(step_with_output, running_run, ["0"])
    communicator, page = await follow(running_run.pk, viewer)
    last = await in_thread(lambda: running_run.events.order_by("-seq").first().seq)

    await in_thread(store_unpublished, running_run, (last + 1, last + 2))
    await in_thread(record_lines, running_run.pk, ["3"])

    await receive_until(communicator, page, lambda p: p.lines(running_run.pk)[-1] == "3")
    assert page.lines(running_run.pk) == ["0", str(last + 1), str(last + 2), "3"]
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_step_that_ends_and_the_next_that_starts_come_as_the_section(running_run, viewer):
    await in_thread(step_with_output, running_run, ["pulled"])
    communicator, page = await follow(running_run.pk, viewer)

    await in_thread(end_step, running_run, 0)
    await in_thread(start_step, running_run, 1, "compose_up")
    await receive_until(communicator, page, lambda p: "compose_up" in p.section)

    rows = re.findall(r'data-step-index="(\d)" data-step-status="(\w+)"', page.section)
    assert rows == [("0", "succeeded"), ("1", "running")]
    assert "Succeeded" in page.section
    assert page.outputs == {}  # the finished step's output is no longer appended to
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_runs_end_is_the_last_message_and_closes_the_socket(running_run, viewer):
    await in_thread(step_with_output, running_run, ["pulled"])
    communicator, page = await follow(running_run.pk, viewer)

    await in_thread(finish_run, running_run)
    await receive_until(communicator, page, lambda p: p.finished)

    assert re.search(r"data-run-status>\s*Succeeded\s*<", page.section)
    assert "hx-trigger" not in page.section  # nothing polls a finished run
    closed = await communicator.receive_output(timeout=RECEIVE_TIMEOUT)
    # A normal close: the extension reconnects only after an abnormal one.
    assert closed == {"type": "websocket.close"}
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_viewer_of_a_finished_run_gets_its_section_and_a_close(team, viewer):
    run = await in_thread(make_run, team, status=RunStatus.FAILED, error="no disk")

    communicator, page = await follow(run.pk, viewer)

    assert page.finished and "no disk" in page.section
    assert await communicator.receive_output(timeout=RECEIVE_TIMEOUT) == {"type": "websocket.close"}
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_long_output_is_cut_to_its_latest_lines_by_a_new_section(
    running_run, viewer, monkeypatch
):
    monkeypatch.setattr(run_views, "LIVE_OUTPUT_LINES", 3)
    monkeypatch.setattr(run_consumers, "MAX_SHOWN_LINES", 6)
    await in_thread(step_with_output, running_run, ["1", "2"])
    communicator, page = await follow(running_run.pk, viewer)

    for n in range(3, 9):
        await in_thread(record_lines, running_run.pk, [str(n)])
        await receive_until(
            communicator, page, lambda p, n=n: p.lines(running_run.pk)[-1] == str(n)
        )

    # 3-6 were appended; 7 would have made 7 lines, so the section came again, cut to the
    # latest lines; 8 was appended to that.
    assert page.lines(running_run.pk) == ["[earlier output omitted]", "5", "6", "7", "8"]
    assert page.sections == 2
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_sections_cancel_form_carries_a_token_the_server_accepts(running_run, operator):
    client = Client(enforce_csrf_checks=True)
    await in_thread(client.force_login, operator)
    # The page that opens the socket sets the CSRF cookie.
    await in_thread(client.get, reverse("run_detail", args=[running_run.pk]))
    csrf_cookie = client.cookies["csrftoken"].value

    communicator, page = await follow(
        running_run.pk, operator, cookie=f"csrftoken={csrf_cookie}".encode()
    )
    cancel = reverse("run_cancel", args=[running_run.pk])
    assert f'action="{cancel}"' in page.section
    token = re.search(r'name="csrfmiddlewaretoken" value="(\w+)"', page.section).group(1)

    response = await in_thread(client.post, cancel, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302, response.content[:300]
    cancel_requested = await in_thread(
        lambda: PipelineRun.objects.get(pk=running_run.pk).cancel_requested
    )
    assert cancel_requested
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
    communicator, _ = await follow(running_run.pk, viewer)
    assert await communicator.receive_nothing(0.3)

    await in_thread(Membership.objects.filter(team=team, user=viewer).delete)

    closed = await communicator.receive_output(timeout=RECEIVE_TIMEOUT)
    assert closed == {"type": "websocket.close", "code": run_consumers.CLOSE_NOT_VISIBLE}
    await communicator.disconnect()


# The starting point: what a section shows must match the seq it goes on from.


@pytest.mark.django_db
def test_a_section_shows_a_running_steps_output_from_the_events_up_to_its_seq(running_run):
    start_step(running_run, 0, "first")
    record_lines(running_run.pk, ["one", "two"])

    last_seq, steps = steps_as_of_last_event(running_run)

    assert last_seq == 3
    assert [(s.name, s.status, s.output) for s in steps] == [("first", "running", "one\ntwo")]


@pytest.mark.django_db
def test_a_section_read_while_a_step_ends_and_the_next_starts_shows_them_as_at_its_seq(
    running_run, monkeypatch
):
    first = start_step(running_run, 0, "first")
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
async def test_a_viewer_follows_a_run_a_real_worker_runs_to_its_end(team, viewer, tmp_path):
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
        communicator, page = await follow(run.pk, viewer)

        async def until(done, what):
            try:
                await receive_until(communicator, page, done, timeout=60)
            except TimeoutError:
                raise AssertionError(f"no {what}; got {page.section}\n{worker.log}") from None

        def blocked(p):
            return p.outputs.get(output_id(run.pk, 1)) == "second: starting"

        await until(blocked, "output of the blocked step")
        Path(release).touch()
        await until(lambda p: p.finished, "end of the run")
        closed = await communicator.receive_output(timeout=RECEIVE_TIMEOUT)
        await communicator.disconnect()
    finally:
        await in_thread(worker.stop)

    assert closed == {"type": "websocket.close"}
    rows = re.findall(r'data-step-index="(\d)" data-step-status="(\w+)"', page.section)
    assert rows == [("0", "succeeded"), ("1", "succeeded"), ("2", "succeeded")]
    assert re.search(r"data-run-status>\s*Succeeded\s*<", page.section)
    assert "second: starting\nsecond: done" in html.unescape(page.section)
