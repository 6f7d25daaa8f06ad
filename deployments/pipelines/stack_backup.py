"""Back up a stack: dump its databases inside their own containers and archive its files into
a folder of the backup's own on the server, record each file's size and checksum, then remove
the backups beyond the number the stack keeps.

Run params: `stack_id` and `backup_id` (the StackBackup row the action made, whose `folder`
is `<data_dir>/backups/<time>-<id>`).

Every command is an argv (quoted by the SSH client). Output goes to a file through one fixed
shell script (`WRITE_SCRIPT`) that takes the file and the command as arguments, so no name or
path is ever pasted into shell text. Passwords reach the dump tools as environment variables:
the SSH client's `env` sets them for `docker exec -e NAME`, which passes them on by name; they
are never in an argv the panel logs or shows. The dumps are written under a temporary name and
moved into place when complete, so a retried step rewrites its file whole.
"""

import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import audit
from ..choices import (
    KNOWLEDGE_RUN_KINDS,
    MODEL_RUN_KINDS,
    DeploymentAction,
    PipelineKind,
    RunStatus,
    StackStatus,
)
from ..clients.ssh import SSHClient
from ..errors import PanelError
from ..models import (
    BackupStatus,
    Deployment,
    PipelineRun,
    Stack,
    StackBackup,
    StackBackupSettings,
)
from ..models.backups import backup_settings, failed_backups
from ..servers.sessions import open_session
from ..stacks.render import COMPOSE_FILE, CONFIG_FILE, ENV_FILE
from ..stacks.secrets import stack_secrets
from ..stacks.services import service_container
from .registry import register
from .steps import Pipeline, StepContext, StepFailed

# Writes the standard output of the command given after the file to that file, readable by
# root only, whole or not at all. $1: the file; the rest: the command.
WRITE_SCRIPT = 'out="$1"; shift; umask 077; "$@" > "$out.partial" && mv -f -- "$out.partial" "$out"'
# mongodump takes its password as an argument only: the container's shell fills it in from
# the environment the panel passes, so it is in no command line the panel sends.
MONGODUMP_SCRIPT = (
    'exec mongodump --archive --gzip --username "$1" --password "$MONGO_PASSWORD" '
    "--authenticationDatabase admin"
)

# What each database's dump is called in a backup's folder.
POSTGRES_DUMP = "postgres.dump"
MYSQL_DUMP = "mysql.sql"
MONGO_DUMP = "mongo.archive.gz"
FILES_ARCHIVE = "files.tar.gz"
BACKUP_FILES = (POSTGRES_DUMP, MYSQL_DUMP, MONGO_DUMP, FILES_ARCHIVE)


@dataclass(frozen=True)
class Database:
    """A database of the stack as its backup and restore reach it, inside its own container."""

    service: str  # the compose service
    label: str
    file: str  # the dump's name in the backup folder
    password_variable: str  # where the dump and restore tools read the password
    secret: str  # the stack secret that holds it


POSTGRES = Database("pg", "PostgreSQL", POSTGRES_DUMP, "PGPASSWORD", "PG_PASSWORD")
MYSQL = Database("mysql", "MySQL", MYSQL_DUMP, "MYSQL_PWD", "MYSQL_ROOT_PASSWORD")
MONGO = Database("mongo", "MongoDB", MONGO_DUMP, "MONGO_PASSWORD", "MONGO_PASSWORD")
# The stack's own files that go into the archive (never its data directories).
STACK_FILES = (COMPOSE_FILE, ENV_FILE, CONFIG_FILE)

BACKUPS_FOLDER = "backups"
SHA256_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


class BackupRefused(PanelError):
    """A backup cannot start now; the message says why."""


def backup_runs(stack: Stack):
    """Backups and restores of the stack under way (queued or running)."""
    return PipelineRun.objects.filter(
        kind__in=[PipelineKind.STACK_BACKUP, PipelineKind.STACK_RESTORE],
        params__stack_id=stack.pk,
        status__in=ACTIVE,
    )


