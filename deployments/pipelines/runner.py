"""run(): claim a queued run and execute its steps from `next_step`, recording each one.

The run row is the state machine. Every write that says something about the run's
outcome is a compare-and-set on (status=RUNNING, claimed_by=worker), so a worker whose
run was reaped or taken away can never report it as done.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..choices import EventKind, RunStatus, StepStatus
from ..errors import PanelError
from ..models import PipelineRun, StepRun
from . import error_text, events, registry
from .connection import reconnect_if_dropped, written
from .heartbeat import Heartbeat
from .steps import ClaimLost, Pipeline, RunCancelled, Step, StepContext, check_claim

logger = logging.getLogger(__name__)

# Kept on the step row; every line is in the event log as well.
MAX_STEP_OUTPUT_CHARS = 100_000
MAX_ERROR_CHARS = 2_000


def run(run_id: int, worker: str) -> None:
    """Run the pipeline of `run_id` if it is queued; otherwise do nothing.

    `worker` names this process (host and pid): it is the owner of the claim.
    """
    if not _claim(run_id, worker):
        logger.info("Run %s is not queued (taken or finished); nothing to do", run_id)
        return
    pipeline_run = PipelineRun.objects.get(pk=run_id)
    try:
        pipeline = registry.get(pipeline_run.kind)
    except registry.UnknownPipeline as exc:
        _end_run(pipeline_run, worker, RunStatus.FAILED, str(exc))
        return
    events.record(
        pipeline_run.pk,
        EventKind.RUN_STARTED,
        status=RunStatus.RUNNING,
        message=_start_message(pipeline_run, pipeline),
    )
    for index in range(pipeline_run.next_step, len(pipeline.steps)):
        step = pipeline.steps[index]
        try:
            check_claim(pipeline_run.pk, worker)
        except RunCancelled:
            _end_run(
                pipeline_run, worker, RunStatus.CANCELLED, f"Cancelled before step '{step.name}'."
            )
            return
        except ClaimLost:
            logger.warning("Run %s was taken away from %s; stopping", pipeline_run.pk, worker)
            return
        if not _run_step(pipeline_run, worker, index, step):
            return
    _end_run(pipeline_run, worker, RunStatus.SUCCEEDED)


def _claim(run_id: int, worker: str) -> bool:
    now = timezone.now()
    return bool(
        PipelineRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING,
            claimed_by=worker,
            heartbeat_at=now,
            started_at=Coalesce("started_at", Value(now)),
        )
    )


def _held(run: PipelineRun, worker: str):
    return PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, claimed_by=worker)


def _start_message(run: PipelineRun, pipeline: Pipeline) -> str:
    what = run.kind_label.lower()
    if run.next_step == 0:
        return f"Started {what} (attempt {run.attempt})."
    name = pipeline.step_name(run.next_step) or "the end"
    return f"Resuming {what} at step '{name}' (attempt {run.attempt})."


def _run_step(run: PipelineRun, worker: str, index: int, step: Step) -> bool:
    """Run one step and record its outcome. True when the run goes on to the next step."""
    with transaction.atomic():
        step_run = StepRun.objects.create(
            run=run,
            index=index,
            name=step.name,
            attempt=run.attempt,
            status=StepStatus.RUNNING,
            started_at=timezone.now(),
        )
        events.record(
            run.pk,
            EventKind.STEP_STARTED,
            status=RunStatus.RUNNING,
            step_index=index,
            message=step.name,
        )
    context = StepContext(run=run, index=index, name=step.name, worker=worker)
    error = ""
    interrupted: RunCancelled | ClaimLost | None = None
    with Heartbeat(run.pk, worker, settings.PIPELINE_HEARTBEAT_SECONDS):
        try:
            result = step.func(context)
            if result:
                context.log(result)
        except PanelError as exc:
            error = str(exc) or "The step failed."
        except (RunCancelled, ClaimLost) as exc:
            interrupted = exc
        except Exception as exc:
            # The class name and traceback go to the log; the step says what went wrong.
            logger.exception("Step %r of run %s raised", step.name, run.pk)
            error = error_text.describe(exc)
    # The step may have outlasted a database restart: its outcome is written on a new connection,
    # and written again while the database does not answer.
    reconnect_if_dropped()
    return written(
        lambda: _record_outcome(
            run, worker, step, step_run, _joined(context.lines), error, interrupted
        ),
        f"the outcome of step {step.name!r} of run {run.pk}",
    )


def _record_outcome(
    run: PipelineRun,
    worker: str,
    step: Step,
    step_run: StepRun,
    output: str,
    error: str,
    interrupted: RunCancelled | ClaimLost | None,
) -> bool:
    """The step's end, the run's where the step ended it. True when the run goes on."""
    if isinstance(interrupted, RunCancelled):
        ended = _end_run(
            run,
            worker,
            RunStatus.CANCELLED,
            f"Cancelled during step '{step.name}'.",
            step_run=step_run,
            output=output,
            step_error="Cancelled.",
        )
        if ended:
            return False
    elif error:
        error = _truncated(error)
        ended = _end_run(
            run,
            worker,
            RunStatus.FAILED,
            f"Step '{step.name}' failed: {error}",
            step_run=step_run,
            output=output,
            step_error=error,
        )
        if ended:
            return False
    elif interrupted is None and _advance(run, worker, step_run, output):
        return True

    # The run was reaped or taken away while the step ran: whatever the step did,
    # this worker must not report it. The next attempt runs the step again.
    logger.warning("Run %s was taken away from %s during step %r", run.pk, worker, step.name)
    StepRun.objects.filter(pk=step_run.pk).update(output=output)
    StepRun.objects.filter(pk=step_run.pk, status=StepStatus.RUNNING).update(
        status=StepStatus.FAILED,
        error="The run was taken away from this worker before the step finished.",
        finished_at=timezone.now(),
    )
    return False


def _advance(run: PipelineRun, worker: str, step_run: StepRun, output: str) -> bool:
    """Record the step as done and move `next_step` past it, unless the run was taken away."""
    now = timezone.now()
    with transaction.atomic():
        if not _held(run, worker).update(next_step=step_run.index + 1, heartbeat_at=now):
            return False
        _end_step(step_run, StepStatus.SUCCEEDED, output, "", now)
        events.record(
            run.pk,
            EventKind.STEP_FINISHED,
            status=RunStatus.RUNNING,
            step_index=step_run.index,
            message=f"Step '{step_run.name}' succeeded.",
        )
    return True


def _end_run(
    run: PipelineRun,
    worker: str,
    status: RunStatus,
    error: str = "",
    *,
    step_run: StepRun | None = None,
    output: str = "",
    step_error: str = "",
) -> bool:
    """Finish the run, and the step that ended it if any, unless the run was taken away.

    One transaction, so the run and its step never disagree.
    """
    now = timezone.now()
    with transaction.atomic():
        if not _held(run, worker).update(
            status=status, error=error, finished_at=now, heartbeat_at=now
        ):
            return False
        if step_run is not None:
            _end_step(step_run, StepStatus.FAILED, output, step_error, now)
            events.record(
                run.pk,
                EventKind.STEP_FINISHED,
                status=status,
                step_index=step_run.index,
                message=error,
            )
        events.record(
            run.pk, EventKind.RUN_FINISHED, status=status, message=error or f"{status.label}."
        )
    logger.info("Run %s %s", run.pk, status)
    return True


def _end_step(step_run: StepRun, status: StepStatus, output: str, error: str, now) -> None:
    step_run.status = status
    step_run.output = output
    step_run.error = error
    step_run.finished_at = now
    step_run.save(update_fields=["status", "output", "error", "finished_at"])


def _joined(lines: list[str]) -> str:
    text = "\n".join(lines)
    if len(text) > MAX_STEP_OUTPUT_CHARS:
        text = "[earlier output omitted]\n" + text[-MAX_STEP_OUTPUT_CHARS:]
    return text


def _truncated(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"
