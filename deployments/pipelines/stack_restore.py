"""Restore a backup into the stack it was made of: check the backup's files against their
recorded checksums, stop the services that use the databases (FastGPT and One API), restore
PostgreSQL, MySQL and MongoDB inside their own containers from the dumps, start the services
and wait until every one is healthy.

Run params: `stack_id` and `backup_id`. The databases keep running throughout: a restore
replaces what they hold (pg_restore --clean, the MySQL dump's DROP TABLE statements,
mongorestore --drop). The archive of the stack's files is not written back: the files a deploy
writes come from the stack's settings, and the archive is there to read by hand.

As in a backup, each dump reaches its tool through a fixed script (`READ_SCRIPT`) that takes
the file and the command as arguments, and passwords only as environment variables.
"""

from django.utils import timezone

from ..choices import PipelineKind, StackStatus
from ..clients.ssh import SSHClient
from ..models import Stack, StackBackup
from ..servers.sessions import open_session
from ..stacks.compose import compose_argv, server_facts
from ..stacks.render import RenderedStack
from ..stacks.secrets import stack_secrets
from ..stacks.services import service_container
from .registry import register
from .stack_backup import (
    MONGO,
    MONGO_DUMP,
    MYSQL,
    MYSQL_DUMP,
    POSTGRES,
    POSTGRES_DUMP,
    Database,
    _timeout,
    backup_of,
    parse_checksums,
)
from .stack_steps import wait_for_health
from .steps import Pipeline, StepContext, StepFailed

# Feeds the file named first to the command given after it. $1: the file; the rest: the command.
READ_SCRIPT = 'in="$1"; shift; "$@" < "$in"'
MONGORESTORE_SCRIPT = (
    'exec mongorestore --archive --gzip --drop --username "$1" --password "$MONGO_PASSWORD" '
    "--authenticationDatabase admin"
)
# The services that use the databases: stopped while they are restored. Xinference (whose
# launched models a stop would unload) and the sandbox use none and run on.
DATABASE_USERS = ("fastgpt", "oneapi")
RESTORED_FILES = (POSTGRES_DUMP, MYSQL_DUMP, MONGO_DUMP)


def postgres_restore_argv(container: str) -> list[str]:
    return [
        "docker",
        "exec",
        "-i",
        "-e",
        "PGPASSWORD",
        container,
        "pg_restore",
        "--clean",
        "--if-exists",
        "--username",
        "fastgpt",
        "--dbname",
        "postgres",
    ]


def mysql_restore_argv(container: str) -> list[str]:
    return ["docker", "exec", "-i", "-e", "MYSQL_PWD", container, "mysql", "--user=root"]


def mongo_restore_argv(container: str) -> list[str]:
    return [
        "docker",
        "exec",
        "-i",
        "-e",
        "MONGO_PASSWORD",
        container,
        "sh",
        "-c",
        MONGORESTORE_SCRIPT,
        "mongorestore",
        "fastgpt",
    ]


def _services(stack: Stack) -> list[str]:
    if not stack.rendered_files:
        raise StepFailed("This stack has not been deployed yet: deploy it first.")
    return RenderedStack(stack.rendered_files).compose_services()


def check_backup(ctx: StepContext) -> str:
    backup = backup_of(ctx)
    recorded = {entry["name"]: entry["sha256"] for entry in backup.files}
    paths = [f"{backup.folder}/{name}" for name in RESTORED_FILES]
    with open_session(backup.stack.server) as client:
        result = client.run(["sha256sum", "--", *paths], sudo=True, check=False, timeout=_timeout())
    found = parse_checksums(result.stdout)
    for name in RESTORED_FILES:
        if name not in found:
            raise StepFailed(f"{name} is missing from {backup.folder} on the server.")
        if found[name] != recorded.get(name):
            raise StepFailed(
                f"{name} in {backup.folder} is not the file the backup made: its checksum "
                "differs. Nothing was changed."
            )
        ctx.log(f"{name}: sha256 {found[name]} as recorded")
    return "Every dump is as the backup made it."


def _app_services(stack: Stack) -> list[str]:
    return [name for name in _services(stack) if name in DATABASE_USERS]


def _compose_app_services(ctx: StepContext, verb: str) -> list[str]:
    """`compose stop` or `compose start` FastGPT and One API; the databases keep running."""
    stack = backup_of(ctx).stack
    services = _app_services(stack)
    with open_session(stack.server) as client:
        client.run(
            [*compose_argv(client, stack, server_facts(client)), verb, *services],
            sudo=True,
            timeout=600,
            on_output=ctx.log,
        )
    return services


def stop_services(ctx: StepContext) -> str:
    services = _compose_app_services(ctx, "stop")
    Stack.objects.filter(pk=backup_of(ctx).stack_id).update(status=StackStatus.DEGRADED)
    return f"Stopped {', '.join(services)}; the databases run on."


def _restore(ctx: StepContext, database: Database, argv) -> str:
    backup = backup_of(ctx)
    password = stack_secrets(backup.stack)[database.secret]
    dump = f"{backup.folder}/{database.file}"
    with open_session(backup.stack.server) as client:
        container = _container(client, backup, database.service, database.label)
        client.run(
            ["sh", "-c", READ_SCRIPT, "read-input", dump, *argv(container)],
            sudo=True,
            env={database.password_variable: password},
            timeout=_timeout(),
            on_output=ctx.log,
        )
    return f"{database.label} restored from {database.file}."


def _container(client: SSHClient, backup: StackBackup, service: str, label: str) -> str:
    container = service_container(client, backup.stack, service)
    if not container:
        raise StepFailed(f"The stack has no {label} container ({service}) on its server.")
    return container


def restore_postgres(ctx: StepContext) -> str:
    return _restore(ctx, POSTGRES, postgres_restore_argv)


def restore_mysql(ctx: StepContext) -> str:
    return _restore(ctx, MYSQL, mysql_restore_argv)


def restore_mongo(ctx: StepContext) -> str:
    return _restore(ctx, MONGO, mongo_restore_argv)


def start_services(ctx: StepContext) -> str:
    services = _compose_app_services(ctx, "start")
    return f"Started {', '.join(services)}."


def wait_until_healthy(ctx: StepContext) -> str:
    stack = backup_of(ctx).stack
    return wait_for_health(ctx, stack, _services(stack))


def record_restore(ctx: StepContext) -> str:
    backup = backup_of(ctx)
    Stack.objects.filter(pk=backup.stack_id).update(
        status=StackStatus.RUNNING, updated_at=timezone.now()
    )
    return f"The stack runs on the data of the backup of {backup.created_at:%Y-%m-%d %H:%M} UTC."


RESTORE = register(
    Pipeline(
        kind=PipelineKind.STACK_RESTORE,
        steps=(
            ("check backup", check_backup),
            ("stop services", stop_services),
            ("restore PostgreSQL", restore_postgres),
            ("restore MySQL", restore_mysql),
            ("restore MongoDB", restore_mongo),
            ("start services", start_services),
            ("wait until healthy", wait_until_healthy),
            ("record", record_restore),
        ),
    )
)
