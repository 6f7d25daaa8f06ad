"""The panel served as in production, by controlpanel.serve (HTTP and websockets), in a
subprocess.

live_server speaks WSGI only; a test that needs the websockets, or a server pointed at other
services than the test's own (`env`), starts this one. stop() and start() again keep its port.
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
from django.conf import settings

from controlpanel import serve

from .private_redis import free_port
from .workers import database_url

START_TIMEOUT_SECONDS = 30
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def csrf_token(page: httpx.Response) -> str:
    """The CSRF token of the page's form, to post back as a browser does."""
    assert page.status_code == 200, page.status_code
    return CSRF_FIELD.search(page.text)[1]


def log_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    """The panel's login form, read and posted as a browser does (302 once logged in)."""
    token = csrf_token(client.get("/login/"))
    return client.post(
        "/login/", data={"login": username, "password": password, "csrfmiddlewaretoken": token}
    )


class AsgiServer:
    """controlpanel.serve on 127.0.0.1 (one process unless `processes` says more), on the test
    database and the Redis of REDIS_URL unless `env` says otherwise."""

    def __init__(
        self,
        log_path: Path,
        env: dict | None = None,
        processes: int = 1,
        access_log: bool = False,
    ) -> None:
        self.port = free_port()
        self.processes = processes
        self.access_log = access_log
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "testkit.settings",
            **({} if env and "DATABASE_URL" in env else {"DATABASE_URL": database_url()}),
            **(env or {}),
            # Static files straight from the source folders, as under runserver.
            "DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> "AsgiServer":
        return self.spawn().wait_ready()

    def spawn(self) -> "AsgiServer":
        """Start the process without waiting for it (to do something else meanwhile)."""
        command = serve.command(self.port, self.processes, access_log=self.access_log)
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
        return self

    def wait_ready(self) -> "AsgiServer":
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the panel did not start:\n{self.log[-4000:]}")
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
