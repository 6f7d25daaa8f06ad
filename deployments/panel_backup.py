"""The panel's own data: one archive holding its database, the restore of such an archive, and
re-encrypting stored secrets with the newest key.

An archive is a .tar.gz with
- manifest.json: the panel version, the database engine, the applied migrations, when it was made,
  and the size and sha256 of every other member;
- database.sqlite3 (sqlite3's online backup, consistent while the panel writes) or database.pgdump
  (pg_dump's custom format, one snapshot);
- keys.json only when asked for: SECRET_KEY, FIELD_ENCRYPTION_KEY and FIELD_ENCRYPTION_OLD_KEYS.

Staged uploads (DOCUMENT_STAGING_DIR) stay out: a file waits there only until its import hands it
to FastGPT, and an import that a restore cuts short is done again by uploading the file again.
"""

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.migrations.recorder import MigrationRecorder

from . import crypto
from .fields import EncryptedTextField

FORMAT = 1
MANIFEST = "manifest.json"
KEYS = "keys.json"
ENGINES = {"django.db.backends.sqlite3": "sqlite", "django.db.backends.postgresql": "postgresql"}
ENGINE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
DATABASE_MEMBERS = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
BATCH_SIZE = 500
# pg_dump and pg_restore of a panel's database take seconds; an hour means something is stuck.
COMMAND_TIMEOUT_SECONDS = 3600
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


# Backup ----------------------------------------------------------------------------------------


def engine_of(db: dict) -> str:
    engine = ENGINES.get(db["ENGINE"])
    if engine is None:
        raise BackupError(f"The panel cannot back up a database of the {db['ENGINE']} backend.")
    return engine


def default_archive_path(now: datetime) -> Path:
    return Path(settings.VAR_DIR) / "backups" / f"panel-{now:%Y%m%dT%H%M%SZ}.tar.gz"


def private_folder(folder: Path, *, ours: bool) -> bool:
    """Create `folder` for this user only; whether group and others are kept out of it. A folder
    that is `ours` (var/backups) is closed if an earlier start left it open; a folder someone
    chose is left as they made it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if ours and info.st_uid == os.geteuid() and info.st_mode & 0o077:
        folder.chmod(0o700)
        info = folder.stat()
    return not info.st_mode & 0o077


def panel_version() -> str:
    """`git describe` of the checkout the panel runs from, else the version in pyproject.toml."""
    try:
        result = subprocess.run(
            ["git", "describe", "--tags", "--always", "--dirty"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        if result.stdout.strip():
            return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as handle:
            return tomllib.load(handle)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def migration_state() -> dict[str, list[str]]:
    """The applied migrations, by app."""
    state: dict[str, list[str]] = {}
    for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
        state.setdefault(app, []).append(name)
    return state


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sqlite_file(db: dict) -> Path:
    name = str(db["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        raise BackupError("The panel's SQLite database is in memory: there is no file to back up.")
    return Path(name)


def dump_sqlite(source: Path, dest: Path) -> None:
    """A copy of `source` through SQLite's online backup: consistent while other processes write."""
    if not source.exists():
        raise BackupError(f"The SQLite database {source} does not exist.")
    reader = sqlite3.connect(source, timeout=30)
    try:
        writer = sqlite3.connect(dest)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    finally:
        reader.close()


