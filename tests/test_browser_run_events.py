"""A real browser watches a run: lines arrive over the websocket without a reload, survive a
server restart once each, and where websockets cannot get through the page still polls.

live_server speaks WSGI only, so the websocket tests run the real ASGI server (daphne) on
the test database and the Redis of REDIS_URL, the way the panel is served.
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from deployments.choices import EventKind, Role, RunStatus, StepStatus
from deployments.models import PipelineRun, StepRun
from deployments.pipelines import events
from testkit.browser import log_in
from testkit.factories import add_member, make_run, make_team, make_user
from testkit.pipelines import STEPS
from testkit.workers import database_url

pytestmark = [pytest.mark.slow]

START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AsgiServer:
    """daphne serving controlpanel.asgi on a fixed port; stop() and start() again at will."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "controlpanel.settings",
            "DATABASE_URL": database_url(),
            # Static files straight from the source folders, as under runserver.
            "DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> "AsgiServer":
        command = [
            *(sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)),
            "controlpanel.asgi:application",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"daphne did not start:\n{self.log[-4000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0


@pytest.fixture
def asgi_server(transactional_db, tmp_path):
    server = AsgiServer(tmp_path / "daphne.log").start()
    yield server
    server.stop()


def in_thread(func, *args, **kwargs):
    """Run ORM and channel-layer work away from Playwright's event loop, and wait for it.

    (In the test's thread that loop counts as running, so publishing an event would fail.)
    """
    outcome = {}

    def target():
        try:
            outcome["value"] = func(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


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
    """The URLs of the steps partial the page asks for, from now on (polls and reloads)."""
    path = reverse("run_steps", args=[run.pk])
    seen: list[str] = []
    page.on("request", lambda request: path in request.url and seen.append(request.url))
    return seen


def test_lines_reach_a_viewer_over_the_websocket_without_a_reload(
    asgi_server, page, watched_run, watcher
):
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    log_in(page, asgi_server.url, "watcher-wes", watcher.raw_password)
    page.goto(f"{asgi_server.url}{reverse('run_detail', args=[watched_run.pk])}")
    steps = page.locator("#run-steps")
    expect(steps).to_have_attribute("data-live", "ws")
    polls = steps_requests(page, watched_run)
    # Nothing can come by polling: whatever appears came over the websocket.
    steps_url = f"**{reverse('run_steps', args=[watched_run.pk])}"
    page.route(steps_url, lambda route: route.abort())
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    first_output = steps.locator("tr.step-output pre").first
    expect(first_output).to_have_text("before the page opened")

    in_thread(output, watched_run, "pulling <fastgpt> & friends", "pulled")
    expect(first_output).to_have_text("before the page opened\npulling <fastgpt> & friends\npulled")

    in_thread(end_step, watched_run, 0)
    first = steps.locator('tr[data-step-index="0"]')
    expect(first).to_contain_text("Succeeded")
    in_thread(start_step, watched_run, 1, "compose_up")
    in_thread(output, watched_run, "container started", step_index=1)
    second = steps.locator('tr[data-step-index="1"]')
    expect(second).to_contain_text("compose_up")
    expect(second).to_contain_text("Running")
    expect(steps.locator("tr.step-output pre").nth(1)).to_have_text("container started")
    page.wait_for_timeout(2500)  # longer than the polling interval
    assert polls == [], "the page polled while its websocket was up"

    page.unroute(steps_url)
    in_thread(finish_run, watched_run)
    expect(steps).to_have_attribute("data-live", "done")
    expect(steps.locator("[data-run-status]")).to_have_text("Succeeded")
    expect(steps).not_to_have_attribute("hx-trigger", re.compile("."))
    assert len(polls) == 1  # the one reload that shows the final state
    assert navigations == []
    assert sockets == [f"ws://127.0.0.1:{asgi_server.port}/ws/runs/{watched_run.pk}/"]
    # No markup from event text: the angle brackets are text.
    assert steps.locator("fastgpt").count() == 0


def test_a_viewer_that_loses_the_server_resumes_without_a_gap_or_a_repeat(
    asgi_server, page, watched_run, watcher
):
    log_in(page, asgi_server.url, "watcher-wes", watcher.raw_password)
    page.goto(f"{asgi_server.url}{reverse('run_detail', args=[watched_run.pk])}")
    steps = page.locator("#run-steps")
    pre = steps.locator("tr.step-output pre").first
    expect(steps).to_have_attribute("data-live", "ws")
    in_thread(output, watched_run, "line 1")
    expect(pre).to_contain_text("line 1")

    asgi_server.stop()
    expect(steps).not_to_have_attribute("data-live", "ws")
    in_thread(output, watched_run, "line 2", "line 3")
    asgi_server.start()

    expect(steps).to_have_attribute("data-live", "ws", timeout=20_000)
    in_thread(output, watched_run, "line 4")
    expected = "\n".join(["before the page opened", *(f"line {n}" for n in range(1, 5))])
    expect(pre).to_have_text(expected)
    last_seq = in_thread(lambda: watched_run.events.order_by("-seq").first().seq)
    expect(steps).to_have_attribute("data-last-seq", str(last_seq))


def test_where_websockets_cannot_get_through_the_page_still_updates_by_polling(
    live_server, transactional_db, page, watched_run, watcher
):
    # live_server is a WSGI server: the websocket upgrade is answered with a 404.
    log_in(page, live_server.url, "watcher-wes", watcher.raw_password)
    page.goto(f"{live_server.url}{reverse('run_detail', args=[watched_run.pk])}")
    steps = page.locator("#run-steps")
    polls = steps_requests(page, watched_run)

    in_thread(output, watched_run, "seen by polling")

    expect(steps.locator("tr.step-output pre").first).to_have_text(
        "before the page opened\nseen by polling"
    )
    assert polls, "the line did not come by polling"
    expect(steps).to_have_attribute("data-live", "poll", timeout=30_000)

    in_thread(finish_run, watched_run)
    expect(steps.locator("[data-run-status]")).to_have_text("Succeeded")
