from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.stacks import do_create_stack, do_deploy_stack
from ..choices import Role
from ..forms import StackForm
from ..models import Stack
from ..stacks.render import render as render_stack
from ..stacks.secrets import stack_secrets
from .common import HtmxHttpRequest, add_action_errors, form_data

RECENT_DEPLOYMENTS = 10


@login_required
def stack_list(request: HtmxHttpRequest) -> HttpResponse:
    stacks = access.visible(
        Stack.objects.select_related("team", "server").annotate(service_count=Count("services")),
        request.user,
    ).order_by("team__name", "server__name", "name")
    context = {"stacks": stacks, "can_add": bool(access.team_ids(request.user, Role.OPERATOR))}
    return render(request, "deployments/stack_list.html", context)


@login_required
def stack_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = access.get_visible_or_404(
        Stack.objects.select_related("team", "server"), request.user, pk=pk
    )
    # The files a deploy would write now, secrets masked: what the team reviews.
    files = render_stack(stack, stack_secrets(stack)).shown()
    context = {
        "stack": stack,
        "services": stack.services.all(),
        "deployments": stack.deployments.select_related("user", "run")[:RECENT_DEPLOYMENTS],
        "files": sorted(files.items()),
        "can_operate": access.has_role(request.user, stack.team, Role.OPERATOR),
    }
    return render(request, "deployments/stack_detail.html", context)


@login_required
def stack_create(request: HtmxHttpRequest) -> HttpResponse:
    if not access.team_ids(request.user, Role.OPERATOR):
        raise PermissionDenied("Adding a stack needs the operator role in a team.")
    form = StackForm(form_data(request), user=request.user)
    if request.method == "POST" and form.is_valid():
        data = {name: value for name, value in form.cleaned_data.items() if name != "server"}
        try:
            stack = do_create_stack(
                server=form.cleaned_data["server"], data=data, user=request.user, request=request
            )
        except ValidationError as error:
            add_action_errors(form, error)
        else:
            messages.success(request, f"Stack “{stack.name}” created with its own secrets.")
            return redirect("stack_detail", pk=stack.pk)
    return render(request, "deployments/stack_form.html", {"form": form})


@login_required
@require_POST
def stack_deploy(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = access.get_visible_or_404(Stack.objects.select_related("team"), request.user, pk=pk)
    try:
        deployment = do_deploy_stack(stack, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
        return redirect("stack_detail", pk=stack.pk)
    messages.success(request, "Deployment started.")
    return redirect("deployment_detail", pk=deployment.pk)
