"""Runs whose worker died: fail the stale running ones (or cancel them, when a cancel was
asked before the worker stopped), re-send the forgotten queued ones."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..choices import EventKind, RunStatus, StepStatus
from ..models import PipelineRun, StepRun
from . import events, registry

logger = logging.getLogger(__name__)


def reap_stale_runs(now: datetime | None = None, stale_after: float | None = None) -> int:
    """Fail RUNNING runs whose heartbeat is older than `stale_after` seconds; one whose
    cancel was asked before its worker stopped ends cancelled instead, as the worker would
    have ended it.

    Returns how many were ended. A run that beats between the read and the write is
    left alone: the update matches on the heartbeat that was read.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=_stale_after(stale_after))
    stale = PipelineRun.objects.filter(status=RunStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)
    )
    return sum(_reap(run, now) for run in stale)


def requeue_lost_runs(
    send: Callable[[int], object],
    now: datetime | None = None,
    stale_after: float | None = None,
) -> int:
    """Send again, with `send(run_id)`, the runs that have waited in QUEUED longer than
    `stale_after` seconds. `send` is called once the claim to re-send is committed.

    Their task message may have been lost (a broker restart). A duplicate is harmless:
    only one worker can claim a run. `heartbeat_at` of a queued run is when it was last
    sent, so each one is re-sent at most once per `stale_after`.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=_stale_after(stale_after))
    waiting = (
        PipelineRun.objects.filter(status=RunStatus.QUEUED)
        .annotate(sent_at=Coalesce("heartbeat_at", "created_at"))
        .filter(sent_at__lt=cutoff)
    )
    count = 0
    for run in waiting:
        with transaction.atomic():
            if PipelineRun.objects.filter(
                pk=run.pk, status=RunStatus.QUEUED, heartbeat_at=run.heartbeat_at
            ).update(heartbeat_at=now):
                send(run.pk)
                count += 1
    if count:
        logger.warning("Sent %s queued pipeline runs again", count)
    return count


def _stale_after(stale_after: float | None) -> float:
    return settings.PIPELINE_STALE_AFTER if stale_after is None else stale_after


def _reap(run: PipelineRun, now: datetime) -> bool:
    step = (
        StepRun.objects.filter(run=run, status=StepStatus.RUNNING)
        .order_by("-index", "-attempt")
        .first()
    )
    if run.cancel_requested:
        status = RunStatus.CANCELLED
        error = _cancelled_message(run, step)
        step_error = "Cancelled."
    else:
        status = RunStatus.FAILED
        error = _message(run, step)
        step_error = "The worker running this step stopped responding."
    with transaction.atomic():
        if not PipelineRun.objects.filter(
            pk=run.pk,
            status=RunStatus.RUNNING,
            heartbeat_at=run.heartbeat_at,
            cancel_requested=run.cancel_requested,
        ).update(status=status, error=error, finished_at=now):
            return False
        StepRun.objects.filter(run=run, status=StepStatus.RUNNING).update(
            status=StepStatus.FAILED, error=step_error, finished_at=now
        )
        events.record(
            run.pk,
            EventKind.RUN_FINISHED,
            status=status,
            step_index=step.index if step else None,
            message=error,
        )
    logger.warning(
        "Run %s %s: its worker %r stopped responding", run.pk, status.label.lower(), run.claimed_by
    )
    return True


def _cancelled_message(run: PipelineRun, step: StepRun | None) -> str:
    where = f"during step '{step.name}'" if step is not None else "between steps"
    return f"Cancelled {where}: the worker stopped after the cancel was asked{_since(run)}."


def _since(run: PipelineRun) -> str:
    if not run.heartbeat_at:
        return ""
    last = timezone.localtime(run.heartbeat_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    return f" (last heartbeat {last})"


def _message(run: PipelineRun, step: StepRun | None) -> str:
    since = _since(run)
    if step is not None:
        where = f"during step '{step.name}'"
    else:
        try:
            name = registry.get(run.kind).step_name(run.next_step)
        except registry.UnknownPipeline:
            name = None
        where = f"before step '{name}'" if name else "between steps"
    return (
        f"The worker running this stopped responding {where}{since}. "
        "Retry to resume from that step."
    )
