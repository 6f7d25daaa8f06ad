"""Teams and their members. Everyone in a team sees its members; owners change them."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.teams import do_add_member, do_change_role, do_remove_member
from ..choices import Role
from ..forms.teams import AddMemberForm, ChangeRoleForm
from ..models import Membership, Team
from .common import HtmxHttpRequest, form_data


def _team(request, pk: int) -> Team:
    # A team the user is not in answers 404, like any other team's object.
    return get_object_or_404(access.teams(request.user), pk=pk)


def _membership(request, team: Team, membership_pk: int) -> Membership:
    return access.get_visible_or_404(
        Membership.objects.select_related("team", "user"),
        request.user,
        pk=membership_pk,
        team=team,
    )


@login_required
def team_list(request: HtmxHttpRequest) -> HttpResponse:
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("team")
        .annotate(member_count=Count("team__memberships"))
        .order_by("team__name")
    )
    return render(request, "deployments/team_list.html", {"memberships": memberships})


def _render_detail(request, team: Team, add_form: AddMemberForm | None = None) -> HttpResponse:
    is_owner = access.has_role(request.user, team, Role.OWNER)
    context = {
        "team": team,
        "members": team.memberships.select_related("user").order_by("user__username"),
        "is_owner": is_owner,
        "my_role": access.role_in(request.user, team),
        "add_form": add_form or (AddMemberForm(team=team) if is_owner else None),
        "roles": Role.choices,
    }
    return render(request, "deployments/team_detail.html", context)


@login_required
def team_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _render_detail(request, _team(request, pk))


@login_required
@require_POST
def team_member_add(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    team = _team(request, pk)
    access.require_role(request.user, team, Role.OWNER)
    form = AddMemberForm(form_data(request), team=team)
    if not form.is_valid():
        return _render_detail(request, team, add_form=form)
    try:
        membership = do_add_member(
            team,
            member=form.cleaned_data["username"],
            role=form.cleaned_data["role"],
            user=request.user,
            request=request,
        )
    except ActionError as error:
        form.add_error("username", str(error))
        return _render_detail(request, team, add_form=form)
    messages.success(
        request, f"{membership.user.get_username()} added as {membership.get_role_display()}."
    )
    return redirect("team_detail", pk=team.pk)


@login_required
@require_POST
def team_member_role(request: HtmxHttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    team = _team(request, pk)
    membership = _membership(request, team, membership_pk)
    access.require_role(request.user, team, Role.OWNER)
    form = ChangeRoleForm(form_data(request))
    if not form.is_valid():
        messages.error(request, "Choose one of the roles: viewer, operator or owner.")
        return redirect("team_detail", pk=team.pk)
    try:
        membership = do_change_role(
            membership, role=form.cleaned_data["role"], user=request.user, request=request
        )
    except ActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            f"{membership.user.get_username()} is now {membership.get_role_display()}.",
        )
    return redirect("team_detail", pk=team.pk)


@login_required
@require_POST
def team_member_remove(request: HtmxHttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    team = _team(request, pk)
    membership = _membership(request, team, membership_pk)
    access.require_role(request.user, team, Role.OWNER)
    try:
        do_remove_member(membership, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
        return redirect("team_detail", pk=team.pk)
    messages.success(request, f"{membership.user.get_username()} removed from {team}.")
    if membership.user_id == request.user.pk:
        return redirect("team_list")
    return redirect("team_detail", pk=team.pk)
