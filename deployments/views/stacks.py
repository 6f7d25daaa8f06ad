import copy
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Max
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from .. import access
from ..actions import ActionError
from ..actions.stacks import (
    RevealRefused,
    already_current_message,
    do_create_stack,
    do_deploy_stack,
    do_refresh_services,
    do_restart_stack,
    do_reveal_login,
    do_rollback_stack,
    do_teardown_stack,
    do_upgrade_stack,
    offered_actions,
    service_addresses,
)
from ..choices import Role
from ..forms.stacks import StackForm, TeardownForm, UpgradeForm
from ..models import Deployment, Stack
from ..models.backups import backup_settings
from ..stacks.files import files_diff, shown_files
from ..tasks import read_stack_services, services_unread_key
from .common import HtmxHttpRequest, add_action_errors, form_data, wants_partial
from .launches import launch_rows

RECENT_DEPLOYMENTS = 10
RECENT_LAUNCHES = 20
# The services table on the stack's page reads itself again this often, and the server's
# containers are read for it at most this often per stack, however many pages are open.
SERVICES_POLL_SECONDS = 20


@login_required
def stack_list(request: HtmxHttpRequest) -> HttpResponse:
    stacks = access.visible(
        Stack.objects.select_related("team", "server").annotate(service_count=Count("services")),
        request.user,
    ).order_by("team__name", "server__name", "name")
    context = {"stacks": stacks, "can_add": bool(access.team_ids(request.user, Role.OPERATOR))}
    return render(request, "deployments/stack_list.html", context)


def _detail_context(request: HtmxHttpRequest, stack: Stack) -> dict:
    # The files a deploy would write now, secrets masked: what the team reviews.
    files = shown_files(stack)
    offers = offered_actions(stack)
    return {
        "stack": stack,
        "active": stack.active_deployment(),
        "offers": offers,
        # Where to open the services: once a deploy wrote the files, until a teardown.
        "addresses": service_addresses(stack) if offers.restart else [],
        "services": stack.services.all(),
        "services_poll_seconds": SERVICES_POLL_SECONDS,
        "deployments": stack.deployments.select_related("user", "run")[:RECENT_DEPLOYMENTS],
        "launches": launch_rows(stack.model_launches.all(), RECENT_LAUNCHES),
        "files": sorted(files.items()),
        "can_operate": access.has_role(request.user, stack.team, Role.OPERATOR),
        "can_reveal": access.has_role(request.user, stack.team, Role.OWNER),
        "no_password": not request.user.has_usable_password(),
    }


@login_required
def stack_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = access.get_visible_or_404(
        Stack.objects.select_related("team", "server"), request.user, pk=pk
    )
    return render(request, "deployments/stack_detail.html", _detail_context(request, stack))


