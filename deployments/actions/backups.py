"""Backups of a stack: start one now, change how many are kept and when, download one."""

import re
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from .. import access, audit
from ..choices import Role
from ..clients.ssh import SSHError
from ..models import Stack, StackBackup
from ..models.backups import backup_settings
from ..pipelines.stack_backup import BACKUP_FILES, BackupRefused, start_backup, start_restore
from ..servers.sessions import open_session
from ..tasks import run_pipeline
from . import ActionError

# How long a download waits for the server's next bytes before giving up.
DOWNLOAD_READ_TIMEOUT = 300
# What the backups page lets operators set.
SETTINGS_FIELDS = ("keep_last", "schedule_enabled", "schedule_hour", "before_upgrade")


def do_backup_stack(stack: Stack, *, user, request=None) -> StackBackup:
    """Back the stack up now: a run in the shared history. Operators may."""
    access.require_role(user, stack.team, Role.OPERATOR)
    try:
        backup = start_backup(stack, user=user, request=request)
    except BackupRefused as error:
        raise ActionError(str(error)) from None
    run_pipeline.delay_on_commit(backup.run_id)
    return backup


def do_restore_backup(backup: StackBackup, *, confirm_name: str, user, request=None):
    """Restore the backup into its stack, once the stack's name was typed. Operators may."""
    access.require_role(user, backup.team, Role.OPERATOR)
    stack = backup.stack
    if confirm_name != stack.name:
        raise ValidationError(
            {
                "confirm_name": _("Type the stack's name, “%(stack)s”, to restore this backup.")
                % {"stack": stack.name}
            }
        )
    if not backup.downloadable:
        raise ActionError(_("This backup is not on the server (any more): it cannot be restored."))
    try:
        run = start_restore(backup, user=user, request=request)
    except BackupRefused as error:
        raise ActionError(str(error)) from None
    run_pipeline.delay_on_commit(run.pk)
    return run


def do_save_backup_settings(stack: Stack, *, data: dict, user, request=None):
    """Keep the last N backups; back up every day at an hour (UTC) and before each upgrade.
    Operators may."""
    access.require_role(user, stack.team, Role.OPERATOR)
    current = backup_settings(stack)
    for name in SETTINGS_FIELDS:
        setattr(current, name, data[name])
    current.full_clean(exclude=["stack"])
    with transaction.atomic():
        current.save()
        audit.record(
            "stack.backup_settings",
            actor=user,
            request=request,
            target=stack,
            details={
                "keep_last": current.keep_last,
                "schedule": f"{current.schedule_hour:02d}:00" if current.schedule_enabled else "",
                "before_upgrade": current.before_upgrade,
            },
        )
    return current


def download_name(backup: StackBackup) -> str:
    """The download's file name: the stack's name in safe characters, and the backup's time."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", backup.stack.name).strip(".-") or "stack"
    return f"{name}-backup-{backup.created_at:%Y%m%d-%H%M%S}.tar"


def do_open_download(backup: StackBackup, *, user, request=None) -> Iterator[bytes]:
    """The backup's folder as a tar, streamed from the server in chunks as they come: never
    whole in memory. Owners and operators may; audited. The SSH session is open (and the tar
    started) before this returns, so an unreachable server is an ActionError, not a cut
    download."""
    access.require_role(user, backup.team, Role.OPERATOR)
    if not backup.downloadable:
        raise ActionError(_("This backup is not on the server (any more): nothing to download."))
    stack = backup.stack
    names = [entry["name"] for entry in backup.files if entry.get("name") in BACKUP_FILES]
    try:
        client = open_session(stack.server)
    except SSHError as error:
        raise ActionError(
            _("Could not reach %(server)s: %(error)s")
            % {"server": stack.server.name, "error": error}
        ) from error
    try:
        stream = client.stream(
            ["tar", "-cf", "-", "-C", backup.folder, "--", *names], sudo=True, stdin_open=False
        )
    except SSHError as error:
        client.close()
        raise ActionError(
            _("Could not read the backup from %(server)s: %(error)s")
            % {"server": stack.server.name, "error": error}
        ) from error
    audit.record(
        "stack.backup_download",
        actor=user,
        request=request,
        target=stack,
        details={"backup": backup.pk},
    )
    return _chunks(client, stream)


async def read_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` for an ASGI server, each read in a worker thread when the response asks for it:
    Django would read a plain iterator to its end before sending any of it there."""
    end = object()
    try:
        while True:
            chunk = await sync_to_async(next, thread_sensitive=False)(chunks, end)
            if chunk is end:
                break
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=False)()


def _chunks(client, stream) -> Iterator[bytes]:
    try:
        while True:
            data, errors = stream.read(timeout=DOWNLOAD_READ_TIMEOUT)
            if data:
                yield data
            elif stream.finished or not errors:
                # The end, or nothing for the whole wait: the download ends here.
                break
    finally:
        stream.close()
        client.close()