def _locked_idle_stack(stack: Stack, *, restoring: bool = False) -> Stack:
    """The stack's row, locked (so "is anything under way?" and the new run are one step),
    once it is known to be deployed with nothing else under way on it. A restore also waits
    for model launches, imports and chatbot publishes, which use FastGPT and One API."""
    stack = Stack.objects.select_for_update().select_related("server").get(pk=stack.pk)
    if not stack.rendered_files or stack.status == StackStatus.TORN_DOWN:
        raise BackupRefused(_("This stack is not deployed: deploy it first."))
    if Deployment.objects.filter(stack=stack, run__status__in=ACTIVE).exists():
        raise BackupRefused(_("Another action on this stack is under way: wait for it first."))
    # Runs started before backups and restores were in the history.
    if backup_runs(stack).exists():
        raise BackupRefused(_("A backup or restore of this stack is under way already."))
    users = PipelineRun.objects.filter(
        kind__in=[*MODEL_RUN_KINDS, *KNOWLEDGE_RUN_KINDS],
        params__stack_id=stack.pk,
        status__in=ACTIVE,
    )
    if restoring and users.exists():
        raise BackupRefused(
            _("A model launch, import or chatbot publish is under way on this stack: wait for it.")
        )
    return stack


def record_in_history(stack: Stack, run: PipelineRun, action: str, user) -> Deployment:
    """Backups and restores are actions on the stack: the team's shared history lists them
    with its deploys, and other actions on the stack wait for them."""
    return Deployment.objects.create(
        team=stack.team,
        stack=stack,
        action=action,
        user=user,
        run=run,
        version_line=stack.version_line,
    )


def start_restore(backup: StackBackup, *, user, request=None) -> PipelineRun:
    """Queue the restore of `backup` into its stack; the caller sends the run to a worker."""
    with transaction.atomic():
        stack = _locked_idle_stack(backup.stack, restoring=True)
        run = PipelineRun.objects.create(
            team=stack.team,
            kind=PipelineKind.STACK_RESTORE,
            params={"stack_id": stack.pk, "backup_id": backup.pk},
            created_by=user,
            heartbeat_at=timezone.now(),
        )
        record_in_history(stack, run, DeploymentAction.RESTORE, user)
        audit.record(
            "pipeline.start", actor=user, request=request, target=run, details={"kind": run.kind}
        )
        audit.record(
            "stack.restore",
            actor=user,
            request=request,
            target=stack,
            details={"backup": backup.pk, "run": run.pk},
        )
    return run


def start_backup(stack: Stack, *, user=None, request=None) -> StackBackup:
    """Make the backup's row and its queued run, one backup at a time per stack and never
    during another action on it. The caller sends the run to a worker (after the commit).
    `user` None: the schedule started it."""
    with transaction.atomic():
        stack = _locked_idle_stack(stack)
        actor = user if user is not None and user.is_authenticated else None
        run = PipelineRun.objects.create(
            team=stack.team,
            kind=PipelineKind.STACK_BACKUP,
            params={"stack_id": stack.pk},
            created_by=actor,
            heartbeat_at=timezone.now(),
        )
        backup = StackBackup.objects.create(
            team=stack.team, stack=stack, created_by=actor, run=run, folder=""
        )
        backup.folder = backup_folder(stack.data_dir, backup.created_at, backup.pk)
        backup.save(update_fields=["folder"])
        run.params = {"stack_id": stack.pk, "backup_id": backup.pk}
        run.save(update_fields=["params"])
        record_in_history(stack, run, DeploymentAction.BACKUP, actor)
        audit.record(
            "pipeline.start",
            actor=actor,
            request=request,
            target=run,
            details={"kind": run.kind},
        )
        audit.record(
            "stack.backup",
            actor=actor,
            request=request,
            target=stack,
            details={"backup": backup.pk, "scheduled": user is None},
        )
    return backup


def backups_root(data_dir: str) -> str:
    return f"{data_dir.rstrip('/')}/{BACKUPS_FOLDER}"


def backup_folder(data_dir: str, created_at, backup_id: int) -> str:
    return f"{backups_root(data_dir)}/{created_at:%Y%m%d-%H%M%S}-{backup_id}"


def backup_of(ctx: StepContext) -> StackBackup:
    backups = StackBackup.objects.select_related("stack__server")
    if "backup_id" in ctx.params:
        return backups.get(pk=ctx.params["backup_id"])
    # A backup made as steps of another run (an upgrade's): the one row made for that run.
    return backups.get(run=ctx.run)