@never_cache
@login_required
@require_POST
def stack_reveal_login(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """An owner's own password again, then one service's login: in this answer only (never
    in a message, the session or a cache), so a reload hides it."""
    stack = access.get_visible_or_404(
        Stack.objects.select_related("team", "server"), request.user, pk=pk
    )
    access.require_role(request.user, stack.team, Role.OWNER)
    service = request.POST.get("service", "")
    revealed, error = None, ""
    try:
        revealed = do_reveal_login(
            stack,
            service=service,
            password=request.POST.get("password", ""),
            user=request.user,
            request=request,
        )
    except RevealRefused as refused:
        error = str(refused)
    context = {
        **_detail_context(request, stack),
        "revealed": revealed,
        "login_service": service,
        "login_error": error,
    }
    row = next((row for row in context["addresses"] if row.service == service), None)
    if row is None and error:
        # No service box to say it in (the stack is not deployed, or there is no such service).
        messages.error(request, error)
    if wants_partial(request) and row is not None:
        context["row"] = row
        return render(request, "deployments/stack_detail.html#service-login", context)
    return render(request, "deployments/stack_detail.html", context)


@login_required
def stack_create(request: HtmxHttpRequest) -> HttpResponse:
    if not access.team_ids(request.user, Role.OPERATOR):
        raise PermissionDenied(_("Adding a stack needs the operator role in a team."))
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
            messages.success(
                request,
                _("Stack “%(stack)s” created with its own secrets.") % {"stack": stack.name},
            )
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
    messages.success(request, _("Deployment started."))
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
    messages.success(
        request, _("%(action)s started.") % {"action": deployment.get_action_display()}
    )
    return redirect("deployment_detail", pk=deployment.pk)


@login_required
def stack_restart(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET asks first (restarting every service interrupts whoever uses the stack); the POST
    restarts one service, or all of them."""
    stack = _operable_stack(request, pk)
    if request.method != "POST":
        return render(request, "deployments/stack_restart.html", {"stack": stack})
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
    if not offered_actions(stack).upgrade:
        messages.error(request, _("This stack is torn down: deploy it first, then upgrade it."))
        return redirect("stack_detail", pk=stack.pk)
    form = UpgradeForm(request.POST or request.GET or None, initial_line=stack.version_line)
    diff = None
    current = False
    if form.is_bound and form.is_valid():
        line = form.cleaned_data["version_line"]
        # The line already running: the page says so instead of offering to apply it (its
        # diff still shows whether the files a deploy writes now differ from the last ones).
        current = line == stack.version_line and request.method != "POST"
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
                messages.success(request, _("Upgrade started."))
                return redirect("deployment_detail", pk=deployment.pk)
        else:
            # A copy on the new line, never saved: only to render what it would write.
            preview = copy.copy(stack)
            preview.version_line = line
            diff = files_diff(stack.rendered_files or {}, shown_files(preview))
    context = {
        "stack": stack,
        "form": form,
        "diff": diff,
        "current_message": already_current_message(stack) if current else "",
        "backs_up_first": backup_settings(stack).before_upgrade,
    }
    return render(request, "deployments/stack_upgrade.html", context)


@login_required
@require_POST
def stack_rollback(request: HtmxHttpRequest, pk: int, deployment_pk: int) -> HttpResponse:
    stack = _operable_stack(request, pk)
    target = Deployment.objects.filter(stack=stack, pk=deployment_pk).first()
    if target is None:
        messages.error(request, _("That deployment is not one of this stack's."))
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
    offers = offered_actions(stack)
    if request.method != "POST" and not (offers.teardown or offers.delete_data):
        messages.error(request, _("This stack runs nothing to tear down: deploy it first."))
        return redirect("stack_detail", pk=stack.pk)
    # A stack torn down already keeps only its data: the page is for deleting it.
    form = TeardownForm(form_data(request), initial={"delete_data": offers.delete_data})
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
            messages.success(request, _("Tear-down started."))
            return redirect("deployment_detail", pk=deployment.pk)
    context = {"stack": stack, "form": form, "data_only": offers.delete_data}
    return render(request, "deployments/stack_teardown.html", context)


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
    if wants_partial(request):
        context = _services_context(request, stack, services_error=error)
        return render(request, "deployments/stack_detail.html#services", context)
    if error:
        messages.error(request, error)
    return redirect("stack_detail", pk=stack.pk)


def _services_context(request: HtmxHttpRequest, stack: Stack, **extra) -> dict:
    return {
        "stack": stack,
        "services": stack.services.all(),
        "services_poll_seconds": SERVICES_POLL_SECONDS,
        "can_operate": access.has_role(request.user, stack.team, Role.OPERATOR),
        **extra,
    }


@login_required
def stack_services_table(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The services table alone, which the stack's page reads again every
    SERVICES_POLL_SECONDS: whoever may see the stack sees its services' state as last read.
    Opened as a page, it is the stack's page at its services."""
    stack = access.get_visible_or_404(
        Stack.objects.select_related("team", "server"), request.user, pk=pk
    )
    if not wants_partial(request):
        return redirect(f"{reverse('stack_detail', args=[stack.pk])}#services")
    unread = _read_services_when_stale(stack)
    context = _services_context(request, stack, services_unread=unread)
    return render(request, "deployments/stack_detail.html#services", context)


def _read_services_when_stale(stack: Stack) -> str:
    """Have a worker read the containers of a deployed stack whose services were last seen
    over SERVICES_POLL_SECONDS ago, so the table's "last seen" follows the server rather than
    the last press of Refresh; return why the last read failed, if it did.

    Nothing is read here and no row changes: a server that does not answer would hold the
    request for the SSH timeout. The worker's read records what the panel saw, an observation,
    not an action, so it is not audited. Open pages share one read per stack in each interval
    (the first poll queues it, all are told why the last one failed), and nothing is read
    while an action on the stack runs: its run reads them."""
    if not offered_actions(stack).restart or stack.active_deployment() is not None:
        return ""
    newest = stack.services.aggregate(newest=Max("last_seen_at"))["newest"]
    if newest and timezone.now() - newest < timedelta(seconds=SERVICES_POLL_SECONDS):
        return ""
    try:
        if cache.add(f"stack-services-read:{stack.pk}", "", SERVICES_POLL_SECONDS):
            # The reason outlives the next read, so the table keeps saying it while reads fail.
            read_stack_services.delay_on_commit(stack.pk, 3 * SERVICES_POLL_SECONDS)
        reason = cache.get(services_unread_key(stack.pk))
    except (RedisError, KombuOperationalError):
        # Redis restarting: the rows are shown as they are, and the next poll tries again.
        return _("The panel could not reach its Redis: the containers are shown as last read.")
    if not reason:
        return ""
    return _("Could not read the containers from %(server)s: %(error)s") % {
        "server": stack.server.name,
        "error": reason,
    }
