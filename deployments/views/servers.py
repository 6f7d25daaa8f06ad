import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render

from .. import access
from ..actions.servers import do_create_server, do_update_server
from ..choices import Role
from ..forms import ServerForm
from ..models import Deployment, Server
from .common import HtmxHttpRequest, add_action_errors, form_data

RECENT_DEPLOYMENTS = 10


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


def _facts_rows(facts: dict) -> list[tuple[str, str, bool]]:
    """(name, text, is_structured) for each detected fact; nested ones shown as JSON."""
    rows = []
    for name, value in facts.items():
        if isinstance(value, dict | list):
            rows.append((str(name), json.dumps(value, indent=2, sort_keys=True), True))
        else:
            rows.append((str(name), str(value), False))
    return rows


@login_required
def server_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    server = access.get_visible_or_404(Server.objects.select_related("team"), request.user, pk=pk)
    deployments = Deployment.objects.filter(stack__server=server).select_related(
        "stack", "user", "run"
    )[:RECENT_DEPLOYMENTS]
    context = {
        "server": server,
        "facts": _facts_rows(server.facts or {}),
        "stacks": server.stacks.all(),
        "deployments": deployments,
        "can_edit": access.has_role(request.user, server.team, Role.OPERATOR),
    }
    return render(request, "deployments/server_detail.html", context)


@login_required
def server_create(request: HtmxHttpRequest) -> HttpResponse:
    teams = list(access.teams(request.user, Role.OPERATOR))
    if not teams:
        raise PermissionDenied("Adding a server needs the operator role in a team.")
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
            messages.success(request, f"Server “{server.name}” added.")
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
                messages.success(request, f"Server “{server.name}” saved.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("server_detail", pk=server.pk)
    return render(request, "deployments/server_form.html", {"form": form, "server": server})
