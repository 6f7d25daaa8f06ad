"""One pipeline run with its live steps, and the retry and cancel buttons of any run.

A deployment shows its run through these same partials and actions; a run with no
deployment (preparing a server, later model launches) has a page of its own.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Max
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.pipelines import do_cancel_run, do_retry_run
from ..choices import RUN_RETRYABLE, EventKind, Role, StepStatus
from ..models import Deployment, PipelineRun, Server, StepRun
from .common import HtmxHttpRequest

STEPS_TEMPLATE = "deployments/run_steps.html"
# A page shows the latest lines of a running step; all of them are in the event log.
LIVE_OUTPUT_LINES = 1000


def steps_context(run: PipelineRun, user) -> dict:
    """What STEPS_TEMPLATE shows `user`, for a page, a poll or the run's websocket."""
    last_seq, steps = steps_as_of_last_event(run)
    can_operate = access.has_role(user, run.team_id, Role.OPERATOR)
    return {
        "run": run,
        "steps": steps,
        "last_seq": last_seq,
        "can_retry": can_operate and run.status in RUN_RETRYABLE,
        "can_cancel": can_operate and not run.is_terminal and not run.cancel_requested,
    }


def steps_as_of_last_event(run: PipelineRun) -> tuple[int, list[StepRun]]:
    """The run's steps exactly as its events up to `last_seq` left them, and that seq.

    A live page goes on from `last_seq` with the events after it, so what it shows first
    must be neither behind nor ahead of that seq. The seq is read first and the run
    reloaded after it: a run that is not finished then has its end still to come. Steps
    that started or ended after the seq (the worker went on while this read) are shown
    as they were before, and the output of a running step comes from the event log, as
    its row only gets the output when the step ends.
    """
    last_seq = run.events.aggregate(last=Max("seq"))["last"] or 0
    run.refresh_from_db()
    steps = list(run.steps.all())
    if run.is_terminal:
        return last_seq, steps
    latest = {step.index: step for step in steps}  # ordered by attempt: the last one wins
    later = run.events.filter(
        seq__gt=last_seq, kind__in=(EventKind.STEP_STARTED, EventKind.STEP_FINISHED)
    ).values_list("kind", "step_index")
    for kind, index in later:
        step = latest.get(index)
        if step is None:
            continue
        if kind == EventKind.STEP_STARTED:
            steps.remove(step)
            del latest[index]
        else:
            step.status = StepStatus.RUNNING
            step.finished_at = None
            step.output = step.error = ""
    for step in steps:
        if step.status == StepStatus.RUNNING:
            step.output = _output_so_far(run, step.index, last_seq)
    return last_seq, steps


def _output_so_far(run: PipelineRun, index: int, last_seq: int) -> str:
    """The output lines of the running step `index` up to `last_seq`, the latest ones."""
    events = run.events.filter(step_index=index, seq__lte=last_seq)
    started = events.filter(kind=EventKind.STEP_STARTED).aggregate(seq=Max("seq"))["seq"] or 0
    lines = list(
        events.filter(kind=EventKind.OUTPUT, seq__gt=started)
        .order_by("-seq")
        .values_list("message", flat=True)[: LIVE_OUTPUT_LINES + 1]
    )
    lines.reverse()
    if len(lines) > LIVE_OUTPUT_LINES:
        lines[0] = gettext("[earlier output omitted]")
    return "\n".join(lines)


def _visible_run(request, pk: int) -> PipelineRun:
    return access.get_visible_or_404(PipelineRun.objects.all(), request.user, pk=pk)


def _home(run: PipelineRun):
    """Where a person looks at this run: its deployment's page, else the run's own."""
    deployment = Deployment.objects.filter(run=run).only("pk").first()
    if deployment is not None:
        return redirect("deployment_detail", pk=deployment.pk)
    return redirect("run_detail", pk=run.pk)


@login_required
def run_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = _visible_run(request, pk)
    deployment = Deployment.objects.filter(run=run).only("pk").first()
    if deployment is not None:
        return redirect("deployment_detail", pk=deployment.pk)
    server_id = run.params.get("server_id")
    server = Server.objects.filter(pk=server_id, team_id=run.team_id).first() if server_id else None
    context = {**steps_context(run, request.user), "server": server}
    return render(request, "deployments/run_detail.html", context)


@login_required
def run_steps(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The run's status and steps alone: a page polls this where its websocket is down."""
    run = _visible_run(request, pk)
    return render(request, STEPS_TEMPLATE, steps_context(run, request.user))


def _operable(request, pk: int) -> PipelineRun:
    run = _visible_run(request, pk)
    access.require_role(request.user, run.team_id, Role.OPERATOR)
    return run


def _run_action(request, run: PipelineRun, action, done: str) -> HttpResponse:
    try:
        action(run, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done)
    return _home(run)


@login_required
@require_POST
def run_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = _operable(request, pk)
    return _run_action(request, run, do_retry_run, gettext("Retry queued."))


@login_required
@require_POST
def run_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = _operable(request, pk)
    return _run_action(request, run, do_cancel_run, gettext("Cancel requested."))
