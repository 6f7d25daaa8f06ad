"""A real browser watches a run: steps and lines arrive over the websocket (htmx's extension
swapping the HTML the consumer sends) with no polling while the socket is up, the page
catches up once each after a server restart, and where websockets cannot get through, or
while a socket is down, the page polls instead.

live_server speaks WSGI only, so the websocket tests run the real ASGI server (controlpanel.serve)
on the test database and the Redis of REDIS_URL, the way the panel is served.
"""

import contextlib
import re
import threading
import time

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from deployments.choices import EventKind, PipelineKind, Role, RunStatus, StepStatus
from deployments.models import PipelineRun, StepRun
from deployments.pipelines import events
from testkit.asgi_server import AsgiServer
from testkit.browser import in_thread, log_in
from testkit.factories import add_member, make_run, make_team, make_user
from testkit.pipelines import STEPS

pytestmark = [pytest.mark.slow]

LIVE_TRIGGER = "htmx:wsClose from:#run-progress"  # a section the websocket sent
POLL_TRIGGER = "every 2s"  # a section a plain request rendered
POLL_INTERVAL_MS = 2000


@pytest.fixture
def asgi_server(transactional_db, tmp_path):
    server = AsgiServer(tmp_path / "web.log").start()
    yield server
    server.stop()


def output(run: PipelineRun, *lines: str, step_index: int = 0) -> None:
    for line in lines:
        events.record(
            run.pk, EventKind.OUTPUT, status=RunStatus.RUNNING, step_index=step_index, message=line
        )


def start_step(run: PipelineRun, index: int, name: str) -> None:
    StepRun.objects.create(
        run=run, index=index, name=name, status=StepStatus.RUNNING, started_at=timezone.now()
    )
    events.record(
        run.pk, EventKind.STEP_STARTED, status=RunStatus.RUNNING, step_index=index, message=name
    )


def end_step(run: PipelineRun, index: int) -> None:
    StepRun.objects.filter(run=run, index=index).update(
        status=StepStatus.SUCCEEDED, finished_at=timezone.now()
    )
    events.record(
        run.pk,
        EventKind.STEP_FINISHED,
        status=RunStatus.RUNNING,
        step_index=index,
        message="Step succeeded.",
    )


def finish_run(run: PipelineRun) -> None:
    now = timezone.now()
    StepRun.objects.filter(run=run, status=StepStatus.RUNNING).update(
        status=StepStatus.SUCCEEDED, finished_at=now
    )
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=now)
    events.record(run.pk, EventKind.RUN_FINISHED, status=RunStatus.SUCCEEDED, message="Done.")


def _running_run() -> PipelineRun:
    run = make_run(
        make_team("Alpha"), status=RunStatus.RUNNING, kind=STEPS, started_at=timezone.now()
    )
    events.record(run.pk, EventKind.RUN_STARTED, status=RunStatus.RUNNING, message="Started.")
    start_step(run, 0, "pull_images")
    output(run, "before the page opened")
    return run


@pytest.fixture
def watched_run(transactional_db):
    """A running run whose first step is under way and has said one line."""
    return in_thread(_running_run)


@pytest.fixture
def watcher(watched_run):
    """A viewer in the run's team."""
    user = in_thread(make_user, "watcher-wes")
    in_thread(add_member, watched_run.team, user, role=Role.VIEWER)
    return user


def steps_requests(page, run: PipelineRun) -> list[str]:
    """The URLs of the steps partial the page asks for, from now on (its polls)."""
    path = reverse("run_steps", args=[run.pk])
    seen: list[str] = []
    page.on("request", lambda request: path in request.url and seen.append(request.url))
    return seen


def open_run_page(page, base_url: str, run: PipelineRun, user) -> None:
    log_in(page, base_url, user.username, user.raw_password)
    page.goto(f"{base_url}{reverse('run_detail', args=[run.pk])}")


def output_text(page, index: int = 0) -> str:
    """The exact text of the output of step `index` (Playwright's matchers fold whitespace)."""
    return page.locator(f'tr[data-step-index="{index}"] + tr.step-output pre').first.text_content()


def wait_for_output(page, expected: str, index: int = 0, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(Exception):
            if output_text(page, index) == expected:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"step {index} never showed {expected!r}")
        page.wait_for_timeout(50)


