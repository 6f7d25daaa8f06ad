"""Celery tasks: ids in, one call out. The logic lives in deployments.pipelines."""

import os
import socket

from celery import shared_task

from .pipelines import reaper, runner


@shared_task(bind=True)
def run_pipeline(self, run_id: int) -> None:
    runner.run(run_id, worker=_worker_name(self.request.hostname))


@shared_task
def reap_stale_runs() -> int:
    reaper.requeue_lost_runs()
    return reaper.reap_stale_runs()


def _worker_name(node: str | None) -> str:
    # Host and process: a prefork pool runs one task per child process.
    return f"{node or socket.gethostname()}:{os.getpid()}"[:200]
