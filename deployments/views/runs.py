"""One pipeline run with its live steps, and the retry and cancel buttons of any run.

A deployment shows its run through these same partials and actions; a run with no
deployment (preparing a server, later model launches) has a page of its own.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..choices import RUN_RETRYABLE, Role
from ..models import Deployment, PipelineRun, Server
from .common import HtmxHttpRequest

STEPS_TEMPLATE = "deployments/run_steps.html"


def run_context(request, run: PipelineRun) -> dict:
    can_operate = access.has_role(request.user, run.team_id, Role.OPERATOR)
    return {
        "run": run,
        "steps": run.steps.all(),
        "can_retry": can_operate and run.status in RUN_RETRYABLE,
        "can_cancel": can_operate and not run.is_terminal and not run.cancel_requested,
    }


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
    context = {**run_context(request, run), "server": server}
    return render(request, "deployments/run_detail.html", context)


@login_required
def run_steps(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The run's status and steps alone: detail pages poll this until the run ends."""
    run = _visible_run(request, pk)
    return render(request, STEPS_TEMPLATE, run_context(request, run))


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


# The pipeline actions are imported when used: they load the pipelines and their clients.


@login_required
@require_POST
def run_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = _operable(request, pk)
    from ..actions.pipelines import do_retry_run

    return _run_action(request, run, do_retry_run, "Retry queued.")


@login_required
@require_POST
def run_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = _operable(request, pk)
    from ..actions.pipelines import do_cancel_run

    return _run_action(request, run, do_cancel_run, "Cancel requested.")
