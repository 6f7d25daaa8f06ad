"""Backups of a stack: the exact commands the backup and restore runs send (with a recording SSH
client in place of a server), what a backup records, which old backups it removes, who may
start, download and restore one, and the download streamed in chunks. The PostgreSQL and MySQL
round trips on the real databases are in test_stack_backups_real.py; MongoDB has a stand-in
image only, so its dump and restore are tested here by the commands sent. An upgrade
backs the data up first, as a step of its own run, sending the same commands."""

import asyncio
import datetime
import re
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from deployments import tasks
from deployments.actions import ActionError
from deployments.actions import backups as backup_actions
from deployments.actions.backups import (
    do_backup_stack,
    do_open_download,
    do_restore_backup,
    read_in_thread,
)
from deployments.actions.stacks import do_deploy_stack
from deployments.choices import DeploymentAction, PipelineKind, RunStatus, StackStatus
from deployments.models import (
    AuditEvent,
    BackupStatus,
    Deployment,
    StackBackup,
    StackBackupSettings,
)
from deployments.pipelines import runner, stack_backup, stack_restore
from deployments.pipelines.stack_backup import (
    BACKUP_FILES,
    MONGODUMP_SCRIPT,
    WRITE_SCRIPT,
    claim_scheduled_backups,
)
from deployments.pipelines.stack_deploy import DEPLOY, back_up_before_upgrade
from deployments.pipelines.stack_restore import MONGORESTORE_SCRIPT, READ_SCRIPT
from deployments.pipelines.steps import StepContext, StepFailed
from deployments.stacks import versions
from deployments.stacks.render import render
from deployments.stacks.secrets import stack_secrets
from testkit.factories import make_deployment, make_run, make_server, make_stack

pytestmark = pytest.mark.django_db

WORKER = "test-worker:1"
DATA_DIR = "/srv/llm"


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    exit_status: int = 0


@dataclass
class RecordingClient:
    """Records every command with its sudo and env; answers `stat` and `sha256sum` for the
    files they name, as a server with the backup's files would."""

    calls: list[dict] = field(default_factory=list)

    def run(self, argv, *, sudo=False, env=None, timeout=None, check=True, **options):
        argv = list(argv)
        self.calls.append({"argv": argv, "sudo": sudo, "env": dict(env or {})})
        paths = argv[argv.index("--") + 1 :] if "--" in argv else []
        if argv[0] == "stat":
            return Result("".join(f"{100 + i} {path}\n" for i, path in enumerate(paths)))
        if argv[0] == "sha256sum":
            return Result("".join(f"{str(i) * 64}  {path}\n" for i, path in enumerate(paths)))
        return Result()

    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def close(self):
        pass


@pytest.fixture
def server_ssh(monkeypatch):
    recording = RecordingClient()
    monkeypatch.setattr(stack_backup, "open_session", lambda server: recording)
    monkeypatch.setattr(
        stack_backup, "service_container", lambda ssh, stack, service: f"proj-{service}-1"
    )
    return recording


@pytest.fixture
def stack(team):
    stack = make_stack(make_server(team), data_dir=DATA_DIR, status=StackStatus.RUNNING)
    stack.rendered_files = render(stack, stack_secrets(stack)).shown()
    stack.save()
    return stack


def back_up(stack, user) -> StackBackup:
    backup = do_backup_stack(stack, user=user)
    runner.run(backup.run_id, WORKER)
    backup.refresh_from_db()
    backup.run.refresh_from_db()
    return backup


