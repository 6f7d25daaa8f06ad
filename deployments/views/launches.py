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
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.launches import (
    do_cancel_launch,
    do_launch_model,
    do_terminate_model,
    terminate_run,
)
from ..choices import LaunchStatus, PipelineKind, Role
from ..forms.launches import LaunchForm
from ..llm import KINDS, Kind, kind_of
from ..models import ModelLaunch, PipelineRun
from .common import HtmxHttpRequest, render_page_or_partial

TEMPLATE = "deployments/model_launch.html"
UNDER_WAY = (LaunchStatus.PENDING, LaunchStatus.LAUNCHING)


@dataclass(frozen=True)
class LaunchRow:
    """A launch as a list shows it: its kind and the status to show, worked out once."""

    launch: ModelLaunch
    kind: Kind
    status: LaunchStatus

    @property
    def smoke_flagged(self) -> bool:
        return smoke_flagged(self.launch.smoke_test)


def smoke_flagged(smoke: dict) -> bool:
    """Whether a smoke test ran and found the model wanting."""
    return bool(smoke) and not smoke.get("passed")


def launch_rows(launches: QuerySet[ModelLaunch], limit: int) -> list[LaunchRow]:
    """The latest `limit` launches of `launches`, as lists show them."""
    launches = launches.select_related("run", "stack", "llm", "embedding", "rerank")[:limit]
    return [
        LaunchRow(launch, kind_of(launch.config), LaunchStatus(launch.current_status))
        for launch in launches
    ]


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
    return {
        "launch": launch,
        "config": launch.config,
        "kind": kind_of(launch.config),
        "status": status,
        "percent": round(min(max(launch.progress, 0.0), 1.0) * 100),
        "run": run,
        "run_error": run.error if run is not None and status == LaunchStatus.FAILED else "",
        "terminate_run": terminating or _latest_terminate_run(launch),
        # The page follows a launch under way, and a termination until it has stopped the model.
        "polling": status in UNDER_WAY or terminating is not None,
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
    messages.success(request, f"Launch of “{config.model}” on stack “{stack.name}” queued.")
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
            messages.success(request, f"Launch of “{launch.model_uid}” cancelled.")
        else:
            messages.success(
                request, f"Cancel requested: the launch of “{launch.model_uid}” stops shortly."
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
            request, f"Terminating “{launch.model_uid}” on stack “{launch.stack.name}”."
        )
    return redirect("model_launch_detail", pk=launch.pk)
