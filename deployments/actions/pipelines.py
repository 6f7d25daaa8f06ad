"""Start, retry and cancel pipeline runs. The work itself happens in a Celery worker."""

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import audit
from ..choices import RUN_RETRYABLE, EventKind, RunStatus
from ..models import PipelineRun, Team
from ..pipelines import events, registry
from ..tasks import run_pipeline
from . import ActionError


def _actor(user, request):
    if user is None and request is not None and request.user.is_authenticated:
        return request.user
    return user


def do_start_run(
    *, team: Team, kind: str, params: dict | None = None, user=None, request=None
) -> PipelineRun:
    """Queue a run of the pipeline `kind`; a worker picks it up once this commits."""
    try:
        registry.get(kind)
    except registry.UnknownPipeline as exc:
        raise ActionError(str(exc)) from None
    actor = _actor(user, request)
    with transaction.atomic():
        run = PipelineRun.objects.create(
            team=team,
            kind=kind,
            params=params or {},
            created_by=actor if actor is not None and actor.is_authenticated else None,
            heartbeat_at=timezone.now(),
        )
        audit.record(
            "pipeline.start", actor=actor, request=request, target=run, details={"kind": kind}
        )
        run_pipeline.delay_on_commit(run.pk)
    return run


def do_retry_run(run: PipelineRun, *, user=None, request=None) -> PipelineRun:
    """Queue a failed or cancelled run again. It resumes at the step it stopped on."""
    with transaction.atomic():
        queued = PipelineRun.objects.filter(pk=run.pk, status__in=RUN_RETRYABLE).update(
            status=RunStatus.QUEUED,
            attempt=F("attempt") + 1,
            error="",
            claimed_by="",
            cancel_requested=False,
            finished_at=None,
            heartbeat_at=timezone.now(),
        )
        run.refresh_from_db()
        if not queued:
            raise ActionError(
                _("Only a failed or cancelled run can be retried; this one is %(status)s.")
                % {"status": run.get_status_display().lower()}
            )
        audit.record(
            "pipeline.retry",
            actor=_actor(user, request),
            request=request,
            target=run,
            details={"kind": run.kind, "attempt": run.attempt, "resume_at": run.next_step},
        )
        run_pipeline.delay_on_commit(run.pk)
    return run


def do_cancel_run(run: PipelineRun, *, user=None, request=None) -> PipelineRun:
    """Cancel a queued run at once; ask a running one to stop before its next step."""
    now = timezone.now()
    with transaction.atomic():
        if PipelineRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, cancel_requested=True, finished_at=now
        ):
            was = RunStatus.QUEUED
            # No worker holds a queued run, so this is the only writer of its events.
            events.record(
                run.pk,
                EventKind.RUN_FINISHED,
                status=RunStatus.CANCELLED,
                message="Cancelled before it started.",
            )
        elif PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            cancel_requested=True
        ):
            was = RunStatus.RUNNING
        else:
            run.refresh_from_db()
            raise ActionError(
                _("Only a queued or running run can be cancelled; this one is %(status)s.")
                % {"status": run.get_status_display().lower()}
            )
        run.refresh_from_db()
        audit.record(
            "pipeline.cancel",
            actor=_actor(user, request),
            request=request,
            target=run,
            details={"kind": run.kind, "was": str(was)},
        )
    return run