def test_a_backup_dumps_each_database_in_its_container_and_records_sizes_and_checksums(
    stack, operator, server_ssh, queued
):
    backup = back_up(stack, operator)

    assert backup.run.status == RunStatus.SUCCEEDED, backup.run.error
    assert queued == [backup.run_id]
    folder = backup.folder
    assert folder.startswith(f"{DATA_DIR}/backups/") and folder.endswith(f"-{backup.pk}")
    secrets = stack_secrets(stack)
    write = ["sh", "-c", WRITE_SCRIPT, "write-output"]
    assert server_ssh.argvs() == [
        ["mkdir", "-p", "-m", "700", "--", folder],
        [
            *write,
            f"{folder}/postgres.dump",
            *("docker", "exec", "-e", "PGPASSWORD", "proj-pg-1"),
            *("pg_dump", "-Fc", "--username", "fastgpt", "--dbname", "postgres"),
        ],
        [
            *write,
            f"{folder}/mysql.sql",
            *("docker", "exec", "-e", "MYSQL_PWD", "proj-mysql-1", "mysqldump", "--user=root"),
            *("--single-transaction", "--routines", "--triggers", "--databases", "oneapi"),
        ],
        [
            *write,
            f"{folder}/mongo.archive.gz",
            *("docker", "exec", "-e", "MONGO_PASSWORD", "proj-mongo-1"),
            *("sh", "-c", MONGODUMP_SCRIPT, "mongodump", "fastgpt"),
        ],
        [
            *write,
            f"{folder}/files.tar.gz",
            *("tar", "-czf", "-", "-C", DATA_DIR, "--"),
            *("docker-compose.yml", ".env", "config.json"),
        ],
        ["stat", "-c", "%s %n", "--", *(f"{folder}/{name}" for name in BACKUP_FILES)],
        ["sha256sum", "--", *(f"{folder}/{name}" for name in BACKUP_FILES)],
    ]
    # Every command as root; the passwords only in the environment, by name.
    assert all(call["sudo"] for call in server_ssh.calls)
    envs = [call["env"] for call in server_ssh.calls[1:4]]
    assert envs == [
        {"PGPASSWORD": secrets["PG_PASSWORD"]},
        {"MYSQL_PWD": secrets["MYSQL_ROOT_PASSWORD"]},
        {"MONGO_PASSWORD": secrets["MONGO_PASSWORD"]},
    ]
    # mongodump's password comes from the container's environment, never the command line.
    assert '--password "$MONGO_PASSWORD"' in MONGODUMP_SCRIPT
    sent = repr(server_ssh.argvs())
    output = "\n".join(step.output + step.error for step in backup.run.steps.all())
    for name in ("PG_PASSWORD", "MYSQL_ROOT_PASSWORD", "MONGO_PASSWORD"):
        assert secrets[name] not in sent
        assert secrets[name] not in output
    assert backup.status == BackupStatus.SUCCEEDED
    assert backup.files == [
        {"name": name, "size": 100 + i, "sha256": str(i) * 64}
        for i, name in enumerate(BACKUP_FILES)
    ]
    assert backup.total_size == 100 + 101 + 102 + 103
    assert backup.duration_seconds is not None
    assert backup.run.title == f"Back up stack {stack.name} on {stack.server.name}"


def test_the_output_file_script_takes_the_file_and_command_as_arguments_only():
    # A fixed script: paths and names reach it as "$1" and "$@", never pasted into it.
    assert WRITE_SCRIPT.startswith('out="$1"; shift;')
    assert '"$@" > "$out.partial"' in WRITE_SCRIPT
    assert "{" not in WRITE_SCRIPT and "{" not in MONGODUMP_SCRIPT


def test_a_failed_dump_fails_the_backup_and_names_the_missing_container(
    stack, operator, server_ssh, queued, monkeypatch
):
    monkeypatch.setattr(
        stack_backup,
        "service_container",
        lambda ssh, stack, service: None if service == "mysql" else f"proj-{service}-1",
    )
    backup = back_up(stack, operator)
    assert backup.run.status == RunStatus.FAILED
    assert "no MySQL container" in backup.run.error
    assert backup.current_status == BackupStatus.FAILED
    assert not backup.downloadable