def back_up_within(ctx: StepContext, stack: Stack) -> StackBackup:
    """Back `stack` up as part of the run under way (an upgrade backs up first): the backup
    run's steps in turn, the row tied to this run, so a retry redoes it in the same folder."""
    backup, created = StackBackup.objects.get_or_create(
        run=ctx.run,
        defaults={
            "team": stack.team,
            "stack": stack,
            "created_by": ctx.run.created_by,
            "folder": "",
        },
    )
    if created:
        backup.folder = backup_folder(stack.data_dir, backup.created_at, backup.pk)
        backup.save(update_fields=["folder"])
        audit.record(
            "stack.backup",
            actor=ctx.run.created_by,
            target=stack,
            details={"backup": backup.pk, "run": ctx.run.pk, "before_upgrade": True},
        )
    elif backup.status != BackupStatus.RUNNING:
        backup.status = BackupStatus.RUNNING
        backup.save(update_fields=["status"])
    for step in BACKUP.steps:
        ctx.check_cancel()
        ctx.log(f"{step.name}: {step.func(ctx)}")
    backup.refresh_from_db()
    return backup


def _timeout() -> float:
    return getattr(settings, "STACK_BACKUP_TIMEOUT", 3600)


def _container(client: SSHClient, backup: StackBackup, service: str, label: str) -> str:
    container = service_container(client, backup.stack, service)
    if not container:
        raise StepFailed(
            f"The stack has no {label} container ({service}) on its server: deploy the stack "
            "before backing it up."
        )
    return container


def write_output(client: SSHClient, path: str, argv: list[str], *, env=None) -> None:
    """Run `argv` on the server (as root) with its standard output written to `path`."""
    client.run(
        ["sh", "-c", WRITE_SCRIPT, "write-output", path, *argv],
        sudo=True,
        env=env,
        timeout=_timeout(),
    )


def postgres_dump_argv(container: str) -> list[str]:
    return [
        "docker",
        "exec",
        "-e",
        "PGPASSWORD",
        container,
        "pg_dump",
        "-Fc",
        "--username",
        "fastgpt",
        "--dbname",
        "postgres",
    ]


def mysql_dump_argv(container: str) -> list[str]:
    return [
        "docker",
        "exec",
        "-e",
        "MYSQL_PWD",
        container,
        "mysqldump",
        "--user=root",
        "--single-transaction",
        "--routines",
        "--triggers",
        "--databases",
        "oneapi",
    ]


def mongo_dump_argv(container: str) -> list[str]:
    return [
        "docker",
        "exec",
        "-e",
        "MONGO_PASSWORD",
        container,
        "sh",
        "-c",
        MONGODUMP_SCRIPT,
        "mongodump",
        "fastgpt",
    ]


def prepare_folder(ctx: StepContext) -> str:
    backup = backup_of(ctx)
    with open_session(backup.stack.server) as client:
        client.run(["mkdir", "-p", "-m", "700", "--", backup.folder], sudo=True, timeout=60)
    return f"Backing up into {backup.folder}."


def _dump(ctx: StepContext, database: Database, argv) -> str:
    backup = backup_of(ctx)
    password = stack_secrets(backup.stack)[database.secret]
    with open_session(backup.stack.server) as client:
        container = _container(client, backup, database.service, database.label)
        started = time.monotonic()
        write_output(
            client,
            f"{backup.folder}/{database.file}",
            argv(container),
            env={database.password_variable: password},
        )
    return f"{database.label} dumped into {database.file} in {time.monotonic() - started:.1f} s."


def dump_postgres(ctx: StepContext) -> str:
    return _dump(ctx, POSTGRES, postgres_dump_argv)


def dump_mysql(ctx: StepContext) -> str:
    return _dump(ctx, MYSQL, mysql_dump_argv)


def dump_mongo(ctx: StepContext) -> str:
    return _dump(ctx, MONGO, mongo_dump_argv)


def archive_files(ctx: StepContext) -> str:
    backup = backup_of(ctx)
    stack = backup.stack
    names = [name for name in STACK_FILES if name in (stack.rendered_files or {})]
    if not names:
        raise StepFailed("This stack has not been deployed yet: deploy it first.")
    with open_session(stack.server) as client:
        write_output(
            client,
            f"{backup.folder}/{FILES_ARCHIVE}",
            ["tar", "-czf", "-", "-C", stack.data_dir, "--", *names],
        )
    return f"{', '.join(names)} archived into {FILES_ARCHIVE}."


def parse_sizes(text: str) -> dict[str, int]:
    sizes = {}
    for line in text.splitlines():
        size, _, path = line.partition(" ")
        if size.isdigit() and path:
            sizes[path.rsplit("/", 1)[-1]] = int(size)
    return sizes


