"""One pipeline run with its live steps, and the retry and cancel buttons of any run.

A deployment shows its run through these same partials and actions; a run with no
deployment (preparing a server, later model launches) has a page of its own.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Max
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.pipelines import do_cancel_run, do_retry_run
from ..choices import RUN_RETRYABLE, EventKind, PipelineKind, Role, RunStatus, StepStatus
from ..models import Deployment, KnowledgeBase, ModelLaunch, PipelineRun, Server, Stack, StepRun
from ..pipelines import registry
from .common import HtmxHttpRequest

STEPS_TEMPLATE = "deployments/run_steps.html"
# A page shows the latest lines of a running step; all of them are in the event log.
LIVE_OUTPUT_LINES = 1000
# Steps that wait up to a limit counted from their start, by name: the setting holding it.
STEP_DEADLINES = {
    "wait until healthy": "STACK_HEALTH_TIMEOUT",
    "wait until ready": "MODEL_LAUNCH_TIMEOUT",
}


@dataclass(frozen=True)
class UpcomingStep:
    index: int
    name: str


@dataclass(frozen=True)
class Position:
    """Where a run is among its pipeline's steps: "step `number` of `total`"."""

    number: int
    total: int
    name: str


@dataclass(frozen=True)
class NextLink:
    """A way on from a finished run: a page to open, the first one the main thing to do."""

    label: str
    url: str


# What a finished run's page says to do next, by kind and outcome: a lead sentence, then the
# links (see next_links). The links are read from what the run's params point at.
NEXT_LEADS = {
    (PipelineKind.STACK_DEPLOY, RunStatus.SUCCEEDED): gettext_lazy(
        "The stack is deployed. Next, launch the models it serves: a chat model, an embedding "
        "model and a rerank model."
    ),
    (PipelineKind.SERVER_PREPARE, RunStatus.SUCCEEDED): gettext_lazy(
        "The server is ready for a stack. Next, add one on it."
    ),
    (PipelineKind.MODEL_LAUNCH, RunStatus.SUCCEEDED): gettext_lazy(
        "The model is ready, and One API and FastGPT have it. Next, create a knowledge base or a "
        "chat app that uses it."
    ),
    (PipelineKind.STACK_TEARDOWN, RunStatus.SUCCEEDED): gettext_lazy(
        "The stack is torn down. Deploy it again from its page when you need it."
    ),
}
FAILED_LEAD = gettext_lazy(
    "Read the error of the failed step above, put right what it names, then retry: the run "
    "goes on from that step."
)


def next_links(run: PipelineRun) -> tuple[str, list[NextLink]]:
    """What to do now that `run` is over: a sentence and the pages to go on to."""
    if not run.is_terminal:
        return "", []
    params = run.params or {}
    stack = (
        Stack.objects.filter(pk=params.get("stack_id"), team_id=run.team_id).first()
        if params.get("stack_id")
        else None
    )
    links: list[NextLink] = []
    succeeded = run.status == RunStatus.SUCCEEDED
    if run.kind == PipelineKind.SERVER_PREPARE and params.get("server_id"):
        server = Server.objects.filter(pk=params["server_id"], team_id=run.team_id).first()
        if server is not None:
            if succeeded:
                links.append(NextLink(gettext("Add a stack"), reverse("stack_create")))
            links.append(
                NextLink(
                    gettext("Open server %(name)s") % {"name": server.name},
                    reverse("server_detail", args=[server.pk]),
                )
            )
    elif run.kind == PipelineKind.MODEL_LAUNCH and params.get("launch_id"):
        launch = ModelLaunch.objects.filter(pk=params["launch_id"], team_id=run.team_id).first()
        if launch is not None:
            links.append(
                NextLink(
                    gettext("Open the launch of %(model)s") % {"model": launch.model_uid},
                    reverse("model_launch_detail", args=[launch.pk]),
                )
            )
        if succeeded and stack is not None:
            links.append(
                NextLink(gettext("Knowledge bases"), reverse("knowledge_list", args=[stack.pk]))
            )
    elif run.kind == PipelineKind.DATASET_IMPORT and params.get("knowledge_base_id"):
        base = KnowledgeBase.objects.filter(
            pk=params["knowledge_base_id"], team_id=run.team_id
        ).first()
        if base is not None:
            links.append(
                NextLink(
                    gettext("Open knowledge base %(name)s") % {"name": base.name},
                    reverse("knowledge_detail", args=[base.pk]),
                )
            )
    elif run.kind == PipelineKind.CHATBOT_PUBLISH:
        links.append(
            NextLink(gettext("Open the chatbot's page"), reverse("chatbot_progress", args=[run.pk]))
        )
    if stack is not None and run.kind != PipelineKind.MODEL_LAUNCH:
        links.append(
            NextLink(
                gettext("Open stack %(name)s") % {"name": stack.name},
                reverse("stack_detail", args=[stack.pk]),
            )
        )
    if succeeded and run.kind == PipelineKind.STACK_DEPLOY:
        links.append(NextLink(gettext("Launch models"), reverse("model_list")))
    if run.status == RunStatus.FAILED:
        lead = str(FAILED_LEAD)
    else:
        lead = str(NEXT_LEADS.get((run.kind, run.status), ""))
    return lead, links