def old_backup(stack, days: int, status=BackupStatus.SUCCEEDED) -> StackBackup:
    backup = StackBackup.objects.create(
        team=stack.team, stack=stack, status=status, folder=f"{DATA_DIR}/backups/old-{days}"
    )
    created = timezone.now() - datetime.timedelta(days=days)
    StackBackup.objects.filter(pk=backup.pk).update(created_at=created)
    return backup


def test_the_newest_backups_are_kept_and_older_ones_removed_from_the_server(
    stack, operator, server_ssh, queued
):
    StackBackupSettings.objects.create(stack=stack, keep_last=2)
    newest_old = old_backup(stack, 1)
    older = old_backup(stack, 2)
    oldest = old_backup(stack, 3)
    failed_before_kept = old_backup(stack, 4, status=BackupStatus.FAILED)
    stray = StackBackup.objects.create(
        team=stack.team, stack=stack, status=BackupStatus.SUCCEEDED, folder="/etc"
    )
    StackBackup.objects.filter(pk=stray.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=9)
    )

    backup = back_up(stack, operator)

    assert backup.run.status == RunStatus.SUCCEEDED, backup.run.error
    removed = [argv[-1] for argv in server_ssh.argvs() if argv[0] == "rm"]
    assert removed == [older.folder, oldest.folder, failed_before_kept.folder]
    assert all(argv[:3] == ["rm", "-rf", "--"] for argv in server_ssh.argvs() if argv[0] == "rm")
    # A folder outside the stack's backups is never deleted, whatever its row says.
    assert "/etc" not in removed
    gone = set(StackBackup.objects.filter(removed_at__isnull=False).values_list("pk", flat=True))
    assert gone == {older.pk, oldest.pk, failed_before_kept.pk, stray.pk}
    newest_old.refresh_from_db()
    assert newest_old.removed_at is None and newest_old.downloadable


def test_seven_backups_are_kept_by_default(stack):
    backups = [old_backup(stack, days) for days in range(1, 10)]
    current = StackBackup.objects.create(team=stack.team, stack=stack, folder="x")
    removed = stack_backup.backups_to_remove(current, 7)
    assert removed == backups[6:]


def test_a_viewer_cannot_back_up_and_nothing_starts(stack, viewer, queued):
    with pytest.raises(PermissionDenied):
        do_backup_stack(stack, user=viewer)
    assert StackBackup.objects.count() == 0 and queued == []


def test_a_stack_never_deployed_has_nothing_to_back_up(team, operator, queued):
    stack = make_stack(make_server(team))
    with pytest.raises(ActionError, match="not deployed"):
        do_backup_stack(stack, user=operator)


def test_one_backup_at_a_time_and_no_deploy_during_it(stack, operator, queued):
    do_backup_stack(stack, user=operator)
    with pytest.raises(ActionError, match="under way"):
        do_backup_stack(stack, user=operator)
    with pytest.raises(ActionError, match="Another action on this stack is under way"):
        do_deploy_stack(stack, user=operator)


def test_backups_and_restores_are_in_the_shared_history_with_their_runs(
    client, stack, operator, viewer, server_ssh, queued
):
    backup = back_up(stack, operator)
    run = do_restore_backup(backup, confirm_name=backup.stack.name, user=operator)

    history = Deployment.objects.filter(stack=backup.stack).order_by("pk")
    assert [(d.action, d.run_id, d.user) for d in history] == [
        (DeploymentAction.BACKUP, backup.run_id, operator),
        (DeploymentAction.RESTORE, run.pk, operator),
    ]
    client.force_login(viewer)
    page = client.get(reverse("deployment_list")).content.decode()
    assert "Back up" in page and "Restore" in page
    restore = history.last()
    detail = client.get(reverse("deployment_detail", args=[restore.pk])).content.decode()
    assert reverse("stack_backups", args=[backup.stack_id]) in detail
    assert "Files changed" not in detail


