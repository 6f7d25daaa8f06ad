"""The server going silent in the middle of a step: its SSH target is frozen (`docker pause`,
as when its network is cut: the connection stays open and nothing answers) while a command of
the prepare pipeline runs on it. The step fails within the command's timeout with a reason in
words, the panel keeps serving, and a retry once the server is back resumes at that step."""

import re

import pytest
from django.urls import reverse

from controlpanel.celery import app as celery_app
from deployments.actions.pipelines import do_retry_run
from deployments.actions.servers import do_prepare_server
from deployments.choices import EventKind, PipelineKind, RunStatus, ServerStatus, StepStatus
from deployments.clients.ssh import SSHClient
from deployments.models import PipelineRun
from deployments.pipelines import error_text, reaper
from deployments.pipelines.server_prepare import PREPARE
from testkit.docker_engine import docker
from testkit.factories import make_server
from testkit.pipelines import step_rows
from testkit.target import SSHTarget
from testkit.workers import Worker, stop_all, wait_until

STEPS = tuple(step.name for step in PREPARE.steps)
# The first step's `cat /etc/os-release` has 30 seconds; the client gives the server's
# `timeout` a few more to confirm before it gives up on the channel.
CUT_DEADLINE = 90
RUN_DEADLINE = 180
STALE_AFTER = 5
# What a person must never read in a run's error: class names, tracebacks, library names.
CLASS_NAME = re.compile(r"Traceback|\w+(Error|Exception)\b|paramiko|<class ")


@pytest.fixture
def target(ssh_target_image):
    with SSHTarget(ssh_target_image) as target:
        yield target
        # A paused container cannot be removed.
        docker("unpause", target.name, check=False)


@pytest.fixture
def worker(transactional_db, tmp_path):
    # Messages left by an earlier, interrupted session must not reach this worker.
    celery_app.control.purge()
    worker = Worker(tmp_path / "worker.log", env={"PIPELINE_HEARTBEAT_SECONDS": "1"})
    yield worker.start()
    stop_all([worker])


def hold_os_release(target: SSHTarget) -> None:
    """Make `cat /etc/os-release` on the target wait (a FIFO nobody writes to), so that the
    first step is inside a command when the server goes silent."""
    script = "cp -L /etc/os-release /root/os-release; rm /etc/os-release; mkfifo /etc/os-release"
    target.exec(["sh", "-euc", script])


def release_os_release(target: SSHTarget) -> None:
    target.exec(["sh", "-euc", "rm /etc/os-release; mv /root/os-release /etc/os-release"])


def command_running(target: SSHTarget, pattern: str) -> bool:
    return target.exec(["pgrep", "-f", pattern], check=False).returncode == 0


def test_a_command_cut_off_after_connecting_is_not_told_as_a_failure_to_connect():
    client = SSHClient("203.0.113.10", 22, "root")
    argv = ["cat", "/etc/os-release"]
    assert error_text.describe(client._timed_out(argv, 30, stopped=False)) == (
        "A command on the server took too long: `cat /etc/os-release` did not finish within "
        "30 seconds on 203.0.113.10:22 and was told to stop, but did not confirm it."
    )
    assert error_text.describe(client._lost(argv, None)) == (
        "The server stopped answering: The connection to 203.0.113.10:22 was lost while "
        "running `cat /etc/os-release`. Is the server still up?"
    )
    assert error_text.describe(client._unreachable(TimeoutError())).startswith(
        "Could not connect over SSH: 203.0.113.10:22 did not answer within 10 seconds."
    )


def wait_for_end(run: PipelineRun, timeout: float) -> PipelineRun:
    def ended():
        run.refresh_from_db()
        return run.status not in (RunStatus.QUEUED, RunStatus.RUNNING)

    wait_until(ended, timeout, f"run {run.pk} to end (it is {run.status})", 0.2)
    return run


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_server_that_goes_silent_mid_step_fails_the_step_in_words_and_a_retry_resumes(
    target, team, operator, worker, client
):
    server = make_server(
        team, host=target.host, ssh_port=target.port, ssh_private_key=target.key.private_openssh
    )
    hold_os_release(target)
    run = do_prepare_server(server, user=operator)
    wait_until(
        lambda: command_running(target, "^cat /etc/os-release"),
        60,
        "the first step's command to run on the server",
    )
    server.refresh_from_db()
    pinned = server.host_key
    assert pinned, "the first step connected and pinned the server's key"

    docker("pause", target.name)
    # The worker is alive and beats while its step waits on the silent server: the run is
    # not taken for one whose worker died.
    beat = PipelineRun.objects.get(pk=run.pk).heartbeat_at
    wait_until(
        lambda: PipelineRun.objects.get(pk=run.pk).heartbeat_at > beat,
        30,
        "the worker to beat while its step waits",
    )
    assert reaper.reap_stale_runs(stale_after=STALE_AFTER) == 0
    wait_for_end(run, CUT_DEADLINE)

    assert run.status == RunStatus.FAILED
    assert run.next_step == 0
    assert run.error == (
        "Step 'connect' failed: A command on the server took too long: `cat /etc/os-release` "
        f"did not finish within 30 seconds on {target.host}:{target.port} and was told to "
        "stop, but did not confirm it."
    )
    assert not CLASS_NAME.search(run.error), run.error
    assert run.events.filter(kind=EventKind.RUN_FINISHED).last().message == run.error
    assert step_rows(run) == [(0, "connect", 1, StepStatus.FAILED)]

    # The panel still serves, the run's page with it, while the server is silent.
    client.force_login(operator)
    page = client.get(reverse("run_detail", args=[run.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "did not finish within 30 seconds" in text
    assert not CLASS_NAME.search(text)

    docker("unpause", target.name)
    release_os_release(target)
    do_retry_run(run, user=operator)
    wait_for_end(run, RUN_DEADLINE)

    assert run.status == RunStatus.SUCCEEDED, run.error
    # The failed step was the first: the retry starts over from it.
    assert run.events.filter(kind=EventKind.RUN_STARTED).last().message == (
        "Started prepare server (attempt 2)."
    )
    # Each step ran once on the retry; nothing ran twice.
    assert step_rows(run) == [
        (0, "connect", 1, StepStatus.FAILED),
        *((index, name, 2, StepStatus.SUCCEEDED) for index, name in enumerate(STEPS)),
    ]
    assert PipelineRun.objects.filter(kind=PipelineKind.SERVER_PREPARE).count() == 1
    server.refresh_from_db()
    assert server.host_key == pinned
    assert server.status == ServerStatus.REACHABLE
