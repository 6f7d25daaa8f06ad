"""Real Celery workers in subprocesses, on the test database and the Redis of REDIS_URL."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from controlpanel.celery import app as celery_app

READY_TIMEOUT_SECONDS = 60


def database_url(settings_dict: dict | None = None) -> str:
    """A DATABASE_URL for the database this process uses now (under tests: the test one)."""
    db = settings_dict or connection.settings_dict
    engine = db["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        return f"sqlite:///{os.path.abspath(db['NAME'])}"
    if engine == "django.db.backends.postgresql":
        user = quote(db.get("USER") or "", safe="")
        password = quote(str(db.get("PASSWORD") or ""), safe="")
        credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = quote(db.get("HOST") or "", safe="")
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{credentials}{host}{port}/{quote(db['NAME'], safe='')}"
    raise ValueError(f"No DATABASE_URL form for the {engine} backend.")


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> object:
    """Poll `predicate` until it returns something true; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {what}.")
        time.sleep(interval)


class Worker:
    """`celery worker` for the default queue, importing testkit.pipelines.

    `env` adds to (and overrides) this process's environment, which the worker inherits
    (REDIS_URL, ...). DATABASE_URL is computed when the worker is created.
    """

    def __init__(self, log_path: Path, *, concurrency: int = 1, env: dict | None = None) -> None:
        self.log_path = Path(log_path)
        self.concurrency = concurrency
        self.name = f"testkit-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "testkit.settings",
            "DATABASE_URL": database_url(),
            "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> "Worker":
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> "Worker":
        """Start the process without waiting for it (to start several at once)."""
        command = [
            *(sys.executable, "-m", "celery", "-A", "controlpanel", "worker"),
            *("--pool=prefork", f"-c{self.concurrency}"),
            *("-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "-I", "testkit.pipelines"),
            *("-n", f"{self.name}@%h", "--without-gossip", "--without-mingle", "-l", "info"),
        ]
        with open(self.log_path, "wb") as log:
            # A session of its own, so kill() reaches the pool's child processes too.
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

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> "Worker":
        deadline = time.monotonic() + timeout
        while " ready." not in self.log:
            if self.process.poll() is not None:
                raise RuntimeError(f"The worker exited at start:\n{self.log[-4000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"The worker was not ready in {timeout}s:\n{self.log[-4000:]}")
            time.sleep(0.05)
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown (finish the task at hand), then SIGKILL whatever is left."""
        stop_all([self], timeout)

    def kill(self) -> None:
        """SIGKILL the worker and its pool at once, as when the machine dies."""
        self._kill_group()

    def _kill_group(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def stop_all(workers: list[Worker], timeout: float = 15) -> None:
    """Stop several workers at once: a warm shutdown takes a few seconds each."""
    running = [w for w in workers if w.process is not None and w.process.poll() is None]
    for worker in running:
        worker.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for worker in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(max(0.0, deadline - time.monotonic()))
    for worker in workers:
        worker.kill()


@contextlib.contextmanager
def worker_starter(folder: Path, env: dict | None = None) -> Iterator[Callable[[], Worker]]:
    """start() starts one more single-process worker (`env` added to its environment) and
    waits until it is ready; each is killed at the end, whatever it was doing."""
    # Messages left by an earlier, interrupted session must not reach these workers.
    celery_app.control.purge()
    workers: list[Worker] = []

    def start() -> Worker:
        worker = Worker(folder / f"worker-{len(workers)}.log", env=env)
        workers.append(worker)
        return worker.start()

    try:
        yield start
    finally:
        for worker in workers:
            worker.kill()