def postgres_environment(db: dict) -> dict[str, str]:
    """The environment that points libpq's tools at `db`: the password travels here, never on a
    command line where any local user could read it."""
    env = dict(os.environ)
    for variable, key in (
        ("PGHOST", "HOST"),
        ("PGPORT", "PORT"),
        ("PGUSER", "USER"),
        ("PGPASSWORD", "PASSWORD"),
        ("PGDATABASE", "NAME"),
    ):
        if db.get(key):
            env[variable] = str(db[key])
    sslmode = (db.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = sslmode
    return env


def pg_dump_command(dest: Path) -> list[str]:
    return ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={dest}"]


def pg_restore_command(dump: Path, database: str) -> list[str]:
    # Host, user and password come from the environment; the name makes pg_restore connect.
    return [
        "pg_restore",
        f"--dbname={database}",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        str(dump),
    ]


def run_libpq_tool(command: list[str], db: dict, what: str) -> None:
    try:
        result = subprocess.run(
            command,
            env=postgres_environment(db),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )
    except FileNotFoundError as error:
        raise BackupError(
            f"{command[0]} is not installed: install PostgreSQL's client tools "
            "(Debian: postgresql-client) of the server's version or newer."
        ) from error
    except subprocess.TimeoutExpired as error:
        raise BackupError(f"{what} did not finish within an hour.") from error
    if result.returncode != 0:
        detail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise BackupError(f"{what} failed ({command[0]} exit {result.returncode}): {detail}")


def write_private_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def keys_document() -> bytes:
    return json.dumps(
        {
            "SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEY": settings.FIELD_ENCRYPTION_KEY,
            "FIELD_ENCRYPTION_OLD_KEYS": list(settings.FIELD_ENCRYPTION_OLD_KEYS),
        },
        indent=2,
    ).encode()


def write_archive(path: Path, manifest: dict, members: dict[str, Path]) -> None:
    """`path` created for this user only (never over an existing file), the manifest first."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as error:
        raise BackupError(f"{path} exists already: choose another name.") from error
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
            for name, member in members.items():
                info = tar.gettarinfo(member, arcname=name)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
                with open(member, "rb") as handle:
                    tar.addfile(info, handle)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@dataclass
class Backup:
    path: Path
    manifest: dict
    folder_private: bool


def create_backup(path: Path, *, include_keys: bool, now: datetime, ours: bool) -> Backup:
    """Write the archive at `path`. `ours`: the folder is the panel's var/backups."""
    db = connection.settings_dict
    engine = engine_of(db)
    folder_private = private_folder(path.parent, ours=ours)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".panel-backup-") as staging:
        dump = Path(staging) / DATABASE_MEMBERS[engine]
        if engine == "sqlite":
            dump_sqlite(sqlite_file(db), dump)
        else:
            run_libpq_tool(pg_dump_command(dump), db, "The database dump")
        members = {DATABASE_MEMBERS[engine]: dump}
        if include_keys:
            members[KEYS] = Path(staging) / KEYS
            write_private_file(members[KEYS], keys_document())
        manifest = {
            "format": FORMAT,
            "created_at": now.isoformat(),
            "panel_version": panel_version(),
            "database_engine": engine,
            "migrations": migration_state(),
            "includes_keys": include_keys,
            "members": {
                name: {"size": member.stat().st_size, "sha256": sha256_of(member)}
                for name, member in members.items()
            },
        }
        write_archive(path, manifest, members)
    return Backup(path=path, manifest=manifest, folder_private=folder_private)


# Restore ---------------------------------------------------------------------------------------