def parse_checksums(text: str) -> dict[str, str]:
    checksums = {}
    for line in text.splitlines():
        match = SHA256_LINE.match(line.strip())
        if match:
            checksums[match.group(2).rsplit("/", 1)[-1]] = match.group(1)
    return checksums


def record_checksums(ctx: StepContext) -> str:
    backup = backup_of(ctx)
    paths = [f"{backup.folder}/{name}" for name in BACKUP_FILES]
    with open_session(backup.stack.server) as client:
        sizes = parse_sizes(
            client.run(["stat", "-c", "%s %n", "--", *paths], sudo=True, timeout=60).stdout
        )
        checksums = parse_checksums(
            client.run(["sha256sum", "--", *paths], sudo=True, timeout=_timeout()).stdout
        )
    missing = [name for name in BACKUP_FILES if name not in sizes or name not in checksums]
    if missing:
        raise StepFailed(f"The backup folder lacks {', '.join(missing)}.")
    files = [
        {"name": name, "size": sizes[name], "sha256": checksums[name]} for name in BACKUP_FILES
    ]
    for entry in files:
        ctx.log(f"{entry['name']}: {entry['size']} bytes, sha256 {entry['sha256']}")
    now = timezone.now()
    # The later of the two: a backup run may wait in the queue, and a backup made inside an
    # upgrade starts after the upgrade's run did.
    started = max(ctx.run.started_at or backup.created_at, backup.created_at)
    backup.files = files
    backup.total_size = sum(entry["size"] for entry in files)
    backup.duration_seconds = max((now - started).total_seconds(), 0.0)
    backup.status = BackupStatus.SUCCEEDED
    backup.finished_at = now
    backup.save(update_fields=["files", "total_size", "duration_seconds", "status", "finished_at"])
    return f"{len(files)} files, {backup.total_size} bytes in all."


def backups_to_remove(backup: StackBackup, keep_last: int) -> list[StackBackup]:
    """The stack's backups whose folders go: every successful one beyond the newest
    `keep_last`, and every failed one older than the newest kept; never one under way."""
    present = StackBackup.objects.filter(stack=backup.stack, removed_at__isnull=True).exclude(
        pk=backup.pk
    )
    succeeded = [backup, *present.filter(status=BackupStatus.SUCCEEDED).order_by("-created_at")]
    kept = succeeded[:keep_last]
    oldest_kept = min(item.created_at for item in kept)
    removed = succeeded[keep_last:]
    removed += list(
        present.filter(failed_backups(), created_at__lt=oldest_kept).order_by("created_at")
    )
    return removed


def remove_old_backups(ctx: StepContext) -> str:
    backup = backup_of(ctx)
    stack = backup.stack
    keep_last = backup_settings(stack).keep_last
    removed = backups_to_remove(backup, keep_last)
    root = backups_root(stack.data_dir) + "/"
    with open_session(stack.server) as client:
        for old in removed:
            # Only ever a folder under this stack's backups, whatever a row says.
            if old.folder.startswith(root) and "/.." not in old.folder:
                client.run(["rm", "-rf", "--", old.folder], sudo=True, timeout=600)
                ctx.log(f"removed {old.folder}")
            StackBackup.objects.filter(pk=old.pk).update(removed_at=timezone.now())
    return f"{len(removed)} older backups removed; the stack keeps {keep_last}."


BACKUP = register(
    Pipeline(
        kind=PipelineKind.STACK_BACKUP,
        steps=(
            ("prepare folder", prepare_folder),
            ("dump PostgreSQL", dump_postgres),
            ("dump MySQL", dump_mysql),
            ("dump MongoDB", dump_mongo),
            ("archive files", archive_files),
            ("record checksums", record_checksums),
            ("remove old backups", remove_old_backups),
        ),
    )
)


def claim_scheduled_backups(now=None) -> list[Stack]:
    """The stacks whose daily backup is due this hour and was not started today, each marked
    as started today first: whichever worker beat wakes, one backup a day per stack."""
    now = now or timezone.now()
    due = (
        StackBackupSettings.objects.filter(schedule_enabled=True, schedule_hour=now.hour)
        .exclude(last_scheduled_on=now.date())
        .values_list("pk", "stack_id")
    )
    claimed = []
    for pk, stack_id in list(due):
        if (
            StackBackupSettings.objects.filter(pk=pk)
            .exclude(last_scheduled_on=now.date())
            .update(last_scheduled_on=now.date())
        ):
            claimed.append(stack_id)
    return list(Stack.objects.filter(pk__in=claimed).select_related("server", "team"))