def test_steps_and_lines_arrive_over_the_websocket_and_nothing_polls(
    asgi_server, page, watched_run, watcher
):
    sockets, frames = [], []

    def on_websocket(ws):
        sockets.append(ws.url)
        ws.on("framereceived", lambda payload: frames.append(payload))

    page.on("websocket", on_websocket)
    open_run_page(page, asgi_server.url, watched_run, watcher)
    steps = page.locator("#run-steps")
    # The socket's first message replaced the page's polling section with one that waits.
    expect(steps).to_have_attribute("hx-trigger", LIVE_TRIGGER)
    polls = steps_requests(page, watched_run)
    # Nothing can come by polling: whatever appears came over the websocket.
    steps_url = f"**{reverse('run_steps', args=[watched_run.pk])}"
    page.route(steps_url, lambda route: route.abort())
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    in_thread(output, watched_run, "pulling <fastgpt> & friends", "pulled")
    wait_for_output(page, "before the page opened\npulling <fastgpt> & friends\npulled")
    assert any("pulled" in frame for frame in frames)

    in_thread(end_step, watched_run, 0)
    in_thread(start_step, watched_run, 1, "compose_up")
    in_thread(output, watched_run, "container started", step_index=1)
    first = steps.locator('tr[data-step-index="0"]')
    second = steps.locator('tr[data-step-index="1"]')
    expect(first).to_have_attribute("data-step-status", "succeeded")
    expect(first.locator(".badge")).to_have_text("Succeeded")
    expect(second).to_contain_text("compose_up")
    expect(second.locator(".badge")).to_have_text("Running")
    wait_for_output(page, "container started", index=1)

    page.wait_for_timeout(POLL_INTERVAL_MS + 500)
    assert polls == [], "the page polled while its websocket was up"

    in_thread(finish_run, watched_run)
    expect(steps.locator("[data-run-status]")).to_have_text("Succeeded")
    expect(steps).not_to_have_attribute("hx-trigger", LIVE_TRIGGER)
    expect(steps).not_to_have_attribute("hx-get", re.compile(".*"))
    page.wait_for_timeout(POLL_INTERVAL_MS + 500)
    assert polls == [], "the page polled a finished run"
    assert navigations == []
    assert sockets == [f"ws://127.0.0.1:{asgi_server.port}/ws/runs/{watched_run.pk}/"]
    # No markup from event text: the angle brackets are text.
    assert steps.locator("fastgpt").count() == 0


def test_a_running_output_follows_its_end_unless_scrolled_up(
    asgi_server, page, watched_run, watcher
):
    open_run_page(page, asgi_server.url, watched_run, watcher)
    expect(page.locator("#run-steps")).to_have_attribute("hx-trigger", LIVE_TRIGGER)
    pre = page.locator('tr[data-step-index="0"] + tr.step-output pre')
    at_end = "(pre) => pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4"

    in_thread(output, watched_run, *(f"line {n}" for n in range(100)))
    wait_for_output(page, "\n".join(["before the page opened", *(f"line {n}" for n in range(100))]))
    assert pre.evaluate("(pre) => pre.scrollHeight > pre.clientHeight"), "too short to scroll"
    assert pre.evaluate(at_end)

    before = output_text(page)
    pre.evaluate("(pre) => { pre.scrollTop = 0 }")
    in_thread(output, watched_run, "one more")
    wait_for_output(page, f"{before}\none more")
    assert pre.evaluate("(pre) => pre.scrollTop") == 0


def test_a_viewer_that_loses_the_server_catches_up_without_a_gap_or_a_repeat(
    asgi_server, page, watched_run, watcher
):
    open_run_page(page, asgi_server.url, watched_run, watcher)
    steps = page.locator("#run-steps")
    expect(steps).to_have_attribute("hx-trigger", LIVE_TRIGGER)
    # Retry at once rather than after the extension's growing random delay.
    page.evaluate("htmx.config.wsReconnectDelay = () => 200")
    in_thread(output, watched_run, "line 1")
    wait_for_output(page, "before the page opened\nline 1")

    asgi_server.stop()
    in_thread(output, watched_run, "line 2", "line 3")
    asgi_server.start()
    in_thread(output, watched_run, "line 4")

    expected = "\n".join(["before the page opened", *(f"line {n}" for n in range(1, 5))])
    wait_for_output(page, expected, timeout_s=20)
    expect(steps).to_have_attribute("hx-trigger", LIVE_TRIGGER)
    in_thread(output, watched_run, "line 5")
    wait_for_output(page, f"{expected}\nline 5")


