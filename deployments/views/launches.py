"""Model launches: start one from a model config's page, follow it, cancel or terminate it.

The steps and their output are on the launch's run page; a launch page shows what a person
asks first: is the model up, how far along is it, and did it pass its smoke test.
"""

import json
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Model, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.launches import (
    do_cancel_launch,
    do_launch_model,
    do_terminate_model,
    terminate_run,
)
from ..choices import RUN_TERMINAL, LaunchStatus, PipelineKind, Role, RunStatus, StepStatus
from ..forms.launches import LaunchForm
from ..llm import KINDS, Kind, kind_of
from ..models import ModelLaunch, PipelineRun
from ..pipelines.model_launch import WIRING
from .common import HtmxHttpRequest, render_page_or_partial

TEMPLATE = "deployments/model_launch.html"
UNDER_WAY = (LaunchStatus.PENDING, LaunchStatus.LAUNCHING)
# The launch's last steps, after the model is ready: One API's channel, FastGPT's config.json,
# then a check that FastGPT lists the model.
ONEAPI_STEP, FASTGPT_STEP, FASTGPT_CHECK_STEP = (name for name, _ in WIRING)


@dataclass(frozen=True)
class Wiring:
    """How far a ready model is wired in: "waiting", "running", "done" or "failed" for each."""

    oneapi: str
    fastgpt: str

    @property
    def done(self) -> bool:
        return self.oneapi == "done" and self.fastgpt == "done"


def wiring_of(run: PipelineRun | None) -> Wiring | None:
    """Where the wiring steps of a launch's run are, from its step rows; None without a run."""
    if run is None:
        return None
    latest = {}
    for name, status in run.steps.order_by("index", "attempt").values_list("name", "status"):
        latest[name] = status

    def state(*names: str) -> str:
        statuses = [latest.get(name) for name in names]
        if StepStatus.FAILED in statuses:
            return "failed"
        if all(status == StepStatus.SUCCEEDED for status in statuses):
            return "done"
        if any(status is not None for status in statuses):
            return "running"
        return "waiting"

    return Wiring(oneapi=state(ONEAPI_STEP), fastgpt=state(FASTGPT_STEP, FASTGPT_CHECK_STEP))


@dataclass(frozen=True)
class LaunchRow:
    """A launch as a list shows it: its kind and the status to show, worked out once."""

    launch: ModelLaunch
    kind: Kind
    status: LaunchStatus

    @property
    def smoke_flagged(self) -> bool:
        return smoke_flagged(self.launch.smoke_test)

    @property
    def run_under_way(self) -> bool:
        """Its run goes on: launching, or wiring the ready model into One API and FastGPT."""
        run = self.launch.run
        return run is not None and run.status not in RUN_TERMINAL

    @property
    def wiring(self) -> bool:
        return self.status == LaunchStatus.READY and self.run_under_way


class LaunchRows(list):
    """Launches as a list shows them; `under_way` while any of them may still change."""

    @property
    def under_way(self) -> bool:
        return any(row.status in UNDER_WAY or row.run_under_way for row in self)


def smoke_flagged(smoke: dict) -> bool:
    """Whether a smoke test ran and found the model wanting."""
    return bool(smoke) and not smoke.get("passed")


def launch_rows(launches: QuerySet[ModelLaunch], limit: int) -> LaunchRows:
    """The latest `limit` launches of `launches`, as lists show them."""
    launches = launches.select_related("run", "stack", "llm", "embedding", "rerank")[:limit]
    return LaunchRows(
        LaunchRow(launch, kind_of(launch.config), LaunchStatus(launch.current_status))
        for launch in launches
    )


def _visible_config(request: HtmxHttpRequest, slug: str, pk: int) -> tuple[Kind, Model]:
    kind = KINDS.get(slug)
    if kind is None:
        raise Http404("No such kind of model.")
    config = access.get_visible_or_404(
        kind.model.objects.select_related("team"), request.user, pk=pk
    )
    return kind, config


def _visible_launch(request: HtmxHttpRequest, pk: int) -> ModelLaunch:
    return access.get_visible_or_404(
        ModelLaunch.objects.select_related(
            "team", "stack__server", "run__created_by", "llm", "embedding", "rerank"
        ),
        request.user,
        pk=pk,
    )


