"""Celery tasks: ids in, one call out. The logic lives in pipelines/ and servers/."""

import logging
import os
import socket

from celery import shared_task
from django.core.cache import cache

from .clients.ssh import SSHError
from .knowledge import retention, staging
from .models import Server, Stack
from .notifications import notify, sending
from .notifications.formats import Message
from .pipelines import idle_guard, reaper, runner, stack_backup
from .servers import gpu_history
from .servers.check import check_server
from .stacks.services import refresh_services

logger = logging.getLogger(__name__)


@shared_task(bind=True)
def run_pipeline(self, run_id: int) -> None:
    runner.run(run_id, worker=_worker_name(self.request.hostname))


@shared_task
def reap_stale_runs() -> int:
    reaper.requeue_lost_runs(send=run_pipeline.delay_on_commit)
    return reaper.reap_stale_runs()


@shared_task
def check_server_task(server_id: int) -> None:
    server = Server.objects.filter(pk=server_id).first()
    if server is not None:
        check_server(server)


def services_unread_key(stack_id: int) -> str:
    """Where why the last read of a stack's containers failed is kept, in the shared cache."""
    return f"stack-services-unread:{stack_id}"


@shared_task
def read_stack_services(stack_id: int, remember_seconds: int) -> None:
    """Read a stack's containers for its services table, which queues this when its rows are
    stale; why the read failed is kept that many seconds for the table to say, until a read
    succeeds."""
    stack = Stack.objects.select_related("server").filter(pk=stack_id).first()
    if stack is None:
        return
    try:
        refresh_services(stack)
    except SSHError as error:
        cache.set(services_unread_key(stack_id), str(error), remember_seconds)
    else:
        cache.delete(services_unread_key(stack_id))


@shared_task
def check_all_servers() -> int:
    """Fan out: one task per server, so the workers check many servers in parallel."""
    ids = list(Server.objects.values_list("pk", flat=True))
    for server_id in ids:
        check_server_task.delay(server_id)
    return len(ids)


@shared_task
def check_idle_server_task(server_id: int) -> None:
    server = Server.objects.filter(pk=server_id).first()
    if server is not None:
        for run_id in idle_guard.check(server):
            run_pipeline.delay_on_commit(run_id)


@shared_task
def check_idle_servers() -> int:
    """Fan out: one idle check per server whose guard is on (see pipelines/idle_guard.py)."""
    ids = list(
        Server.objects.filter(idle_guard__enabled=True, hourly_price__isnull=False).values_list(
            "pk", flat=True
        )
    )
    for server_id in ids:
        check_idle_server_task.delay(server_id)
    return len(ids)


@shared_task
def start_scheduled_backups() -> int:
    """Back up the stacks whose daily backup is due this hour, one a day each."""
    started = 0
    for stack in stack_backup.claim_scheduled_backups():
        try:
            backup = stack_backup.start_backup(stack)
        except stack_backup.BackupRefused as error:
            logger.warning("Scheduled backup of stack %s not started: %s", stack.pk, error)
            continue
        run_pipeline.delay_on_commit(backup.run_id)
        started += 1
    return started


@shared_task
def compact_gpu_history() -> int:
    """Fold old GPU readings into hourly ones and drop the oldest (see servers/gpu_history.py)."""
    return gpu_history.compact().folded


@shared_task
def sweep_staged_uploads() -> int:
    """Delete staged files nothing will import any more (see knowledge/retention.py)."""
    retention.expire_failed_copies()
    return len(staging.sweep(retention.kept_files()))


@shared_task(bind=True, name=notify.TASK_NAME)
def send_notification(self, channel_id: int, message: dict) -> None:
    """One notification to one channel; a failure that may pass is tried again later, each
    wait twice the last (sending.retry_countdown), a bounded number of times."""
    countdown = sending.attempt(channel_id, Message(**message), self.request.retries)
    if countdown is not None:
        raise self.retry(countdown=countdown, max_retries=sending.MAX_RETRIES)


def _worker_name(node: str | None) -> str:
    # Host and process: a prefork pool runs one task per child process.
    return f"{node or socket.gethostname()}:{os.getpid()}"[:200]