def test_while_the_socket_is_down_the_page_polls_until_it_is_back(
    asgi_server, page, watched_run, watcher
):
    routes = []
    blocked = threading.Event()

    def route_socket(ws):
        if blocked.is_set():
            ws.close(code=1006)  # what a proxy that drops websockets looks like
        else:
            routes.append(ws)
            ws.connect_to_server()

    page.route_web_socket("**/ws/runs/**", route_socket)
    open_run_page(page, asgi_server.url, watched_run, watcher)
    steps = page.locator("#run-steps")
    expect(steps).to_have_attribute("hx-trigger", LIVE_TRIGGER)
    page.evaluate("htmx.config.wsReconnectDelay = () => 200")
    polls = steps_requests(page, watched_run)

    notice = page.locator("#run-live-status")
    expect(notice).to_be_hidden()
    blocked.set()
    routes[0].close(code=1006)
    expect(steps).to_have_attribute("hx-trigger", POLL_TRIGGER)
    # The page says the live updates are interrupted and that it reconnects by itself.
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("reconnects by itself")
    in_thread(output, watched_run, "seen by polling")
    wait_for_output(page, "before the page opened\nseen by polling")
    assert polls, "the line did not come by polling"

    blocked.clear()
    expect(steps).to_have_attribute("hx-trigger", LIVE_TRIGGER, timeout=20_000)
    expect(notice).to_be_hidden()
    polled = len(polls)
    in_thread(output, watched_run, "seen live again")
    wait_for_output(page, "before the page opened\nseen by polling\nseen live again")
    page.wait_for_timeout(POLL_INTERVAL_MS + 500)
    assert len(polls) == polled, "the page went on polling once the socket was back"


def test_where_websockets_cannot_get_through_the_page_still_updates_by_polling(
    live_server, transactional_db, page, watched_run, watcher
):
    # live_server is a WSGI server: the websocket upgrade is answered with a 404.
    open_run_page(page, live_server.url, watched_run, watcher)
    steps = page.locator("#run-steps")
    polls = steps_requests(page, watched_run)

    in_thread(output, watched_run, "seen by polling")

    wait_for_output(page, "before the page opened\nseen by polling")
    assert polls, "the line did not come by polling"
    expect(steps).to_have_attribute("hx-trigger", POLL_TRIGGER)

    in_thread(finish_run, watched_run)
    expect(steps.locator("[data-run-status]")).to_have_text("Succeeded")
    expect(steps).not_to_have_attribute("hx-trigger", POLL_TRIGGER)
    polled = len(polls)
    page.wait_for_timeout(POLL_INTERVAL_MS + 500)
    assert len(polls) == polled, "the page went on polling a finished run"


def _running_deploy() -> PipelineRun:
    """A run of the real deploy pipeline (the ASGI server knows the product's pipelines only),
    its first step under way."""
    run = make_run(
        make_team("Deployers"),
        status=RunStatus.RUNNING,
        kind=PipelineKind.STACK_DEPLOY,
        started_at=timezone.now(),
    )
    events.record(run.pk, EventKind.RUN_STARTED, status=RunStatus.RUNNING, message="Started.")
    start_step(run, 0, "pull_images")
    return run


def test_step_times_and_the_position_show_as_the_steps_start_and_end(asgi_server, page, watcher):
    watched_run = in_thread(_running_deploy)
    in_thread(add_member, watched_run.team, watcher, role=Role.VIEWER)
    open_run_page(page, asgi_server.url, watched_run, watcher)
    steps = page.locator("#run-steps")
    expect(steps).to_have_attribute("hx-trigger", LIVE_TRIGGER)
    clock = re.compile(r"^\d\d:\d\d:\d\d$")
    first = steps.locator('tr[data-step-index="0"]')
    position = steps.locator("[data-run-position]")

    # The running step shows when it started, and its time so far counts up in the page.
    expect(position).to_contain_text("Step 1 of 9:")
    expect(position).to_contain_text("pull_images")
    expect(first.locator("[data-step-started]")).to_have_text(clock)
    so_far = first.locator("[data-step-duration] [data-elapsed-seconds]")
    expect(first.locator("[data-step-duration]")).to_contain_text("so far")
    counted = so_far.text_content()
    expect(so_far).not_to_have_text(counted)
    # Steps to come are listed, and a running step does not look like a finished one.
    expect(steps.locator("tr[data-upcoming-step]")).to_have_count(8)
    expect(first.locator(".badge")).to_have_class(re.compile(r"\bin-progress\b"))
    expect(first.locator(".badge svg")).to_have_count(1)

    in_thread(end_step, watched_run, 0)
    in_thread(start_step, watched_run, 1, "wait until healthy")
    second = steps.locator('tr[data-step-index="1"]')
    expect(second.locator("[data-step-started]")).to_have_text(clock)
    expect(position).to_contain_text("Step 2 of 9:")
    expect(second.locator("[data-step-deadline]")).to_contain_text("gives up at")
    # The first step's duration arrived with its end, not with the run's.
    expect(first.locator("[data-step-duration]")).to_have_text(re.compile(r"^\d+ s$| min"))
    expect(first.locator(".badge")).not_to_have_class(re.compile(r"\bin-progress\b"))
    expect(steps.locator("tr[data-upcoming-step]")).to_have_count(7)

    in_thread(finish_run, watched_run)
    expect(position).to_have_text(re.compile(r"All 9 steps are done"))
    expect(steps.locator("tr[data-upcoming-step]")).to_have_count(0)
    expect(second.locator("[data-step-duration]")).not_to_contain_text("so far")