def read_archive(path: Path, staging: Path) -> dict:
    """The manifest of the archive at `path`, its members written under `staging`, each checked
    against its sha256 in the manifest; BackupError before anything is restored otherwise."""
    allowed = {*DATABASE_MEMBERS.values(), KEYS}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            try:
                manifest = json.load(tar.extractfile(MANIFEST))
            except (KeyError, AttributeError, ValueError) as error:
                raise BackupError(f"{path} has no readable manifest.json.") from error
            if manifest.get("format") != FORMAT or not isinstance(manifest.get("members"), dict):
                raise BackupError(f"{path} is not a panel backup this version can read.")
            for name, expected in manifest["members"].items():
                if name not in allowed:
                    raise BackupError(f"{path} holds an unexpected member “{name}”.")
                try:
                    source = tar.extractfile(name)
                except KeyError as error:
                    raise BackupError(f"{name} is missing from {path}.") from error
                digest = hashlib.sha256()
                fd = os.open(staging / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as target:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        target.write(chunk)
                if digest.hexdigest() != expected.get("sha256"):
                    raise BackupError(
                        f"{name} in {path} does not match its checksum in the manifest: "
                        "the archive is damaged."
                    )
    except (OSError, tarfile.TarError, EOFError) as error:
        raise BackupError(f"{path} cannot be read as a panel backup: {error}") from error
    return manifest


def processes_using(path: Path) -> list[int]:
    """Other processes that have the SQLite database at `path` (or its -wal or -shm file) open,
    as far as /proc shows them to this user. A panel between two requests holds no connection, so
    an empty list does not prove it stopped; a process listed here proves it runs."""
    resolved = str(path.resolve())
    names = {resolved, f"{resolved}-wal", f"{resolved}-shm"}
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            descriptors = list((entry / "fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in names:
                    found.append(int(entry.name))
                    break
            except OSError:
                continue
    return sorted(found)


def restore_sqlite(dump: Path, target: Path) -> None:
    try:
        with closing(sqlite3.connect(dump)) as restored:
            result = restored.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise BackupError(
            f"The database in the archive is not a SQLite database: {error}"
        ) from error
    if result != "ok":
        raise BackupError(f"The database in the archive fails SQLite's integrity check: {result}")
    dump.chmod(0o600)
    os.replace(dump, target)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)


@dataclass
class Restored:
    manifest: dict
    target: str
    keys_in_archive: bool
    archive_key_matches: bool | None
    secrets: "SecretsCheck | None" = None
    secrets_error: str = ""


def restore_backup(path: Path, *, db: dict, confirmed: bool) -> Restored:
    """Restore the archive at `path` into the database `db` (Django's settings of a connection,
    closed by the caller). Nothing changes unless the archive checks out, its engine is the
    panel's, nothing has the database open (SQLite) and `confirmed`."""
    engine = engine_of(db)
    if engine == "sqlite":
        target = sqlite_file(db)
        private_folder(target.parent, ours=False)
        staging_parent = target.parent
    else:
        staging_parent = None
    with tempfile.TemporaryDirectory(dir=staging_parent, prefix=".panel-restore-") as staging:
        manifest = read_archive(path, Path(staging))
        held = manifest.get("database_engine")
        if held != engine:
            raise BackupError(
                f"This backup holds a {ENGINE_NAMES.get(held, held)} database and this panel is "
                f"configured for {ENGINE_NAMES[engine]} (DATABASE_URL): restore it into a panel "
                f"that uses {ENGINE_NAMES.get(held, held)}. Nothing was restored."
            )
        dump = Path(staging) / DATABASE_MEMBERS[engine]
        if not dump.exists():
            raise BackupError(f"{path} holds no database. Nothing was restored.")
        if engine == "sqlite":
            holders = processes_using(target)
            if holders:
                raise BackupError(
                    f"The database {target} is open in process(es) "
                    f"{', '.join(map(str, holders))}: stop the panel (web, worker and beat) "
                    "before restoring. Nothing was restored."
                )
            where = str(target)
        else:
            where = f"the PostgreSQL database {db['NAME']}"
        fresh = engine == "sqlite" and (not target.exists() or target.stat().st_size == 0)
        if not confirmed and not fresh:
            raise BackupError(
                f"Restoring replaces everything in {where} with the backup of "
                f"{manifest.get('created_at')}. Stop the panel (web, worker and beat), then run "
                "the command again with --yes. Nothing was restored."
            )
        if engine == "sqlite":
            restore_sqlite(dump, target)
        else:
            run_libpq_tool(pg_restore_command(dump, db["NAME"]), db, "The database restore")
        keys = Path(staging) / KEYS
        matches = None
        if keys.exists():
            archived = json.loads(keys.read_text())
            matches = archived.get("FIELD_ENCRYPTION_KEY") == settings.FIELD_ENCRYPTION_KEY
    restored = Restored(
        manifest=manifest,
        target=where,
        keys_in_archive=matches is not None,
        archive_key_matches=matches,
    )
    try:
        restored.secrets = walk_stored_secrets(write=False)
    except DatabaseError as error:
        restored.secrets_error = str(error)
    return restored


# Key rotation ----------------------------------------------------------------------------------


def encrypted_fields() -> list[tuple[type, EncryptedTextField]]:
    """Every encrypted field of every model whose table the panel keeps."""
    found = []
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed:
            continue
        found.extend(
            (model, each)
            for each in meta.local_concrete_fields
            if isinstance(each, EncryptedTextField)
        )
    return found


def stored_tokens(model: type, column: str, batch_size: int) -> Iterator[list[tuple]]:
    """(pk, ciphertext) of the rows with a value in `column`, in batches by primary key. Raw SQL:
    the field itself would hand back the plaintext."""
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    # Names from the models' metadata, quoted by the backend; values are parameters.
    select = f"SELECT {pk}, {quote(column)} FROM {table} WHERE {quote(column)} <> ''"  # noqa: S608
    last = None
    while True:
        with connection.cursor() as cursor:
            if last is None:
                cursor.execute(f"{select} ORDER BY {pk} LIMIT %s", [batch_size])
            else:
                cursor.execute(f"{select} AND {pk} > %s ORDER BY {pk} LIMIT %s", [last, batch_size])
            rows = cursor.fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


@dataclass
class ModelCount:
    older: int = 0  # written with an earlier key (re-encrypted when writing)
    current: int = 0


@dataclass
class SecretsCheck:
    counts: dict[str, ModelCount] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    @property
    def readable(self) -> int:
        return sum(count.older + count.current for count in self.counts.values())


class KeysMissing(Exception):
    """Stored values that no configured key reads; nothing was re-encrypted."""

    def __init__(self, unreadable: list[str]):
        self.unreadable = unreadable
        shown = ", ".join(unreadable[:20])
        more = f" and {len(unreadable) - 20} more" if len(unreadable) > 20 else ""
        super().__init__(
            f"{len(unreadable)} stored value(s) cannot be read with FIELD_ENCRYPTION_KEY or any "
            f"key in FIELD_ENCRYPTION_OLD_KEYS: {shown}{more}. Add the key they were written "
            "with to FIELD_ENCRYPTION_OLD_KEYS and run the command again. Nothing was changed."
        )


def walk_stored_secrets(*, write: bool, batch_size: int = BATCH_SIZE) -> SecretsCheck:
    """Each stored encrypted value, counted per model as written with the newest key or not, and
    named (model, field, pk) when no configured key reads it. `write`: re-encrypt the others with
    the newest key, all in one transaction, undone when any value is unreadable (KeysMissing)."""
    quote = connection.ops.quote_name
    check = SecretsCheck()
    with transaction.atomic():
        for model, encrypted in encrypted_fields():
            count = check.counts.setdefault(model._meta.label, ModelCount())
            table, column = quote(model._meta.db_table), quote(encrypted.column)
            update = f"UPDATE {table} SET {column} = %s WHERE {quote(model._meta.pk.column)} = %s"  # noqa: S608
            for rows in stored_tokens(model, encrypted.column, batch_size):
                changes = []
                for pk, token in rows:
                    if crypto.is_current(token):
                        count.current += 1
                        continue
                    try:
                        changes.append((crypto.reencrypt(token), pk))
                    except crypto.SecretUnreadable:
                        check.unreadable.append(f"{model._meta.label}.{encrypted.name} pk={pk}")
                        continue
                    count.older += 1
                if write and changes and not check.unreadable:
                    with connection.cursor() as cursor:
                        cursor.executemany(update, changes)
        if write and check.unreadable:
            raise KeysMissing(check.unreadable)
    return check
