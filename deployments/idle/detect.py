"""Whether a server is idle: no request reached its stacks' models, and its GPUs sat near zero,
for the idle time the team set.

Requests: each watched stack's Xinference counts the requests its API received for models
(XinferenceClient.model_requests, read from its /metrics). A count other than the one saved at
the last check means someone used a model since. GPUs: the history the server checks record
(GpuSample); where no reading falls in the idle time, the GPUs of the last check's facts.

Plain code on what was read: `observe` takes the counts and the GPU reading, so tests give it
both; pipelines/idle_guard.py reads them and takes the steps.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, Q, QuerySet

from ..choices import IDLE_RUN_KINDS, RunStatus, StackStatus
from ..models import (
    GpuSample,
    IdleGuard,
    KnowledgeBase,
    ModelLaunch,
    PipelineRun,
    Server,
    Stack,
)
from . import notes

# A GPU at or above this utilisation is in use.
IDLE_GPU_PERCENT = 5
# Stacks whose Xinference the guard reads: deployed and not stopped.
WATCHED_STACK_STATUSES = (StackStatus.RUNNING, StackStatus.DEGRADED)


@dataclass(frozen=True)
class GpuReading:
    """What the server's GPUs did in the idle window."""

    has_gpus: bool  # the server has GPUs at all (by its facts or its history)
    seen: bool  # at least one reading falls in the window
    busy_at: datetime | None  # the latest reading at or above IDLE_GPU_PERCENT in it


@dataclass(frozen=True)
class Finding:
    idle: bool
    # Someone used the server (a request, a busy GPU, a run): idle steps not yet finished stop.
    activity: bool
    note: notes.Note
    quiet_for: timedelta | None = None


def untouched_reason(server: Server, guard: IdleGuard | None) -> str | None:
    """Why the guard leaves `server` alone (a note's code), or None when it watches it."""
    if guard is None or not guard.enabled:
        return notes.OFF
    if server.hourly_price is None:
        return notes.NO_PRICE
    return None


def runs_under_way(server: Server) -> QuerySet:
    """Runs queued or running on the server or anything on it, but the guard's own."""
    stacks = list(server.stacks.values_list("pk", flat=True))
    bases = list(KnowledgeBase.objects.filter(stack__in=stacks).values_list("pk", flat=True))
    launches = list(ModelLaunch.objects.filter(stack__in=stacks).values_list("pk", flat=True))
    return (
        PipelineRun.objects.filter(
            team_id=server.team_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
        )
        .filter(
            Q(params__server_id=server.pk)
            | Q(params__stack_id__in=stacks)
            | Q(params__knowledge_base_id__in=bases)
            | Q(params__launch_id__in=launches)
        )
        .exclude(kind__in=IDLE_RUN_KINDS)
    )


def watched_stacks(guard: IdleGuard) -> list[Stack]:
    return list(
        guard.server.stacks.filter(status__in=WATCHED_STACK_STATUSES)
        .exclude(pk__in=guard.stopped_stacks or [])
        .order_by("pk")
    )


def gpu_reading(server: Server, since: datetime, now: datetime) -> GpuReading:
    """The server's GPUs from `since` to `now`: from the GPU history, or where it holds no
    reading in that time, from the GPUs of the last check's facts if it was in that time."""
    samples = GpuSample.objects.filter(server=server, at__gte=since, at__lte=now)
    found = samples.aggregate(
        latest=Max("at"),
        busy=Max("at", filter=Q(utilization_peak_percent__gte=IDLE_GPU_PERCENT)),
    )
    gpus = (server.facts or {}).get("gpus") or []
    has_gpus = bool(gpus) or GpuSample.objects.filter(server=server).exists()
    if found["latest"] is not None:
        return GpuReading(has_gpus=True, seen=True, busy_at=found["busy"])
    checked = server.facts_checked_at
    readings = [gpu.get("utilization_percent") for gpu in gpus]
    if checked is None or not (since <= checked <= now) or not readings:
        return GpuReading(has_gpus=has_gpus, seen=False, busy_at=None)
    if not all(isinstance(value, int) for value in readings):
        # "[N/A]" (as under MIG) is no reading: a guess would read as an idle GPU.
        return GpuReading(has_gpus=True, seen=False, busy_at=None)
    busy = any(value >= IDLE_GPU_PERCENT for value in readings)
    return GpuReading(has_gpus=True, seen=True, busy_at=checked if busy else None)


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def observe(
    guard: IdleGuard,
    now: datetime,
    counts: dict[Stack, float | str],
    gpu: GpuReading,
) -> Finding:
    """Take one check's readings into `guard` (its counts, quiet_since, note; not saved) and
    say whether the server is idle.

    `counts` holds, per watched stack, its model request counter, or the sentence saying why
    it could not be read. A counter that moved (or was never read before) starts the quiet
    time again; a busy GPU reading in the idle window starts it from that reading.
    """
    idle_time = timedelta(minutes=guard.idle_minutes)
    saved = dict(guard.request_counts or {})
    kept: dict[str, float] = {}
    moved, unread = [], []
    for stack, value in counts.items():
        key = str(stack.pk)
        if isinstance(value, str):
            unread.append(f"{stack.name}: {value}")
            if key in saved:
                kept[key] = saved[key]
            continue
        kept[key] = value
        if saved.get(key) != value:
            moved.append(stack)
    guard.request_counts = kept
    guard.checked_at = now

    activity = False
    said: notes.Note = []
    if moved:
        first = [stack.name for stack in moved if str(stack.pk) not in saved]
        used = [stack.name for stack in moved if str(stack.pk) in saved]
        if used:
            said.append(notes.part(notes.USED, stacks=", ".join(used)))
            activity = True
        if first:
            said.append(notes.part(notes.FIRST, stacks=", ".join(first)))
        guard.quiet_since = now
    if guard.quiet_since is None:
        guard.quiet_since = now
    if gpu.busy_at is not None and gpu.busy_at > guard.quiet_since:
        guard.quiet_since = gpu.busy_at
        said.append(notes.part(notes.GPU_BUSY, at=f"{gpu.busy_at:%Y-%m-%d %H:%M}"))
        activity = True
    quiet_for = now - guard.quiet_since
    if unread:
        said.append(notes.part(notes.UNREAD, reasons="; ".join(unread)))
        guard.note = said
        return Finding(idle=False, activity=activity, note=guard.note, quiet_for=quiet_for)
    if gpu.has_gpus and not gpu.seen:
        said.append(notes.part(notes.NO_GPU_READING, minutes=guard.idle_minutes))
        guard.note = said
        return Finding(idle=False, activity=activity, note=guard.note, quiet_for=quiet_for)
    idle = quiet_for >= idle_time
    if idle:
        said.append(notes.part(notes.IDLE, minutes=_minutes(quiet_for)))
    elif not activity:
        said.append(
            notes.part(notes.QUIET, minutes=_minutes(quiet_for), idle_minutes=guard.idle_minutes)
        )
    guard.note = said
    return Finding(idle=idle, activity=activity, note=guard.note, quiet_for=quiet_for)