def _operable_launch(request: HtmxHttpRequest, pk: int) -> ModelLaunch:
    launch = _visible_launch(request, pk)
    access.require_role(request.user, launch.team_id, Role.OPERATOR)
    return launch


def _latest_terminate_run(launch: ModelLaunch) -> PipelineRun | None:
    """The latest termination of this launch, under way or ended."""
    return (
        PipelineRun.objects.filter(
            team_id=launch.team_id, kind=PipelineKind.MODEL_TERMINATE, params__launch_id=launch.pk
        )
        .order_by("-id")
        .first()
    )


def launch_context(request: HtmxHttpRequest, launch: ModelLaunch) -> dict:
    status = LaunchStatus(launch.current_status)
    run = launch.run
    terminating = terminate_run(launch)
    can_operate = access.has_role(request.user, launch.team_id, Role.OPERATOR)
    smoke = launch.smoke_test or {}
    run_under_way = run is not None and not run.is_terminal
    return {
        "launch": launch,
        "config": launch.config,
        "kind": kind_of(launch.config),
        "status": status,
        "percent": round(min(max(launch.progress, 0.0), 1.0) * 100),
        "run": run,
        # A ready model's run can still fail, wiring it in: that error shows too.
        "run_error": (
            run.error
            if run is not None
            and (
                status == LaunchStatus.FAILED
                or (status == LaunchStatus.READY and run.status == RunStatus.FAILED)
            )
            else ""
        ),
        "terminate_run": terminating or _latest_terminate_run(launch),
        # The page follows a launch until its run has ended (the wiring into One API and
        # FastGPT comes after the model is ready), and a termination until it has stopped it.
        "polling": status in UNDER_WAY or run_under_way or terminating is not None,
        "wiring": wiring_of(run) if status == LaunchStatus.READY else None,
        "run_under_way": run_under_way,
        "smoke": smoke,
        "smoke_flagged": smoke_flagged(smoke),
        "smoke_details": json.dumps(smoke.get("details") or {}, indent=2, ensure_ascii=False),
        "cancel_requested": run is not None and run.cancel_requested,
        "can_cancel": (
            can_operate and status in UNDER_WAY and not (run is not None and run.cancel_requested)
        ),
        "can_terminate": (
            can_operate
            and status in (LaunchStatus.READY, LaunchStatus.FAILED)
            and terminating is None
        ),
    }


@login_required
@require_POST
def model_launch_create(request: HtmxHttpRequest, kind: str, pk: int) -> HttpResponse:
    """Launch a model config on one of its team's stacks; refusals go back to its page."""
    kind, config = _visible_config(request, kind, pk)
    access.require_role(request.user, config.team_id, Role.OPERATOR)
    form = LaunchForm(request.POST, team=config.team)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["stack"]))
        return redirect("model_detail", kind=kind.slug, pk=config.pk)
    stack = form.cleaned_data["stack"]
    try:
        launch = do_launch_model(config, stack=stack, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
        return redirect("model_detail", kind=kind.slug, pk=config.pk)
    messages.success(
        request,
        _("Launch of “%(model)s” on stack “%(stack)s” queued.")
        % {"model": config.model, "stack": stack.name},
    )
    return redirect("model_launch_detail", pk=launch.pk)


@login_required
def model_launch_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The launch's page; htmx polls it for the status block alone while the launch goes on."""
    launch = _visible_launch(request, pk)
    context = launch_context(request, launch)
    return render_page_or_partial(request, TEMPLATE, "launch-status", context)


@login_required
@require_POST
def model_launch_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    launch = _operable_launch(request, pk)
    try:
        launch = do_cancel_launch(launch, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
    else:
        if launch.status == LaunchStatus.TERMINATED:
            messages.success(
                request, _("Launch of “%(model_uid)s” cancelled.") % {"model_uid": launch.model_uid}
            )
        else:
            messages.success(
                request,
                _("Cancel requested: the launch of “%(model_uid)s” stops shortly.")
                % {"model_uid": launch.model_uid},
            )
    return redirect("model_launch_detail", pk=launch.pk)


@login_required
@require_POST
def model_launch_terminate(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    launch = _operable_launch(request, pk)
    try:
        do_terminate_model(launch, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            _("Terminating “%(model_uid)s” on stack “%(stack)s”.")
            % {"model_uid": launch.model_uid, "stack": launch.stack.name},
        )
    return redirect("model_launch_detail", pk=launch.pk)
