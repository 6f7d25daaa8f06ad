"""The team's deployment history, and one deployment with its live steps."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from .. import access
from ..actions.stacks import rollback_targets
from ..choices import Role
from ..forms.history import DeploymentFilterForm
from ..models import Deployment
from .common import HtmxHttpRequest, paginate, render_page_or_partial
from .runs import steps_context


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


@login_required
def deployment_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    deployment = access.get_visible_or_404(_deployments(request.user), request.user, pk=pk)
    stack = deployment.stack
    targets = rollback_targets(stack)
    # The latest successful deploy is what the stack runs: rolling back to it changes nothing.
    is_current = targets.values_list("pk", flat=True).first() == deployment.pk
    can_roll_back = (
        not is_current
        and access.has_role(request.user, stack.team, Role.OPERATOR)
        and targets.filter(pk=deployment.pk).exists()
    )
    context = {
        **steps_context(deployment.run, request.user),
        "deployment": deployment,
        "is_current": is_current,
        "can_roll_back": can_roll_back,
    }
    return render(request, "deployments/deployment_detail.html", context)
