"""A throwaway PostgreSQL server of one test, that it may restart at will.

The machine's cluster serves every test run on it, so a test never restarts that one: it makes
its own with Debian's binaries (initdb, pg_ctl), in a temporary folder, on a free loopback port,
and throws it away afterwards. PostgreSQL refuses to run as root: under root the server runs as
the `postgres` user, who owns the folder.
"""

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from .private_redis import free_port

START_TIMEOUT_SECONDS = 30
USER = "panel"
PASSWORD = "panel"
DATABASE = "panel"


def binaries() -> Path | None:
    """The bin folder of the newest PostgreSQL installed here, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """`with PrivatePostgres() as server:` a server with database `panel` at `server.url`;
    restart() keeps its port and data, as a restarted database server would."""

    def __init__(self) -> None:
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("No PostgreSQL server installed (/usr/lib/postgresql/*/bin).")
        self.port = free_port()
        self.url = f"postgres://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"
        self.dir = Path(tempfile.mkdtemp(prefix="private-postgres-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as_postgres = os.geteuid() == 0

    def __enter__(self) -> "PrivatePostgres":
        try:
            self._init()
            self.start()
            self._create_database()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self, *command: str, timeout: float = 60) -> None:
        if self._as_postgres:
            command = ("runuser", "-u", "postgres", "--", *command)
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.dir
        )
        if result.returncode:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{command} failed: {result.stderr[-2000:]}\n{log}")

    def _init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        password_file = self.dir / "password"
        password_file.write_text(PASSWORD)
        if self._as_postgres:
            shutil.chown(password_file, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            *("-D", str(self.data), "-U", USER, "--pwfile", str(password_file)),
            *("-A", "scram-sha-256", "-E", "UTF8", "--no-sync"),
        )

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), *args)

    def start(self) -> None:
        # Loopback only, its socket in its own folder; no fsync: nothing here must survive the
        # machine, only the server's own restart.
        options = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_SECONDS), "-o", options)

    def stop(self) -> None:
        """A fast shutdown: the clients' connections are cut, as a restarted server cuts them."""
        self._pg_ctl("stop", "-w", "-m", "fast")

    def restart(self) -> None:
        self.stop()
        self.start()

    def connect(self, dbname: str = DATABASE) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            password=PASSWORD,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def _create_database(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                with self.connect("postgres") as connection:
                    connection.execute(f"CREATE DATABASE {DATABASE}")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
