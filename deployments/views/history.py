"""The team's deployment history, and one deployment with its live steps."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..choices import RUN_RETRYABLE, Role
from ..forms import DeploymentFilterForm
from ..models import Deployment
from .common import HtmxHttpRequest, paginate, render_page_or_partial

DETAIL_TEMPLATE = "deployments/deployment_detail.html"


def _deployments(user):
    return access.visible(Deployment.objects.select_related("stack__server", "user", "run"), user)


@login_required
def deployment_list(request: HtmxHttpRequest) -> HttpResponse:
    deployments = _deployments(request.user)
    form = DeploymentFilterForm(request.GET or None, viewer=request.user)
    if form.is_bound:
        # A filter that names nothing the user can see matches nothing.
        deployments = form.filter(deployments) if form.is_valid() else deployments.none()
    context = {"form": form, "page": paginate(request, deployments)}
    return render_page_or_partial(request, "deployments/deployment_list.html", "table", context)


def _detail_context(request, deployment: Deployment) -> dict:
    run = deployment.run
    can_operate = access.has_role(request.user, deployment.team_id, Role.OPERATOR)
    return {
        "deployment": deployment,
        "run": run,
        "steps": run.steps.all(),
        "can_retry": can_operate and run.status in RUN_RETRYABLE,
        "can_cancel": can_operate and not run.is_terminal and not run.cancel_requested,
    }


@login_required
def deployment_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    deployment = access.get_visible_or_404(_deployments(request.user), request.user, pk=pk)
    return render(request, DETAIL_TEMPLATE, _detail_context(request, deployment))


@login_required
def deployment_steps(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The run's status and steps alone: the detail page polls this until the run ends."""
    deployment = access.get_visible_or_404(_deployments(request.user), request.user, pk=pk)
    return render(request, f"{DETAIL_TEMPLATE}#steps", _detail_context(request, deployment))


def _operable(request, pk: int) -> Deployment:
    deployment = access.get_visible_or_404(_deployments(request.user), request.user, pk=pk)
    access.require_role(request.user, deployment.team_id, Role.OPERATOR)
    return deployment


def _run_action(request, deployment: Deployment, action, done: str) -> HttpResponse:
    try:
        action(deployment.run, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done)
    return redirect("deployment_detail", pk=deployment.pk)


# The pipeline actions are imported when used: they load the pipelines and their clients.


@login_required
@require_POST
def deployment_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    deployment = _operable(request, pk)
    from ..actions.pipelines import do_retry_run

    return _run_action(request, deployment, do_retry_run, "Retry queued.")


@login_required
@require_POST
def deployment_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    deployment = _operable(request, pk)
    from ..actions.pipelines import do_cancel_run

    return _run_action(request, deployment, do_cancel_run, "Cancel requested.")