def test_no_backup_while_another_action_runs(stack, operator, queued):
    make_deployment(stack, user=operator, status=RunStatus.RUNNING)
    with pytest.raises(ActionError, match="Another action"):
        do_backup_stack(stack, user=operator)


def test_the_schedule_starts_a_due_backup_once_a_day(stack, queued):
    now = timezone.now().replace(hour=3)
    StackBackupSettings.objects.create(stack=stack, schedule_enabled=True, schedule_hour=3)
    off = make_stack(make_server(stack.team), data_dir="/srv/other")
    StackBackupSettings.objects.create(stack=off, schedule_enabled=False, schedule_hour=3)

    assert [due.pk for due in claim_scheduled_backups(now)] == [stack.pk]
    assert claim_scheduled_backups(now) == []
    assert claim_scheduled_backups(now.replace(hour=4)) == []


def test_the_beat_task_starts_the_scheduled_backups(stack, queued, monkeypatch):
    at_three = timezone.now().replace(hour=3)
    monkeypatch.setattr(stack_backup, "timezone", SimpleNamespace(now=lambda: at_three))
    StackBackupSettings.objects.create(stack=stack, schedule_enabled=True, schedule_hour=3)
    assert tasks.start_scheduled_backups() == 1
    backup = StackBackup.objects.get()
    assert queued == [backup.run_id] and backup.created_by is None
    assert AuditEvent.objects.filter(action="stack.backup", details__scheduled=True).exists()
    assert tasks.start_scheduled_backups() == 0


# --- pages and downloads -----------------------------------------------------------------


@dataclass
class FakeStream:
    """A `tar` on the server: its output in the chunks given, then the end."""

    chunks: list[bytes]
    closed: bool = False
    reads: int = 0

    def read(self, timeout=None):
        self.reads += 1
        return (self.chunks.pop(0) if self.chunks else b""), b""

    @property
    def finished(self) -> bool:
        return not self.chunks

    def close(self):
        self.closed = True


@dataclass
class StreamingClient:
    stream_argv: list = field(default_factory=list)
    stream_sudo: bool = False
    closed: bool = False
    opened: FakeStream | None = None

    def stream(self, argv, *, sudo=False, stdin_open=True):
        self.stream_argv, self.stream_sudo = list(argv), sudo
        self.opened = FakeStream([b"a" * 10, b"b" * 10, b"c" * 5])
        return self.opened

    def close(self):
        self.closed = True


@pytest.fixture
def downloadable(stack):
    return StackBackup.objects.create(
        team=stack.team,
        stack=stack,
        status=BackupStatus.SUCCEEDED,
        folder=f"{DATA_DIR}/backups/20261206-060000-1",
        files=[{"name": name, "size": 1, "sha256": "f" * 64} for name in BACKUP_FILES],
        total_size=4,
        duration_seconds=3.2,
    )


@pytest.fixture
def ssh(monkeypatch):
    client = StreamingClient()
    monkeypatch.setattr(backup_actions, "open_session", lambda server: client)
    return client


def test_the_download_streams_the_backup_from_the_server_in_chunks(
    client_logged_in_as, operator, downloadable, ssh
):
    http = client_logged_in_as(operator)
    response = http.post(reverse("stack_backup_download", args=[downloadable.pk]))

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-tar"
    assert "attachment;" in response["Content-Disposition"]
    chunks = list(response.streaming_content)
    # Each chunk as the server sent it: nothing gathered whole first.
    assert chunks == [b"a" * 10, b"b" * 10, b"c" * 5]
    assert ssh.stream_argv == [
        *("tar", "-cf", "-", "-C", downloadable.folder, "--"),
        *BACKUP_FILES,
    ]
    assert ssh.stream_sudo
    assert ssh.opened.closed and ssh.closed
    assert AuditEvent.objects.filter(action="stack.backup_download").count() == 1


