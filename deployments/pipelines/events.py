"""The append-only event log of a run, mirrored to the channel layer for live viewers."""

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.db.models import Max

from ..choices import EventKind, RunStatus
from ..models import PipelineEvent, PipelineRun
from ..notifications import notify

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "pipeline.event"
# A live view is a convenience: never let a slow channel layer hold up a step.
PUBLISH_TIMEOUT_SECONDS = 2
# Writers lock the run row first, so the unique (run, seq) constraint is only a backstop.
_SEQ_ATTEMPTS = 5


def group_name(run_id: int) -> str:
    return f"pipeline-run-{run_id}"


def record(
    run_id: int,
    kind: EventKind,
    *,
    status: RunStatus,
    message: str = "",
    step_index: int | None = None,
) -> PipelineEvent:
    """Append an event numbered max(seq)+1, and publish it once the transaction commits.

    `status` is the run's status as of this event, sent along so viewers need not ask.
    """
    for attempt in range(1, _SEQ_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                # Serializes the writers of one run on PostgreSQL (SQLite locks the whole
                # file). "No key": it must not wait on a transaction that inserted a step
                # row of this run, which holds a key-share lock on it.
                locked = PipelineRun.objects.select_for_update(no_key=True).filter(pk=run_id)
                list(locked.values_list("pk"))
                last = PipelineEvent.objects.filter(run_id=run_id).aggregate(last=Max("seq"))
                event = PipelineEvent.objects.create(
                    run_id=run_id,
                    seq=(last["last"] or 0) + 1,
                    kind=kind,
                    step_index=step_index,
                    message=message,
                )
            break
        except IntegrityError:
            if attempt == _SEQ_ATTEMPTS:
                raise
    payload = {
        "type": MESSAGE_TYPE,
        "run_id": run_id,
        "seq": event.seq,
        "kind": str(event.kind),
        "step_index": event.step_index,
        "message": event.message,
        "status": str(status),
    }
    transaction.on_commit(lambda: publish(run_id, payload))
    if kind == EventKind.RUN_FINISHED and status == RunStatus.FAILED:
        # Every way a run fails ends here: a step's error, a worker that died, no pipeline.
        notify.run_failed(run_id, message)
    return event


def publish(run_id: int, payload: dict) -> None:
    """Send to the run's group. A failure is logged: the event is in the database anyway."""
    try:
        async_to_sync(_group_send)(group_name(run_id), payload)
    except Exception:
        logger.warning(
            "Could not publish event %s of run %s", payload.get("seq"), run_id, exc_info=True
        )


async def _group_send(group: str, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await asyncio.wait_for(layer.group_send(group, payload), PUBLISH_TIMEOUT_SECONDS)
