"""The panel keeps var/ (database, keys, logs, uploads) to its own user, even under a umask that
would let every local user read what it creates, and closes what an earlier version left open.

Each test starts a fresh Python on a scratch var/ with SQLite, the panel's default."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Opens the database and writes to it, and while it is open (SQLite removes its -wal and -shm
# files with the last connection) prints the mode of every file in var/.
START = """
import json, os, stat, django
django.setup()
from django.conf import settings
from django.db import connection
connection.cursor().execute("create table t (x)")
print(json.dumps({
    name: stat.S_IMODE(os.stat(settings.VAR_DIR / name).st_mode)
    for name in os.listdir(settings.VAR_DIR)
}))
"""


def start_panel(var: Path) -> dict[str, int]:
    """The modes of the files in var/ while the panel has its database open."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "SECRET_KEY", "FIELD_ENCRYPTION_KEY")
    }
    env.update(DJANGO_SETTINGS_MODULE="controlpanel.settings", CONTROLPANEL_VAR_DIR=str(var))
    result = subprocess.run(
        [sys.executable, "-c", START],
        cwd=ROOT,
        env=env,
        umask=0o022,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(result.stdout.splitlines()[-1])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_first_start_creates_var_and_its_files_for_the_owner_only(tmp_path):
    var = tmp_path / "var"
    modes = start_panel(var)
    assert mode(var) == 0o700
    names = ["db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm", "secret_key", "field_encryption_key"]
    assert {name: modes[name] for name in names} == dict.fromkeys(names, 0o600)


def test_a_start_closes_var_and_the_database_an_earlier_version_left_open(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    var.chmod(0o755)
    (var / "db.sqlite3").touch()
    (var / "db.sqlite3").chmod(0o644)
    modes = start_panel(var)
    assert mode(var) == 0o700
    assert modes["db.sqlite3"] == 0o600
    assert modes["db.sqlite3-wal"] == 0o600
