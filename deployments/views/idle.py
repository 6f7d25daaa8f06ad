"""The idle guard on the server page: its settings (owners), "Keep running" (anyone of the
team) and "Start again" (operators). Each answers with the server page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.idle import do_keep_running, do_save_idle_settings, do_start_again, guard_of
from ..choices import Role
from ..forms.idle import IdleGuardForm
from ..models import Server
from .common import HtmxHttpRequest, form_data

SECTION = "#idle-guard"


def _server(request: HtmxHttpRequest, pk: int) -> Server:
    return access.get_visible_or_404(Server.objects.select_related("team"), request.user, pk=pk)


def _back(server: Server) -> HttpResponse:
    response = redirect("server_detail", pk=server.pk)
    response["Location"] += SECTION
    return response


@login_required
@require_POST
def server_idle_settings(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    server = _server(request, pk)
    access.require_role(request.user, server.team, Role.OWNER)
    form = IdleGuardForm(form_data(request), instance=guard_of(server))
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else ""
            for error in errors:
                messages.error(request, f"{label}: {error}" if label else error)
        return _back(server)
    do_save_idle_settings(server, data=form.cleaned_data, user=request.user, request=request)
    messages.success(request, gettext("The idle guard's settings are saved."))
    return _back(server)


@login_required
@require_POST
def server_idle_keep_running(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    server = _server(request, pk)
    try:
        do_keep_running(server, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, gettext("The server keeps running: the idle time starts again now.")
        )
    return _back(server)


@login_required
@require_POST
def server_idle_start_again(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    server = _server(request, pk)
    access.require_role(request.user, server.team, Role.OPERATOR)
    try:
        run = do_start_again(server, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
        return _back(server)
    return redirect("run_detail", pk=run.pk)