def test_the_download_reads_the_next_chunk_only_when_the_response_asks(operator, downloadable, ssh):
    chunks = do_open_download(downloadable, user=operator)
    assert ssh.opened.reads == 0
    assert next(chunks) == b"a" * 10
    assert ssh.opened.reads == 1


def test_under_asgi_the_download_reads_each_chunk_in_a_thread_as_it_is_sent(
    operator, downloadable, ssh
):
    # Under ASGI, as the panel is served, Django reads a plain iterator whole before the first byte.
    chunks = read_in_thread(do_open_download(downloadable, user=operator))

    async def first_then_close():
        first = await anext(chunks)
        reads = ssh.opened.reads
        await chunks.aclose()
        return first, reads

    first, reads = asyncio.run(first_then_close())
    assert (first, reads) == (b"a" * 10, 1)
    # A download stopped early closes the command's channel and the session.
    assert ssh.opened.closed and ssh.closed


def test_a_viewer_sees_the_list_but_cannot_back_up_or_download(
    client_logged_in_as, viewer, stack, downloadable, ssh, queued
):
    http = client_logged_in_as(viewer)
    page = http.get(reverse("stack_backups", args=[stack.pk]))
    assert page.status_code == 200
    assert downloadable.checksum_short.encode() in page.content
    assert b"Back up now" not in page.content and b"Download" not in page.content

    assert http.post(reverse("stack_backup_start", args=[stack.pk])).status_code == 403
    assert http.post(reverse("stack_backup_download", args=[downloadable.pk])).status_code == 403
    assert ssh.opened is None and queued == []


def test_another_team_gets_404_for_the_backups(
    client_logged_in_as, other_team, stack, downloadable
):
    from testkit.factories import add_member

    outsider = add_member(other_team, _user("beta"), role="owner")
    http = client_logged_in_as(outsider)
    assert http.get(reverse("stack_backups", args=[stack.pk])).status_code == 404
    assert http.post(reverse("stack_backup_start", args=[stack.pk])).status_code == 404
    assert http.post(reverse("stack_backup_download", args=[downloadable.pk])).status_code == 404


def test_an_operator_backs_up_from_the_page_and_follows_the_run(
    client_logged_in_as, operator, stack, queued
):
    http = client_logged_in_as(operator)
    page = http.get(reverse("stack_backups", args=[stack.pk]))
    assert b"Back up now" in page.content
    response = http.post(reverse("stack_backup_start", args=[stack.pk]))
    backup = StackBackup.objects.get()
    assert response.url == reverse("run_detail", args=[backup.run_id])
    assert queued == [backup.run_id]


def test_an_operator_sets_how_many_backups_are_kept_and_the_schedule(
    client_logged_in_as, operator, stack
):
    http = client_logged_in_as(operator)
    http.post(
        reverse("stack_backup_settings", args=[stack.pk]),
        {"keep_last": "3", "schedule_enabled": "on", "schedule_hour": "4"},
    )
    saved = StackBackupSettings.objects.get(stack=stack)
    assert (saved.keep_last, saved.schedule_enabled, saved.schedule_hour) == (3, True, 4)
    http.post(
        reverse("stack_backup_settings", args=[stack.pk]),
        {"keep_last": "0", "schedule_hour": "4"},
    )
    saved.refresh_from_db()
    assert saved.keep_last == 3


def _user(name):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create(username=name)


@pytest.fixture
def client_logged_in_as(client):
    def log_in(user):
        client.force_login(user)
        return client

    return log_in


# --- restore -------------------------------------------------------------------------------


