"""A throwaway redis-server of one test, on a free loopback port, that it may restart at will.

Only a Redis the test started itself may be restarted: the Redis of REDIS_URL is shared by the
whole test run (and by other runs on the machine). Like the panel's own, it keeps nothing on disk,
so a restart loses every queued message, channel group and cached value, as a crash would.
"""

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from celery import Celery
from django.conf import settings

START_TIMEOUT_SECONDS = 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """`with PrivateRedis() as server:` a redis-server on `server.url`; stop(), start() and
    restart() keep its port, so the clients pointed at it can find it again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = Path(tempfile.mkdtemp(prefix="private-redis-"))
        self.process: subprocess.Popen | None = None
        self._sender: Celery | None = None

    def __enter__(self) -> "PrivateRedis":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        if self._sender is not None:
            self._sender.close()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> "PrivateRedis":
        command = [
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--dir", str(self.dir), "--save", "", "--appendonly", "no"),
        ]
        with open(self.dir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.dir / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server did not start on {self.port}:\n{log[-2000:]}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Kill it at once, as when the machine it runs on dies (nothing is saved anyway)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)

    def send_task(self, name: str, *args) -> None:
        """Queue the task `name` here, for the workers of the panel's queue pointed at it (the
        test process's own Celery app sends to the Redis of REDIS_URL)."""
        if self._sender is None:
            self._sender = Celery(broker=self.url, set_as_current=False)
        self._sender.send_task(name, args=args, queue=settings.CELERY_TASK_DEFAULT_QUEUE)
