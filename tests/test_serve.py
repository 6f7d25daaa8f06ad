"""The web server: several processes on one port (controlpanel.serve), as the panel runs."""

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.urls import reverse
from django.utils import timezone
from websockets.asyncio.client import connect

from controlpanel import serve
from deployments.audit import LOGIN_FAILED
from deployments.choices import EventKind, Role, RunStatus, StepStatus
from deployments.models import AuditEvent, StepRun
from deployments.pipelines import events
from testkit.asgi_server import AsgiServer, csrf_token, log_in
from testkit.factories import add_member, make_run, make_team, make_user


def test_the_process_count_comes_from_the_option_then_web_processes_then_the_cpus(monkeypatch):
    monkeypatch.delenv("WEB_PROCESSES", raising=False)
    cpus = len(os.sched_getaffinity(0))
    assert serve.parse([]).processes == min(cpus, serve.MAX_DEFAULT_PROCESSES)
    monkeypatch.setenv("WEB_PROCESSES", "3")
    assert serve.parse([]).processes == 3
    assert serve.parse(["--processes", "2"]).processes == 2


@pytest.mark.parametrize("value", ["none", "0", "-2", "1.5"])
def test_a_bad_web_processes_is_refused_in_words(monkeypatch, capsys, value):
    monkeypatch.setenv("WEB_PROCESSES", value)
    with pytest.raises(SystemExit) as exited:
        serve.parse([])
    assert exited.value.code == 2
    assert f"WEB_PROCESSES must be a whole number of 1 or more, not {value!r}" in (
        capsys.readouterr().err
    )


def test_a_bad_processes_option_is_refused(capsys):
    with pytest.raises(SystemExit):
        serve.parse(["--processes", "0"])
    assert "must be 1 or more" in capsys.readouterr().err


def web_processes(pid: int) -> set[int]:
    """The processes serving under the server's parent (not multiprocessing's helper)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    found = set()
    for child in path.read_text().split() if path.exists() else ():
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(int(child))
    return found


def wait_for(condition, what: str, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never happened")
        time.sleep(0.1)
    return result


@pytest.fixture
def two_processes(transactional_db, tmp_path):
    server = AsgiServer(tmp_path / "web.log", processes=2).start()
    try:
        wait_for(lambda: len(web_processes(server.process.pid)) == 2, "two web processes")
        yield server
    finally:
        server.stop()


def running_run_and_member():
    team = make_team()
    member = add_member(team, make_user(), role=Role.VIEWER)
    run = make_run(team, status=RunStatus.RUNNING, kind="server_check", started_at=timezone.now())
    StepRun.objects.create(
        run=run, index=0, name="unpack", status=StepStatus.RUNNING, started_at=timezone.now()
    )
    return run, member


async def first_messages(url: str, session: str, run_id: int, then=None) -> list[str]:
    """The run's websocket, opened with a member's session: its first message, and the next
    one after `then` ran (in a thread: it writes to the database)."""
    ws_url = url.replace("http://", "ws://") + f"/ws/runs/{run_id}/"
    async with connect(
        ws_url, origin=url, additional_headers={"Cookie": f"sessionid={session}"}
    ) as ws:
        messages = [await asyncio.wait_for(ws.recv(), 15)]
        if then is not None:
            await asyncio.to_thread(then)
            messages.append(await asyncio.wait_for(ws.recv(), 15))
        return messages


def test_two_processes_serve_pages_and_live_runs_on_one_port_and_a_killed_one_is_replaced(
    two_processes,
):
    server = two_processes
    run, member = running_run_and_member()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert log_in(client, member.username, member.raw_password).status_code == 302
        session = client.cookies["sessionid"]
        # Each fresh connection goes to whichever process accepts it first: the session and
        # the page are the same from both.
        for _ in range(10):
            with httpx.Client(
                base_url=server.url, timeout=30, cookies={"sessionid": session}
            ) as fresh:
                page = fresh.get(f"/runs/{run.pk}/")
                assert page.status_code == 200 and "unpack" in page.text

    def output():
        events.record(
            run.pk, EventKind.OUTPUT, status=RunStatus.RUNNING, step_index=0, message="layer 1/3"
        )

    # An event recorded elsewhere (here, as a worker records it) reaches a websocket of
    # whichever process holds it, through Redis.
    section, line = asyncio.run(first_messages(server.url, session, run.pk, then=output))
    assert "unpack" in section
    assert "layer 1/3" in line

    before = web_processes(server.process.pid)
    os.kill(min(before), signal.SIGKILL)
    for _ in range(5):
        with httpx.Client(base_url=server.url, timeout=30, cookies={"sessionid": session}) as c:
            assert c.get(f"/runs/{run.pk}/").status_code == 200
    now = wait_for(
        lambda: len(found := web_processes(server.process.pid)) == 2 and found,
        "a new process in place of the killed one",
    )
    assert min(before) not in now


def test_the_server_hands_the_panel_the_peer_address_not_a_forwarded_one(two_processes):
    """X-Forwarded-For is the panel's to trust (TRUSTED_PROXY_COUNT, 0 here), not the
    server's: a client that sends one is still audited at its own address."""
    user = make_user()
    with httpx.Client(
        base_url=two_processes.url, timeout=30, headers={"X-Forwarded-For": "203.0.113.9"}
    ) as client:
        assert log_in(client, user.username, "not the password").status_code == 200
    failed = AuditEvent.objects.filter(action=LOGIN_FAILED)
    assert [event.ip_address for event in failed] == ["127.0.0.1"]


def mfa_log_in(server: AsgiServer, user, code: str) -> httpx.Response:
    """Password, then the authenticator's code, through the login forms of `server`."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert log_in(client, user.username, user.raw_password).headers["location"] == (
            reverse("mfa_authenticate")
        )
        token = csrf_token(client.get(reverse("mfa_authenticate")))
        return client.post(
            reverse("mfa_authenticate"), data={"code": code, "csrfmiddlewaretoken": token}
        )


def test_a_code_used_on_one_web_process_is_refused_on_another(transactional_db, tmp_path):
    """allauth remembers the one-time codes already used in the cache, which every process
    shares: a code seen by one process cannot log in again through another."""
    user = make_user()
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    first = AsgiServer(tmp_path / "first.log").start()
    second = AsgiServer(tmp_path / "second.log").start()
    try:
        # Well inside one 30-second step, so the code stays valid from the first login to the
        # second: only its having been used can refuse it.
        if 30 - time.time() % 30 < 10:
            time.sleep(30 - time.time() % 30)
        step = int(time.time()) // 30
        code = format_hotp_value(hotp_value(secret, step))

        assert mfa_log_in(first, user, code).headers["location"] == reverse("dashboard")
        again = mfa_log_in(second, user, code)
        assert int(time.time()) // 30 == step
    finally:
        first.stop()
        second.stop()
    assert again.status_code == 200 and "Incorrect code" in again.text


def test_the_access_log_names_each_address_without_its_query(transactional_db, tmp_path):
    """A sign-in's return from the identity provider carries its one-time code in the query:
    the access log keeps the path and the status only."""
    server = AsgiServer(tmp_path / "web.log", access_log=True).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            page = client.get("/login/?code=one-time-secret&state=s3cr3t")
        assert page.status_code == 200
        log = wait_for(lambda: '"GET /login/ HTTP/1.1" 200' in server.log and server.log, "a line")
    finally:
        server.stop()
    assert "one-time-secret" not in log and "s3cr3t" not in log