@pytest.fixture
def restore_ssh(server_ssh, monkeypatch):
    """The recording client for the restore run, with compose's command line fixed and the
    health wait answered at once (both are tested with the deploy)."""
    monkeypatch.setattr(stack_restore, "open_session", lambda server: server_ssh)
    monkeypatch.setattr(
        stack_restore, "service_container", lambda ssh, stack, service: f"proj-{service}-1"
    )
    monkeypatch.setattr(stack_restore, "server_facts", lambda ssh: {})
    monkeypatch.setattr(
        stack_restore, "compose_argv", lambda ssh, stack, facts: ["docker", "compose", "-p", "p"]
    )
    healthy = []
    monkeypatch.setattr(
        stack_restore,
        "wait_for_health",
        lambda ctx, stack, services: healthy.append(services) or "healthy",
    )
    server_ssh.healthy = healthy
    return server_ssh


@pytest.fixture
def made(stack):
    """A backup whose files' checksums are what the recording client reports for them."""
    return StackBackup.objects.create(
        team=stack.team,
        stack=stack,
        status=BackupStatus.SUCCEEDED,
        folder=f"{DATA_DIR}/backups/20261206-060000-1",
        files=[
            {"name": name, "size": 1, "sha256": str(i) * 64} for i, name in enumerate(BACKUP_FILES)
        ],
    )


def restore(made, user, name=None):
    run = do_restore_backup(made, confirm_name=name or made.stack.name, user=user)
    runner.run(run.pk, WORKER)
    run.refresh_from_db()
    return run


def test_a_restore_stops_the_services_restores_each_database_and_starts_them_again(
    made, operator, restore_ssh, queued
):
    run = restore(made, operator)

    assert run.status == RunStatus.SUCCEEDED, run.error
    folder = made.folder
    read = ["sh", "-c", READ_SCRIPT, "read-input"]
    apps = ["fastgpt", "oneapi"]
    assert restore_ssh.argvs() == [
        ["sha256sum", "--", *(f"{folder}/{name}" for name in BACKUP_FILES[:3])],
        ["docker", "compose", "-p", "p", "stop", *apps],
        [
            *read,
            f"{folder}/postgres.dump",
            *("docker", "exec", "-i", "-e", "PGPASSWORD", "proj-pg-1", "pg_restore"),
            *("--clean", "--if-exists", "--username", "fastgpt", "--dbname", "postgres"),
        ],
        [
            *read,
            f"{folder}/mysql.sql",
            *("docker", "exec", "-i", "-e", "MYSQL_PWD", "proj-mysql-1", "mysql", "--user=root"),
        ],
        [
            *read,
            f"{folder}/mongo.archive.gz",
            *("docker", "exec", "-i", "-e", "MONGO_PASSWORD", "proj-mongo-1"),
            *("sh", "-c", MONGORESTORE_SCRIPT, "mongorestore", "fastgpt"),
        ],
        ["docker", "compose", "-p", "p", "start", *apps],
    ]
    secrets = stack_secrets(made.stack)
    assert [call["env"] for call in restore_ssh.calls[2:5]] == [
        {"PGPASSWORD": secrets["PG_PASSWORD"]},
        {"MYSQL_PWD": secrets["MYSQL_ROOT_PASSWORD"]},
        {"MONGO_PASSWORD": secrets["MONGO_PASSWORD"]},
    ]
    assert "--drop" in MONGORESTORE_SCRIPT and '"$MONGO_PASSWORD"' in MONGORESTORE_SCRIPT
    assert restore_ssh.healthy and set(restore_ssh.healthy[0]) >= {"pg", "mysql", "fastgpt"}
    made.stack.refresh_from_db()
    assert made.stack.status == StackStatus.RUNNING
    assert run.title == f"Restore a backup of stack {made.stack.name} on {made.stack.server.name}"


def test_a_dump_whose_checksum_differs_is_not_restored_and_nothing_is_stopped(
    made, operator, restore_ssh, queued
):
    made.files[1]["sha256"] = "e" * 64
    made.save()
    run = restore(made, operator)
    assert run.status == RunStatus.FAILED
    assert "mysql.sql" in run.error and "checksum differs" in run.error
    assert [argv[0] for argv in restore_ssh.argvs()] == ["sha256sum"]