def steps_context(run: PipelineRun, user) -> dict:
    """What STEPS_TEMPLATE shows `user`, for a page, a poll or the run's websocket."""
    last_seq, steps = steps_as_of_last_event(run)
    can_operate = access.has_role(user, run.team_id, Role.OPERATOR)
    names = pipeline_step_names(run.kind)
    now = timezone.now()
    for step in steps:
        step.deadline = step_deadline(step)
        step.elapsed = now - step.started_at if step.status == StepStatus.RUNNING else None
    upcoming = upcoming_steps(run, steps, names)
    next_lead, next_steps = next_links(run)
    return {
        "run": run,
        "steps": steps,
        "upcoming": upcoming,
        "position": run_position(run, steps, upcoming, names),
        "run_elapsed": now - run.started_at if run.started_at and not run.is_terminal else None,
        "last_seq": last_seq,
        "next_lead": next_lead,
        "next_steps": next_steps,
        "can_retry": can_operate and run.status in RUN_RETRYABLE,
        "can_cancel": can_operate and not run.is_terminal and not run.cancel_requested,
    }


def pipeline_step_names(kind: str) -> tuple[str, ...]:
    """The names of the steps of pipeline `kind`, in order; none for a kind no longer known."""
    try:
        return tuple(step.name for step in registry.get(kind).steps)
    except registry.UnknownPipeline:
        return ()


def step_deadline(step: StepRun) -> datetime | None:
    """When a running step that waits gives up, from its start and its setting."""
    setting = STEP_DEADLINES.get(step.name)
    if step.status != StepStatus.RUNNING or setting is None:
        return None
    return step.started_at + timedelta(seconds=getattr(settings, setting))


def upcoming_steps(
    run: PipelineRun, steps: list[StepRun], names: tuple[str, ...]
) -> list[UpcomingStep]:
    """The steps still to come in this attempt of a run that is not over."""
    if run.is_terminal:
        return []
    this_attempt = {step.index for step in steps if step.attempt == run.attempt}
    shown = max(this_attempt, default=run.next_step - 1)
    start = max(run.next_step, shown + 1)
    return [UpcomingStep(index, names[index]) for index in range(start, len(names))]


def run_position(
    run: PipelineRun, steps: list[StepRun], upcoming: list[UpcomingStep], names: tuple[str, ...]
) -> Position | None:
    """The step the run is at (running, next, or where it stopped) among all its steps."""
    if not names:
        return None
    total = len(names)
    running = [step for step in steps if step.status == StepStatus.RUNNING]
    failed = [step for step in steps if step.status == StepStatus.FAILED]
    if running:
        step = running[-1]
    elif run.status in (RunStatus.FAILED, RunStatus.CANCELLED) and failed:
        step = failed[-1]
    elif upcoming:
        return Position(upcoming[0].index + 1, total, upcoming[0].name)
    elif run.is_terminal:
        return Position(min(run.next_step, total), total, "")
    else:
        return None
    return Position(step.index + 1, total, step.name)


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
    context = {**steps_context(run, request.user), **_run_place(run)}
    return render(request, "deployments/run_detail.html", context)


def _run_place(run: PipelineRun) -> dict:
    """What the run's params point at, of its own team: the page links them and its
    breadcrumbs lead through them (server, or stack with its launch or knowledge base)."""
    params = run.params or {}

    def find(model, key: str, *related: str):
        if not params.get(key):
            return None
        return (
            model.objects.filter(pk=params[key], team_id=run.team_id)
            .select_related(*related)
            .first()
        )

    stack = find(Stack, "stack_id", "server")
    server = stack.server if stack is not None else find(Server, "server_id")
    return {
        "server": server,
        "stack": stack,
        "launch": find(ModelLaunch, "launch_id"),
        "knowledge_base": find(KnowledgeBase, "knowledge_base_id"),
    }


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
