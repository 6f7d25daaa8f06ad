"""`backup_panel` writes the panel's database into one archive that only its user can read, with a
manifest of checksums and, only when asked, the keys; `restore_panel` checks the archive and brings
the rows back, encrypted ones still readable."""

import hashlib
import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from deployments import crypto, panel_backup
from deployments.models import Server
from testkit.factories import make_server, make_team

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
SQLITE = "django.db.backends.sqlite3"
HOLD_OPEN = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("SELECT x FROM kept").fetchall()
print("open", flush=True)
sys.stdin.read()
"""

# scripts/test runs every test on SQLite and again on PostgreSQL (DATABASE_URL): each engine's
# round trip runs in the run of its engine.
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite run")
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL run")


def backup(*arguments: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("backup_panel", *arguments, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers()}


def rewrite(archive: Path, changed: dict[str, bytes]) -> Path:
    """A copy of `archive` with some members' bytes replaced (the manifest left as it was)."""
    copy = archive.with_name(f"changed-{archive.name}")
    with tarfile.open(copy, "w:gz") as tar:
        for name, data in {**members(archive), **changed}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return copy


def scratch_sqlite(path: Path) -> dict:
    """A small SQLite database at `path` standing for the configured one, and its settings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE kept (x)")
        db.execute("INSERT INTO kept VALUES ('before')")
    return {"ENGINE": SQLITE, "NAME": str(path)}


def manage(
    *arguments: str, database: Path, var: Path, key: str | None = None
) -> subprocess.CompletedProcess:
    """manage.py in a fresh Python, on the SQLite database at `database`, with this panel's keys
    (or another FIELD_ENCRYPTION_KEY)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlpanel.settings"}
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        CONTROLPANEL_VAR_DIR=str(var),
        SECRET_KEY=settings.SECRET_KEY,
        FIELD_ENCRYPTION_KEY=key or settings.FIELD_ENCRYPTION_KEY,
        FIELD_ENCRYPTION_OLD_KEYS="",
    )
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@sqlite_only
def test_a_backup_restored_into_a_fresh_database_brings_the_rows_back_still_decrypting(
    transactional_db, tmp_path
):
    server = make_server(make_team("Alpha"), name="gpu-a", ssh_private_key=PRIVATE_KEY)
    archive = tmp_path / "backups" / "panel.tar.gz"
    backup(str(archive))
    Server.objects.filter(pk=server.pk).update(name="renamed")
    make_server(server.team, name="gpu-later")

    fresh = tmp_path / "restored" / "db.sqlite3"
    result = manage("restore_panel", str(archive), database=fresh, var=tmp_path / "var")

    assert result.returncode == 0, result.stderr
    with sqlite3.connect(fresh) as db:
        rows = db.execute("SELECT name, ssh_private_key FROM deployments_server").fetchall()
    assert [name for name, _ in rows] == ["gpu-a"]
    assert crypto.decrypt(rows[0][1]) == PRIVATE_KEY
    assert "Restored the SQLite database" in result.stdout
    assert "Stored secrets: 1 readable with the configured keys, 0 not." in result.stdout
    assert mode(fresh) == 0o600


@sqlite_only
def test_a_restore_without_the_backups_encryption_key_says_its_secrets_cannot_be_read(
    transactional_db, tmp_path
):
    make_server(make_team("Alpha"), ssh_private_key=PRIVATE_KEY)
    archive = tmp_path / "panel.tar.gz"
    backup(str(archive), "--include-keys")

    result = manage(
        "restore_panel",
        str(archive),
        database=tmp_path / "fresh.sqlite3",
        var=tmp_path / "var",
        key="a new installation's key",
    )

    assert result.returncode == 0, result.stderr
    assert "FIELD_ENCRYPTION_KEY is not the one this panel is configured with" in result.stdout
    assert "Stored secrets: 0 readable with the configured keys, 1 not." in result.stdout
    assert "Some stored secrets cannot be read" in result.stderr


@postgresql_only
def test_a_postgresql_backup_restored_brings_the_rows_back_still_decrypting(
    transactional_db, tmp_path
):
    server = make_server(make_team("Alpha"), name="gpu-a", ssh_private_key=PRIVATE_KEY)
    archive = tmp_path / "panel.tar.gz"
    backup(str(archive))
    Server.objects.filter(pk=server.pk).update(name="renamed", ssh_private_key="")
    make_server(server.team, name="gpu-later")

    out = io.StringIO()
    call_command("restore_panel", str(archive), "--yes", stdout=out, stderr=out)

    assert list(Server.objects.values_list("name", flat=True)) == ["gpu-a"]
    assert Server.objects.get().ssh_private_key == PRIVATE_KEY
    assert "Restored the PostgreSQL database" in out.getvalue()


def test_the_manifest_names_the_engine_migrations_version_and_each_members_checksum(db, tmp_path):
    archive = tmp_path / "panel.tar.gz"
    backup(str(archive))

    content = members(archive)
    manifest = json.loads(content["manifest.json"])
    engine = {"sqlite": "sqlite", "postgresql": "postgresql"}[connection.vendor]
    assert manifest["database_engine"] == engine
    assert "0001_initial" in manifest["migrations"]["deployments"]
    assert manifest["panel_version"] and manifest["created_at"]
    dump = panel_backup.DATABASE_MEMBERS[engine]
    assert set(manifest["members"]) == {dump}
    assert manifest["members"][dump]["sha256"] == hashlib.sha256(content[dump]).hexdigest()