def test_a_restore_waits_for_a_model_launch_on_the_stack(made, operator, queued):
    make_run(
        made.team,
        status=RunStatus.RUNNING,
        kind=PipelineKind.MODEL_LAUNCH,
        params={"stack_id": made.stack_id},
    )
    with pytest.raises(ActionError, match="model launch"):
        do_restore_backup(made, confirm_name=made.stack.name, user=operator)
    assert queued == []


def test_a_restore_needs_the_stack_name_typed_and_an_operator(made, operator, viewer, queued):
    with pytest.raises(ValidationError):
        do_restore_backup(made, confirm_name="not-it", user=operator)
    with pytest.raises(PermissionDenied):
        do_restore_backup(made, confirm_name=made.stack.name, user=viewer)
    assert queued == []


def test_the_restore_page_asks_for_the_name_then_starts_the_run(
    client_logged_in_as, operator, made, queued
):
    http = client_logged_in_as(operator)
    path = reverse("stack_backup_restore", args=[made.pk])
    assert b'name="confirm_name"' in http.get(path).content
    assert http.post(path, {"confirm_name": "wrong"}).status_code == 200
    assert queued == []
    response = http.post(path, {"confirm_name": made.stack.name})
    assert queued and response.url == reverse("run_detail", args=[queued[0]])


def test_the_stack_page_offers_back_up_now_to_operators_and_the_backups_page_to_all(
    client_logged_in_as, operator, viewer, stack
):
    start = reverse("stack_backup_start", args=[stack.pk]).encode()
    listing = reverse("stack_backups", args=[stack.pk]).encode()
    as_operator = client_logged_in_as(operator).get(reverse("stack_detail", args=[stack.pk]))
    assert start in as_operator.content and listing in as_operator.content
    as_viewer = client_logged_in_as(viewer).get(reverse("stack_detail", args=[stack.pk]))
    assert start not in as_viewer.content and listing in as_viewer.content


# An upgrade backs up first: a step of the upgrade's own run.


def upgrade_step(stack, user, action=DeploymentAction.UPGRADE) -> StepContext:
    deployment = make_deployment(stack, user=user, status=RunStatus.RUNNING, action=action)
    deployment.run.claimed_by = "test:1"
    deployment.run.save(update_fields=["claimed_by"])
    names = [step.name for step in DEPLOY.steps]
    index = names.index("back up before upgrade")
    return StepContext(run=deployment.run, index=index, name=names[index], worker="test:1")


def test_the_backup_comes_after_the_pulls_and_before_the_services_start():
    names = [step.name for step in DEPLOY.steps]
    assert names.index("pull images") < names.index("back up before upgrade")
    assert names.index("back up before upgrade") + 1 == names.index("start services")


def test_an_upgrade_dumps_every_database_and_records_a_backup_tied_to_its_run(
    stack, operator, server_ssh
):
    ctx = upgrade_step(stack, operator)

    message = back_up_before_upgrade(ctx)

    backup = StackBackup.objects.get()
    assert backup.run_id == ctx.run.pk and backup.stack == stack
    assert backup.status == BackupStatus.SUCCEEDED and backup.downloadable
    assert [entry["name"] for entry in backup.files] == [
        "postgres.dump",
        "mysql.sql",
        "mongo.archive.gz",
        "files.tar.gz",
    ]
    assert backup.folder in message
    sent = [" ".join(argv) for argv in server_ssh.argvs()]
    assert any("pg_dump" in line for line in sent)
    assert any("mysqldump" in line for line in sent)
    assert any("mongodump" in line for line in sent)
    assert any(line.startswith(f"mkdir -p -m 700 -- {backup.folder}") for line in sent)
    # Each backup step's outcome is in the run's output.
    assert any(line.startswith("record checksums: 4 files") for line in ctx.lines)
    event = AuditEvent.objects.get(action="stack.backup")
    assert event.details["before_upgrade"] is True and event.details["run"] == ctx.run.pk


