"""A backup's PostgreSQL dump for real: the stack's PostgreSQL image (real PostgreSQL with
pgvector) in a container of its own on this machine's engine, dumped by the exact command line
the backup run sends to a server (the output script, `docker exec -e PGPASSWORD ... pg_dump
-Fc`, quoted by the SSH client's command builder); rows written, dumped, changed, restored with
pg_restore, and back as they were.

MySQL the same way, on the stack's MySQL image (real MariaDB, whose mysqldump and mysql client
stand for mysql:8.0's): rows written, dumped by the backup's command, changed, restored by the
restore's command, and back. MongoDB has a stand-in image only, so its dump and restore are
tested by the commands sent (test_stack_backups.py). And a download, through a real SSH session
to an OpenSSH server on loopback, arriving in chunks."""

import contextlib
import io
import os
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator

import pytest

from deployments.actions.backups import do_open_download
from deployments.clients.ssh import generate_keypair
from deployments.clients.ssh.commands import CommandStream, build_command
from deployments.models import BackupStatus, StackBackup
from deployments.pipelines.stack_backup import (
    BACKUP_FILES,
    WRITE_SCRIPT,
    mysql_dump_argv,
    postgres_dump_argv,
)
from deployments.pipelines.stack_restore import (
    READ_SCRIPT,
    mysql_restore_argv,
    postgres_restore_argv,
)
from testkit.docker_engine import docker, engine_error
from testkit.factories import make_server, make_stack
from testkit.images.stack import ensure_stack_images
from testkit.sshd import Sshd

pytestmark = pytest.mark.slow

PASSWORD = "Backup0Test0Password"
READY_SECONDS = 90