def test_a_corrupted_member_is_caught_by_its_checksum_and_nothing_is_restored(db, tmp_path):
    archive = tmp_path / "panel.tar.gz"
    backup(str(archive))
    dump = next(name for name in members(archive) if name.startswith("database."))
    damaged = rewrite(archive, {dump: members(archive)[dump][:-1] + b"!"})
    target = tmp_path / "var" / "db.sqlite3"
    configured = scratch_sqlite(target)
    before = target.read_bytes()

    with pytest.raises(panel_backup.BackupError, match="does not match its checksum"):
        panel_backup.restore_backup(damaged, db=configured, confirmed=True)

    assert target.read_bytes() == before


def test_a_backup_of_another_database_engine_is_refused(db, tmp_path):
    dump = tmp_path / "database.pgdump"
    dump.write_bytes(b"PGDMP")
    archive = tmp_path / "postgresql.tar.gz"
    manifest = {
        "format": panel_backup.FORMAT,
        "created_at": "2026-01-01T00:00:00+00:00",
        "panel_version": "0.1.0",
        "database_engine": "postgresql",
        "migrations": {},
        "includes_keys": False,
        "members": {dump.name: {"size": 5, "sha256": panel_backup.sha256_of(dump)}},
    }
    panel_backup.write_archive(archive, manifest, {dump.name: dump})

    with pytest.raises(panel_backup.BackupError) as refused:
        panel_backup.restore_backup(
            archive, db=scratch_sqlite(tmp_path / "var" / "db.sqlite3"), confirmed=True
        )

    assert str(refused.value).startswith(
        "This backup holds a PostgreSQL database and this panel is configured for SQLite"
    )


@sqlite_only
def test_a_restore_refuses_while_the_database_is_open_and_until_confirmed(db, tmp_path):
    archive = tmp_path / "panel.tar.gz"
    backup(str(archive))
    target = tmp_path / "var" / "db.sqlite3"
    configured = scratch_sqlite(target)
    # Another process with the database open, as the panel's worker holds it during a task.
    running = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert running.stdout.readline().strip() == "open"
        with pytest.raises(panel_backup.BackupError, match=f"process\\(es\\) {running.pid}:"):
            panel_backup.restore_backup(archive, db=configured, confirmed=True)
    finally:
        running.stdin.close()
        running.wait(timeout=30)
    with pytest.raises(panel_backup.BackupError, match="--yes"):
        panel_backup.restore_backup(archive, db=configured, confirmed=False)
    with sqlite3.connect(target) as still:
        assert still.execute("SELECT x FROM kept").fetchall() == [("before",)]


def test_the_default_archive_is_for_its_user_only_in_a_folder_for_its_user_only(
    db, tmp_path, settings
):
    settings.VAR_DIR = tmp_path / "var"
    # A folder an earlier version left open to everyone.
    (tmp_path / "var" / "backups").mkdir(parents=True)
    os.chmod(tmp_path / "var" / "backups", 0o755)  # noqa: S103
    old_umask = os.umask(0o022)
    try:
        backup()
    finally:
        os.umask(old_umask)

    folder = tmp_path / "var" / "backups"
    (archive,) = folder.glob("panel-*.tar.gz")
    assert mode(folder) == 0o700
    assert mode(archive) == 0o600
    assert [path.name for path in folder.iterdir()] == [archive.name]


def test_an_existing_archive_is_never_overwritten(db, tmp_path):
    archive = tmp_path / "panel.tar.gz"
    archive.write_bytes(b"an earlier backup")

    with pytest.raises(CommandError, match="exists already"):
        backup(str(archive))

    assert archive.read_bytes() == b"an earlier backup"


def test_the_keys_stay_out_of_the_archive_unless_asked_for(db, tmp_path):
    plain, with_keys = tmp_path / "plain.tar.gz", tmp_path / "keys.tar.gz"
    out, _ = backup(str(plain))
    _, warning = backup(str(with_keys), "--include-keys")

    content = members(plain)
    assert "keys.json" not in content
    for data in content.values():
        assert settings.FIELD_ENCRYPTION_KEY.encode() not in data
        assert settings.SECRET_KEY.encode() not in data
    assert "keep the key with the backup" in out

    keys = json.loads(members(with_keys)["keys.json"])
    assert keys["FIELD_ENCRYPTION_KEY"] == settings.FIELD_ENCRYPTION_KEY
    assert keys["SECRET_KEY"] == settings.SECRET_KEY
    assert "keep it as secret as the keys themselves" in warning
    assert json.loads(members(with_keys)["manifest.json"])["includes_keys"] is True


@sqlite_only
def test_no_secret_reaches_the_commands_output(transactional_db, tmp_path):
    make_server(make_team("Alpha"), ssh_private_key=PRIVATE_KEY)
    archive = tmp_path / "panel.tar.gz"
    printed = "".join(backup(str(archive), "--include-keys"))
    result = manage(
        "restore_panel", str(archive), database=tmp_path / "fresh.sqlite3", var=tmp_path / "var"
    )
    printed += result.stdout + result.stderr

    assert "Restored the SQLite database" in printed
    for secret in (settings.SECRET_KEY, settings.FIELD_ENCRYPTION_KEY, "b3BlbnNzaC1rZXktdjEAAAAA"):
        assert secret not in printed


def test_the_postgresql_password_travels_in_the_environment_never_on_the_command_line(tmp_path):
    db = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "panel",
        "USER": "panel",
        "PASSWORD": "pg-password-1234",
        "HOST": "db.internal",
        "PORT": 5432,
    }

    env = panel_backup.postgres_environment(db)
    commands = [
        panel_backup.pg_dump_command(tmp_path / "database.pgdump"),
        panel_backup.pg_restore_command(tmp_path / "database.pgdump", db["NAME"]),
    ]

    assert env["PGPASSWORD"] == "pg-password-1234"
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"]) == ("db.internal", "5432", "panel")
    for command in commands:
        assert not any("pg-password-1234" in argument for argument in command)
