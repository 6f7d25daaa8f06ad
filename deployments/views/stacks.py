import copy

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.stacks import (
    do_create_stack,
    do_deploy_stack,
    do_refresh_services,
    do_restart_stack,
    do_rollback_stack,
    do_teardown_stack,
    do_upgrade_stack,
)
from ..choices import Role
from ..forms.stacks import StackForm, TeardownForm, UpgradeForm
from ..models import Deployment, Stack
from ..stacks.files import files_diff, shown_files
from .common import HtmxHttpRequest, add_action_errors, form_data, wants_partial
from .launches import launch_rows

RECENT_DEPLOYMENTS = 10
RECENT_LAUNCHES = 20


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
    files = shown_files(stack)
    context = {
        "stack": stack,
        "active": stack.active_deployment(),
        "services": stack.services.all(),
        "deployments": stack.deployments.select_related("user", "run")[:RECENT_DEPLOYMENTS],
        "launches": launch_rows(stack.model_launches.all(), RECENT_LAUNCHES),
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


def _operable_stack(request: HtmxHttpRequest, pk: int) -> Stack:
    stack = access.get_visible_or_404(
        Stack.objects.select_related("team", "server"), request.user, pk=pk
    )
    access.require_role(request.user, stack.team, Role.OPERATOR)
    return stack


def _started(request: HtmxHttpRequest, stack: Stack, start) -> HttpResponse:
    """Run an action that starts a deployment; its error goes back to the stack page."""
    try:
        deployment = start()
    except ActionError as error:
        messages.error(request, str(error))
        return redirect("stack_detail", pk=stack.pk)
    messages.success(request, f"{deployment.get_action_display()} started.")
    return redirect("deployment_detail", pk=deployment.pk)


@login_required
@require_POST
def stack_restart(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = _operable_stack(request, pk)
    service = request.POST.get("service", "")
    return _started(
        request,
        stack,
        lambda: do_restart_stack(stack, service=service, user=request.user, request=request),
    )


@login_required
def stack_upgrade(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Choose a version line, see the diff of the files it writes, then apply it."""
    stack = _operable_stack(request, pk)
    form = UpgradeForm(request.POST or request.GET or None, initial_line=stack.version_line)
    diff = None
    if form.is_bound and form.is_valid():
        line = form.cleaned_data["version_line"]
        if request.method == "POST":
            try:
                deployment = do_upgrade_stack(
                    stack, version_line=line, user=request.user, request=request
                )
            except ActionError as error:
                messages.error(request, str(error))
                return redirect("stack_detail", pk=stack.pk)
            except ValidationError as error:
                add_action_errors(form, error)
            else:
                messages.success(request, "Upgrade started.")
                return redirect("deployment_detail", pk=deployment.pk)
        else:
            # A copy on the new line, never saved: only to render what it would write.
            preview = copy.copy(stack)
            preview.version_line = line
            diff = files_diff(stack.rendered_files or {}, shown_files(preview))
    context = {"stack": stack, "form": form, "diff": diff}
    return render(request, "deployments/stack_upgrade.html", context)


@login_required
@require_POST
def stack_rollback(request: HtmxHttpRequest, pk: int, deployment_pk: int) -> HttpResponse:
    stack = _operable_stack(request, pk)
    target = Deployment.objects.filter(stack=stack, pk=deployment_pk).first()
    if target is None:
        messages.error(request, "That deployment is not one of this stack's.")
        return redirect("stack_detail", pk=stack.pk)
    return _started(
        request,
        stack,
        lambda: do_rollback_stack(stack, to=target, user=request.user, request=request),
    )


@login_required
def stack_teardown(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Confirm, then remove the stack's containers; its data only when asked for by name."""
    stack = _operable_stack(request, pk)
    form = TeardownForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        try:
            deployment = do_teardown_stack(
                stack,
                delete_data=form.cleaned_data["delete_data"],
                confirm_name=form.cleaned_data["confirm_name"],
                user=request.user,
                request=request,
            )
        except ActionError as error:
            messages.error(request, str(error))
            return redirect("stack_detail", pk=stack.pk)
        except ValidationError as error:
            add_action_errors(form, error)
        else:
            messages.success(request, "Tear-down started.")
            return redirect("deployment_detail", pk=deployment.pk)
    return render(request, "deployments/stack_teardown.html", {"stack": stack, "form": form})


@login_required
@require_POST
def stack_refresh_services(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Read the containers' state from the server now (a few seconds over SSH)."""
    stack = _operable_stack(request, pk)
    error = ""
    try:
        do_refresh_services(stack, user=request.user, request=request)
    except ActionError as exc:
        error = str(exc)
    context = {
        "stack": stack,
        "services": stack.services.all(),
        "services_error": error,
        "can_operate": access.has_role(request.user, stack.team, Role.OPERATOR),
    }
    if wants_partial(request):
        return render(request, "deployments/stack_detail.html#services", context)
    if error:
        messages.error(request, error)
    return redirect("stack_detail", pk=stack.pk)
