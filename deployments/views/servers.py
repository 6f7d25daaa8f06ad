import math
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from .. import access, costs
from ..actions import ActionError
from ..actions.servers import (
    do_accept_host_key,
    do_check_server,
    do_create_server,
    do_prepare_server,
    do_update_server,
)
from ..choices import PipelineKind, Role
from ..forms.servers import ServerForm
from ..models import Deployment, PipelineRun, Server
from ..servers import gpu_history
from .common import (
    HtmxHttpRequest,
    add_action_errors,
    form_data,
    render_page_or_partial,
    wants_partial,
)

RECENT_DEPLOYMENTS = 10
# "Check now" sends the page back with the time it was asked for; the page follows the check
# until the server was checked after that, for at most this long.
CHECK_PARAM = "check_requested"
CHECK_FOLLOW_FOR = timedelta(minutes=3)


def requested_check(request: HtmxHttpRequest) -> datetime | None:
    """When the check this page follows was asked for; None when it follows none."""
    try:
        stamp = float(request.GET.get(CHECK_PARAM, ""))
        return datetime.fromtimestamp(stamp, tz=timezone.get_current_timezone())
    except (ValueError, OverflowError, OSError):
        return None


def check_progress(server: Server, requested: datetime | None, now: datetime) -> str:
    """ "checking" while a check asked for at `requested` has not finished, "overdue" once it is
    past CHECK_FOLLOW_FOR without one, else "" (nothing to follow, or done)."""
    if requested is None or requested > now:
        return ""
    if server.last_checked_at is not None and server.last_checked_at >= requested:
        return ""
    return "checking" if now - requested < CHECK_FOLLOW_FOR else "overdue"


GPU_SPAN_PARAM = "gpu_span"


def gpu_spans(request: HtmxHttpRequest) -> list[tuple[str, str, str]]:
    """(key, label, query string) of each span the GPU chart offers; the rest of the page's
    query (a check it follows) is kept."""
    labels = {
        "6h": gettext("6 hours"),
        "24h": gettext("24 hours"),
        "7d": gettext("7 days"),
        "30d": gettext("30 days"),
    }
    spans = []
    for key in gpu_history.SPANS:
        query = request.GET.copy()
        query[GPU_SPAN_PARAM] = key
        spans.append((key, labels[key], query.urlencode()))
    return spans


def gpu_span_phrase(key: str) -> str:
    return {
        "6h": gettext("in the last 6 hours"),
        "24h": gettext("in the last 24 hours"),
        "7d": gettext("in the last 7 days"),
        "30d": gettext("in the last 30 days"),
    }[key]


@login_required
def server_list(request: HtmxHttpRequest) -> HttpResponse:
    servers = access.visible(
        Server.objects.select_related("team").annotate(stack_count=Count("stacks")), request.user
    ).order_by("team__name", "name")
    context = {
        "servers": servers,
        "can_add": access.team_ids(request.user, Role.OPERATOR) != [],
    }
    return render(request, "deployments/server_list.html", context)


@login_required
def server_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    server = access.get_visible_or_404(Server.objects.select_related("team"), request.user, pk=pk)
    deployments = Deployment.objects.filter(stack__server=server).select_related(
        "stack__server", "user", "run"
    )[:RECENT_DEPLOYMENTS]
    runs = PipelineRun.objects.filter(
        team_id=server.team_id, kind=PipelineKind.SERVER_PREPARE, params__server_id=server.pk
    ).select_related("created_by", "deployment")[:RECENT_DEPLOYMENTS]
    context = {
        "server": server,
        "stacks": server.stacks.all(),
        "deployments": deployments,
        "runs": runs,
        "can_edit": access.has_role(request.user, server.team, Role.OPERATOR),
        "can_own": access.has_role(request.user, server.team, Role.OWNER),
        "check": check_progress(server, requested_check(request), timezone.now()),
        "cost": costs.server_cost(server, timezone.now()),
    }
    if not wants_partial(request):  # the checking block's polls leave the chart alone
        context["gpu_chart"] = gpu_history.chart(server, request.GET.get(GPU_SPAN_PARAM))
        context["gpu_spans"] = gpu_spans(request)
        context["gpu_span_phrase"] = gpu_span_phrase(context["gpu_chart"].span)
    return render_page_or_partial(
        request, "deployments/server_detail.html", "server-state", context
    )


@login_required
def server_create(request: HtmxHttpRequest) -> HttpResponse:
    teams = list(access.teams(request.user, Role.OPERATOR))
    if not teams:
        raise PermissionDenied(gettext("Adding a server needs the operator role in a team."))
    form = ServerForm(form_data(request), user=request.user, teams=teams)
    if request.method == "POST" and form.is_valid():
        try:
            server = do_create_server(
                team=form.chosen_team,
                data=form.cleaned_data,
                user=request.user,
                request=request,
            )
        except ValidationError as error:
            add_action_errors(form, error)
        else:
            messages.success(
                request, gettext("Server “%(server)s” added.") % {"server": server.name}
            )
            return redirect("server_detail", pk=server.pk)
    return render(request, "deployments/server_form.html", {"form": form, "server": None})


@login_required
def server_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    server = access.get_visible_or_404(Server.objects.select_related("team"), request.user, pk=pk)
    access.require_role(request.user, server.team, Role.OPERATOR)
    # The form validates a copy, so the page keeps showing the stored name until saved.
    form = ServerForm(
        form_data(request), instance=Server.objects.get(pk=server.pk), user=request.user
    )
    if request.method == "POST" and form.is_valid():
        try:
            changed = do_update_server(
                server, data=form.cleaned_data, user=request.user, request=request
            )
        except ValidationError as error:
            add_action_errors(form, error)
        else:
            if changed:
                messages.success(
                    request, gettext("Server “%(server)s” saved.") % {"server": server.name}
                )
            else:
                messages.info(request, gettext("Nothing changed."))
            return redirect("server_detail", pk=server.pk)
    return render(request, "deployments/server_form.html", {"form": form, "server": server})


def _server_action(request, pk: int, action, done: str) -> HttpResponse:
    server = access.get_visible_or_404(Server.objects.select_related("team"), request.user, pk=pk)
    try:
        result = action(server, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
        return redirect("server_detail", pk=server.pk)
    messages.success(request, done)
    if isinstance(result, PipelineRun):
        return redirect("run_detail", pk=result.pk)
    return redirect("server_detail", pk=server.pk)


@login_required
@require_POST
def server_check(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Queue a check, then show the server's page following it until its facts are in."""
    server = access.get_visible_or_404(Server.objects.select_related("team"), request.user, pk=pk)
    asked = timezone.now()
    try:
        do_check_server(server, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
        return redirect("server_detail", pk=server.pk)
    messages.success(request, gettext("Checking the server: what it finds shows here."))
    # Rounded down, so that the check this queues always counts as after it.
    query = urlencode({CHECK_PARAM: f"{math.floor(asked.timestamp() * 1000) / 1000:.3f}"})
    return redirect(f"{reverse('server_detail', args=[server.pk])}?{query}")


@login_required
@require_POST
def server_prepare(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _server_action(request, pk, do_prepare_server, gettext("Preparing the server."))


@login_required
@require_POST
def server_accept_host_key(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _server_action(
        request,
        pk,
        do_accept_host_key,
        gettext("The new host key is pinned: the panel connects again."),
    )
