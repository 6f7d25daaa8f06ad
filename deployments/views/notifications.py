"""A team's notification channels: the list (every member, without secrets), adding, editing
and deleting one (owners), and sending a test (operators and owners), whose result the page
says in words."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.notifications import (
    do_add_channel,
    do_delete_channel,
    do_edit_channel,
    do_test_channel,
)
from ..choices import Role
from ..forms.notifications import ChannelForm
from ..models import NotificationChannel, Team
from .common import HtmxHttpRequest, form_data

LIST_TEMPLATE = "deployments/notification_list.html"
FORM_TEMPLATE = "deployments/notification_form.html"
DELETE_TEMPLATE = "deployments/notification_confirm_delete.html"
SHOWN_ONCE_TEMPLATE = "deployments/notification_secret.html"


def _team(request: HtmxHttpRequest, pk: int) -> Team:
    # A team the user is not in answers 404, like any other team's object.
    return get_object_or_404(access.teams(request.user), pk=pk)


def _channel(request: HtmxHttpRequest, pk: int, role: Role) -> NotificationChannel:
    channel = access.get_visible_or_404(
        NotificationChannel.objects.select_related("team"), request.user, pk=pk
    )
    access.require_role(request.user, channel.team_id, role)
    return channel


def _show_secret_once(request, channel: NotificationChannel, secret: str) -> HttpResponse:
    """The signing secret, in this one answer only: not in a message, not in the session."""
    response = render(request, SHOWN_ONCE_TEMPLATE, {"channel": channel, "secret": secret})
    response["Cache-Control"] = "no-store"
    return response


@login_required
def notification_list(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    team = _team(request, pk)
    context = {
        "team": team,
        "channels": NotificationChannel.objects.filter(team=team),
        "can_manage": access.has_role(request.user, team, Role.OWNER),
        "can_test": access.has_role(request.user, team, Role.OPERATOR),
    }
    return render(request, LIST_TEMPLATE, context)


def _save_form(request, form: ChannelForm, team: Team, channel, save, done: str) -> HttpResponse:
    """The tail both forms share: save a valid POST, show a new secret once or say it was done,
    and otherwise the form again with the action's refusal as its error."""
    if request.method == "POST" and form.is_valid():
        try:
            channel, secret = save()
        except ActionError as error:
            form.add_error(None, str(error))
        else:
            if secret:
                return _show_secret_once(request, channel, secret)
            messages.success(request, done % {"name": channel.name})
            return redirect("notification_list", pk=team.pk)
    return render(request, FORM_TEMPLATE, {"form": form, "team": team, "channel": channel})


@login_required
@never_cache
def notification_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    team = _team(request, pk)
    access.require_role(request.user, team, Role.OWNER)
    form = ChannelForm(form_data(request), team=team)

    def save():
        return do_add_channel(
            team,
            kind=form.cleaned_data["kind"],
            data=form.channel_data(),
            user=request.user,
            request=request,
        )

    return _save_form(request, form, team, None, save, _("Channel “%(name)s” added."))


@login_required
@never_cache
def notification_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    channel = _channel(request, pk, Role.OWNER)
    team = channel.team
    form = ChannelForm(form_data(request), team=team, channel=channel)

    def save():
        secret = do_edit_channel(
            channel,
            data=form.channel_data(),
            new_secret=form.cleaned_data.get("new_secret", False),
            clear_secret=form.cleaned_data.get("clear_secret", False),
            user=request.user,
            request=request,
        )
        return channel, secret

    return _save_form(request, form, team, channel, save, _("Channel “%(name)s” saved."))


@login_required
def notification_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    channel = _channel(request, pk, Role.OWNER)
    team = channel.team
    if request.method == "POST":
        name = channel.name
        do_delete_channel(channel, user=request.user, request=request)
        messages.success(request, _("Channel “%(name)s” deleted.") % {"name": name})
        return redirect("notification_list", pk=team.pk)
    return render(request, DELETE_TEMPLATE, {"channel": channel, "team": team})


@login_required
@require_POST
def notification_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    channel = _channel(request, pk, Role.OPERATOR)
    outcome = do_test_channel(channel, user=request.user, request=request)
    if outcome.ok:
        messages.success(
            request,
            _("Test sent to “%(name)s”: %(detail)s")
            % {"name": channel.name, "detail": outcome.detail},
        )
    else:
        messages.error(
            request,
            _("The test to “%(name)s” was not delivered: %(detail)s")
            % {"name": channel.name, "detail": outcome.detail},
        )
    return redirect("notification_list", pk=channel.team_id)