def test_a_retried_step_backs_up_again_into_the_same_folder(stack, operator, server_ssh):
    ctx = upgrade_step(stack, operator)
    back_up_before_upgrade(ctx)
    first = StackBackup.objects.get()

    back_up_before_upgrade(ctx)

    assert StackBackup.objects.get().folder == first.folder
    folders = [argv[-1] for argv in server_ssh.argvs() if argv[0] == "mkdir"]
    assert folders == [first.folder, first.folder]


def test_a_failed_dump_fails_the_step_before_anything_changed(
    stack, operator, server_ssh, monkeypatch
):
    monkeypatch.setattr(
        stack_backup,
        "service_container",
        lambda ssh, stack, service: None if service == "mongo" else f"proj-{service}-1",
    )
    ctx = upgrade_step(stack, operator)

    with pytest.raises(StepFailed, match="no MongoDB container"):
        back_up_before_upgrade(ctx)

    sent = [argv[0] for argv in server_ssh.argvs()]
    assert "docker-compose" not in sent and "rm" not in sent
    assert StackBackup.objects.get().status == BackupStatus.RUNNING
    ctx.run.status = RunStatus.FAILED
    ctx.run.save(update_fields=["status"])
    assert StackBackup.objects.get().current_status == BackupStatus.FAILED


@pytest.mark.parametrize("action", [DeploymentAction.DEPLOY, DeploymentAction.ROLLBACK])
def test_a_deploy_or_a_rollback_backs_nothing_up(stack, operator, server_ssh, action):
    ctx = upgrade_step(stack, operator, action=action)

    assert "nothing to back up" in back_up_before_upgrade(ctx)
    assert server_ssh.argvs() == [] and not StackBackup.objects.exists()


def test_a_stack_set_not_to_back_up_before_upgrades_is_upgraded_without(
    stack, operator, server_ssh
):
    StackBackupSettings.objects.create(stack=stack, before_upgrade=False)
    ctx = upgrade_step(stack, operator)

    assert "set not to back up" in back_up_before_upgrade(ctx)
    assert server_ssh.argvs() == [] and not StackBackup.objects.exists()


def test_the_upgrade_page_says_whether_the_data_is_backed_up_first(
    client, stack, operator, monkeypatch
):
    line = versions.LINES[versions.DEFAULT_LINE]
    monkeypatch.setitem(
        versions.LINES, "next", versions.VersionLine(key="next", label="Next", images=line.images)
    )
    client.force_login(operator)
    url = reverse("stack_upgrade", args=[stack.pk])
    other = "next"

    page = client.get(url, {"version_line": other}).content.decode()
    assert "The upgrade first backs up the databases" in page

    StackBackupSettings.objects.create(stack=stack, before_upgrade=False)
    page = client.get(url, {"version_line": other}).content.decode()
    assert "set not to back up before an upgrade" in page


def test_an_operator_turns_the_backup_before_upgrades_off_on_the_backups_page(
    client, stack, operator
):
    client.force_login(operator)
    response = client.post(
        reverse("stack_backup_settings", args=[stack.pk]),
        {"keep_last": "7", "schedule_hour": "3"},
    )
    assert response.status_code == 302
    assert StackBackupSettings.objects.get(stack=stack).before_upgrade is False
    page = client.get(reverse("stack_backups", args=[stack.pk])).content.decode()
    checkbox = re.search(r'<input type="checkbox" name="before_upgrade"[^>]*>', page).group(0)
    assert "checked" not in checkbox


def test_a_viewer_reads_whether_upgrades_back_up_first(client, stack, viewer):
    client.force_login(viewer)
    url = reverse("stack_backups", args=[stack.pk])
    assert "An upgrade backs the data up first." in client.get(url).content.decode()
    StackBackupSettings.objects.create(stack=stack, before_upgrade=False)
    assert "Upgrades do not back the data up first." in client.get(url).content.decode()