def psql(container: str, sql: str) -> str:
    result = docker(
        "exec",
        container,
        *("psql", "-U", "fastgpt", "-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql),
        timeout=60,
    )
    return result.stdout.decode().strip()


@contextlib.contextmanager
def database_container(service: str, env: dict[str, str], ready: list[str]) -> Iterator[str]:
    """A container of the stack's image for `service`, started with `env`, once `ready` (a
    command run in it) succeeds; its name."""
    problem = engine_error()
    if problem:
        raise RuntimeError(f"{problem} (scripts/test starts the engine.)")
    image = ensure_stack_images()[service][0]
    name = f"cpbackuptest-{service}-{uuid.uuid4().hex[:10]}"
    settings = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    docker("run", "-d", "--rm", "--name", name, *settings, image, timeout=120)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            answer = docker("exec", name, *ready, check=False, timeout=30)
            if answer.returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"{service} not ready in {READY_SECONDS}s: {answer.stderr!r}")
            time.sleep(0.5)
        yield name
    finally:
        docker("rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def postgres():
    env = {"POSTGRES_USER": "fastgpt", "POSTGRES_PASSWORD": PASSWORD, "POSTGRES_DB": "postgres"}
    ready = ["psql", "-U", "fastgpt", "-d", "postgres", "-c", "select 1"]
    with database_container("pg", env, ready) as name:
        yield name


def run_as_the_server_would(argv: list[str], env: dict[str, str]) -> None:
    """The command line the SSH client sends, run by a shell here as sshd runs it there."""
    command = build_command(argv, env=env, timeout=300)
    result = subprocess.run(["sh", "-c", command], capture_output=True, timeout=330, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def test_a_postgres_dump_of_the_backup_restores_the_rows_as_they_were(postgres, tmp_path):
    psql(
        postgres,
        "create extension if not exists vector; "
        "create table notes (id int primary key, body text, embedding vector(3)); "
        "insert into notes values (1, 'first', '[1,2,3]'), (2, 'second', '[4,5,6]'), "
        "(3, 'third ''quoted''', '[7,8,9]');",
    )
    before = psql(postgres, "select id, body, embedding from notes order by id")
    assert before.count("\n") == 2

    # The backup step's command: its output written to the file by the fixed script.
    dump = tmp_path / "backup folder" / "postgres.dump"
    dump.parent.mkdir()
    run_as_the_server_would(
        ["sh", "-c", WRITE_SCRIPT, "write-output", str(dump), *postgres_dump_argv(postgres)],
        env={"PGPASSWORD": PASSWORD},
    )
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert not dump.with_name("postgres.dump.partial").exists()
    assert oct(dump.stat().st_mode)[-3:] == "600"

    psql(postgres, "delete from notes where id = 2; update notes set body = 'changed' where id = 1")
    assert psql(postgres, "select id, body, embedding from notes order by id") != before

    # The restore step's command: the dump fed to pg_restore --clean by the fixed script.
    run_as_the_server_would(
        ["sh", "-c", READ_SCRIPT, "read-input", str(dump), *postgres_restore_argv(postgres)],
        env={"PGPASSWORD": PASSWORD},
    )
    assert psql(postgres, "select id, body, embedding from notes order by id") == before


def mariadb(container: str, sql: str) -> str:
    result = docker(
        "exec",
        "-e",
        f"MYSQL_PWD={PASSWORD}",
        container,
        *("mariadb", "--user=root", "--batch", "--skip-column-names", "oneapi", "-e", sql),
        timeout=60,
    )
    return result.stdout.decode().strip()


@pytest.fixture(scope="module")
def mysql():
    env = {"MYSQL_ROOT_PASSWORD": PASSWORD, "MYSQL_DATABASE": "oneapi"}
    ready = ["env", f"MYSQL_PWD={PASSWORD}", "mariadb", "--user=root", "oneapi", "-e", "select 1"]
    with database_container("mysql", env, ready) as name:
        yield name


def test_a_mysql_dump_of_the_backup_restores_the_rows_as_they_were(mysql, tmp_path):
    mariadb(
        mysql,
        "create table channels (id int primary key, name varchar(64), models text); "
        "insert into channels values (1, 'xinference', 'qwen2,bge'), (2, 'cloud', 'gpt'), "
        "(3, 'it''s quoted', '');",
    )
    before = mariadb(mysql, "select * from channels order by id")
    assert before.count("\n") == 2

    dump = tmp_path / "backup folder" / "mysql.sql"
    dump.parent.mkdir()
    run_as_the_server_would(
        ["sh", "-c", WRITE_SCRIPT, "write-output", str(dump), *mysql_dump_argv(mysql)],
        env={"MYSQL_PWD": PASSWORD},
    )
    assert b"CREATE DATABASE" in dump.read_bytes() and b"`channels`" in dump.read_bytes()
    assert PASSWORD.encode() not in dump.read_bytes()
    assert oct(dump.stat().st_mode)[-3:] == "600"

    mariadb(mysql, "delete from channels where id = 2; update channels set name = 'x' where id = 1")
    assert mariadb(mysql, "select * from channels order by id") != before

    run_as_the_server_would(
        ["sh", "-c", READ_SCRIPT, "read-input", str(dump), *mysql_restore_argv(mysql)],
        env={"MYSQL_PWD": PASSWORD},
    )
    assert mariadb(mysql, "select * from channels order by id") == before


# --- a download through a real SSH session ---------------------------------------------------


@pytest.fixture
def sshd(tmp_path):
    keypair = generate_keypair("test-panel")
    server = Sshd(tmp_path / "sshd")
    server.authorize(keypair[1])
    server.start()
    server.keypair = keypair
    yield server
    server.cleanup()


@pytest.mark.django_db
def test_a_download_streams_the_backup_folder_from_the_server_in_chunks(
    sshd, team, operator, tmp_path
):
    server = make_server(
        team,
        host="127.0.0.1",
        ssh_port=sshd.port,
        ssh_user="root",
        ssh_private_key=sshd.keypair[0],
        ssh_public_key=sshd.keypair[1],
        host_key=sshd.host_key_line,
    )
    stack = make_stack(server, data_dir=str(tmp_path / "stack"))
    folder = tmp_path / "stack" / "backups" / "20261206-060000-1"
    folder.mkdir(parents=True)
    contents = {
        name: os.urandom(1_500_000 if name == "postgres.dump" else 1000) for name in BACKUP_FILES
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    backup = StackBackup.objects.create(
        team=team,
        stack=stack,
        status=BackupStatus.SUCCEEDED,
        folder=str(folder),
        files=[{"name": name, "size": len(data), "sha256": ""} for name, data in contents.items()],
    )

    chunks = list(do_open_download(backup, user=operator))

    # Read as it came, never whole: a megabyte and a half arrives in several pieces.
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= CommandStream.READ_LIMIT
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        assert sorted(archive.getnames()) == sorted(BACKUP_FILES)
        for name, data in contents.items():
            assert archive.extractfile(name).read() == data
