"""The idle guard's periodic check of one server: read what the detection needs, decide, and
take the next step the team chose, one run at a time.

A server without an hourly price, or whose guard is off, is never touched. Nothing is read or
started while a run other than the guard's own is under way on the server or its stacks: a
run is someone at work, so the quiet time starts again after it.

Steps go in order (notify, stop models, stop stacks, power off), each a run; the next starts
at a later check once the one before has succeeded. The power-off waits for the grace period
first (state "power-off pending"), in which anyone of the team may press "Keep running". A
request or a busy GPU before the last step has run sets the guard back to watching.
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .. import audit
from ..choices import RunStatus
from ..clients.ssh import SSHError
from ..clients.xinference import XinferenceError
from ..errors import PanelError
from ..idle import notes, notices
from ..idle.detect import gpu_reading, observe, runs_under_way, untouched_reason, watched_stacks
from ..models import IdleGuard, IdleState, IdleStep, PipelineRun, Server, Stack
from ..stacks.xinference_access import xinference_client
from .idle_steps import STEP_KINDS

logger = logging.getLogger(__name__)

STOPPING_STEPS = (IdleStep.STOP_MODELS, IdleStep.STOP_STACKS, IdleStep.POWER_OFF)
GUARD_FIELDS = [
    "state",
    "quiet_since",
    "request_counts",
    "checked_at",
    "note",
    "steps_taken",
    "step_run",
    "power_off_at",
    "updated_at",
]


def read_request_counts(stacks: list[Stack]) -> dict[Stack, float | str]:
    """Each stack's model request counter, or the sentence saying why it could not be read."""
    counts: dict[Stack, float | str] = {}
    for stack in stacks:
        try:
            with xinference_client(stack) as client:
                counts[stack] = client.model_requests()
        except (XinferenceError, SSHError, PanelError) as error:
            counts[stack] = str(error)
    return counts


def start_step_run(guard: IdleGuard, kind: str) -> PipelineRun:
    """A queued run of one idle step; the caller sends it once this commits."""
    run = PipelineRun.objects.create(
        team=guard.server.team,
        kind=kind,
        params={"server_id": guard.server_id},
        heartbeat_at=timezone.now(),
    )
    audit.record("pipeline.start", actor=None, target=run, details={"kind": kind})
    return run


def _back_to_watching(guard: IdleGuard) -> None:
    guard.state = IdleState.WATCHING
    guard.steps_taken = []
    guard.power_off_at = None


def _advance(guard: IdleGuard, now: datetime) -> PipelineRun | None:
    """Start the next chosen step, or wait for the grace period; None when nothing started."""
    for step in guard.chosen_steps():
        if step in guard.steps_taken:
            continue
        if step == IdleStep.POWER_OFF:
            if guard.power_off_at is None:
                guard.power_off_at = now + timedelta(minutes=guard.grace_minutes)
                guard.state = IdleState.POWER_OFF_PENDING
                if guard.notify:
                    notices.idle_warning(guard)
                return None
            if now < guard.power_off_at:
                return None
        run = start_step_run(guard, STEP_KINDS[step])
        guard.step_run = run
        guard.steps_taken = [*guard.steps_taken, step]
        return run
    if any(step in guard.steps_taken for step in STOPPING_STEPS):
        guard.state = IdleState.STOPPED
    return None


def check(server: Server, now: datetime | None = None, read=read_request_counts) -> list[int]:
    """One check of `server`'s idle guard; the ids of the runs it queued (to send)."""
    now = now or timezone.now()
    with transaction.atomic():
        guard = (
            # Only the guard's row is locked: the step run may be missing (outer join).
            IdleGuard.objects.select_for_update(of=("self",))
            .select_related("server__team", "step_run")
            .filter(server=server)
            .first()
        )
        if guard is None:
            return []
        server = guard.server
        reason = untouched_reason(server, guard)
        if reason is not None:
            if guard.note != [notes.part(reason)]:
                guard.note = [notes.part(reason)]
                guard.save(update_fields=["note", "updated_at"])
            return []
        if guard.state == IdleState.STOPPED:
            return []
        step_run = guard.step_run
        if step_run is not None and not step_run.is_terminal:
            return []
        failed = step_run is not None and step_run.status != RunStatus.SUCCEEDED
        if failed and guard.state != IdleState.WATCHING:
            guard.note = [notes.about_run(notes.STEP_FAILED, step_run, error=step_run.error)]
            guard.save(update_fields=["note", "updated_at"])
            return []
        busy = runs_under_way(server).first()
        if busy is not None:
            guard.quiet_since = now
            guard.note = [notes.about_run(notes.RUN_UNDER_WAY, busy)]
            if guard.state in (IdleState.IDLE, IdleState.POWER_OFF_PENDING):
                _back_to_watching(guard)
            guard.save(update_fields=GUARD_FIELDS)
            return []
    # Reading goes over SSH and HTTP: outside the row lock.
    stacks = watched_stacks(guard)
    counts = read(stacks)
    gpu = gpu_reading(server, now - timedelta(minutes=guard.idle_minutes), now)
    queued = []
    with transaction.atomic():
        fresh = IdleGuard.objects.select_for_update().filter(pk=guard.pk).first()
        if fresh is None or fresh.updated_at != guard.updated_at:
            return []  # someone changed it meanwhile ("Keep running", the settings)
        finding = observe(guard, now, counts, gpu)
        if finding.activity and guard.state in (IdleState.IDLE, IdleState.POWER_OFF_PENDING):
            _back_to_watching(guard)
        elif finding.idle:
            if guard.state == IdleState.WATCHING:
                guard.state = IdleState.IDLE
                guard.steps_taken = []
            run = _advance(guard, now)
            if run is not None:
                queued.append(run.pk)
        guard.save(update_fields=GUARD_FIELDS)
    return queued


def keep_running(guard: IdleGuard, now: datetime | None = None) -> None:
    """Start the quiet time again and call off what is pending (the power-off)."""
    guard.quiet_since = now or timezone.now()
    guard.note = [notes.part(notes.KEPT_RUNNING)]
    _back_to_watching(guard)
    guard.save(
        update_fields=["quiet_since", "note", "state", "steps_taken", "power_off_at", "updated_at"]
    )
