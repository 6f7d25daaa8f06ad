"""Teams and their members. Everyone in a team sees its members; owners invite people and
change roles; any user may start a team."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import access, costs
from ..actions import ActionError, invitations
from ..actions.teams import (
    do_change_role,
    do_create_team,
    do_remove_member,
    do_set_budget,
    do_set_owner_two_factor,
)
from ..choices import Role
from ..forms.teams import (
    BudgetForm,
    ChangeRoleForm,
    InvitationForm,
    OwnerTwoFactorForm,
    TeamForm,
)
from ..models import Invitation, Membership, Team
from .common import HtmxHttpRequest, form_data
from .invitations import invitation_link


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
def team_list(request: HtmxHttpRequest, team_form: TeamForm | None = None) -> HttpResponse:
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("team")
        .annotate(member_count=Count("team__memberships"))
        .order_by("team__name")
    )
    context = {"memberships": memberships, "team_form": team_form or TeamForm()}
    return render(request, "deployments/team_list.html", context)


@login_required
@require_POST
def team_create(request: HtmxHttpRequest) -> HttpResponse:
    # Any user may start a team: it holds nothing of anyone else's until they add it.
    form = TeamForm(form_data(request))
    if not form.is_valid():
        return team_list(request, team_form=form)
    try:
        team = do_create_team(name=form.cleaned_data["name"], user=request.user, request=request)
    except ActionError as error:
        form.add_error("name", str(error))
        return team_list(request, team_form=form)
    messages.success(request, _("Team %(team)s created: you are its owner.") % {"team": team})
    return redirect("team_detail", pk=team.pk)


def _render_detail(
    request,
    team: Team,
    *,
    invitation_form: InvitationForm | None = None,
    created: dict | None = None,
    budget_form: BudgetForm | None = None,
    status: int = 200,
) -> HttpResponse:
    is_owner = access.has_role(request.user, team, Role.OWNER)
    context = {
        "team": team,
        "members": team.memberships.select_related("user").order_by("user__username"),
        "is_owner": is_owner,
        "my_role": access.role_in(request.user, team),
        "needs_two_factor": access.owner_needs_two_factor(request.user, team),
        "roles": Role.choices,
        "budget": costs.team_budget(team, team.servers.all(), timezone.now()),
    }
    if is_owner:
        context.update(
            invitation_form=invitation_form or InvitationForm(),
            invitations=invitations.pending(team),
            created=created,
            two_factor_form=OwnerTwoFactorForm(
                initial={"require_owner_two_factor": team.require_owner_two_factor}
            ),
            budget_form=budget_form or BudgetForm(instance=team),
        )
    return render(request, "deployments/team_detail.html", context, status=status)


@login_required
def team_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _render_detail(request, _team(request, pk))


@login_required
@require_POST
def team_invitation_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    team = _team(request, pk)
    access.require_role(request.user, team, Role.OWNER)
    form = InvitationForm(form_data(request))
    if not form.is_valid():
        return _render_detail(request, team, invitation_form=form)
    invitation, token = invitations.do_create_invitation(
        team,
        role=form.cleaned_data["role"],
        email=form.cleaned_data["email"],
        user=request.user,
        request=request,
    )
    url = invitation_link(request, token)
    mailed = invitations.mail_invitation(invitation, url)
    # The link is in this one answer and nowhere else: not in a message, not in the session.
    created = {"invitation": invitation, "url": url, "mailed": mailed}
    return _render_detail(request, team, created=created)


@login_required
@require_POST
def team_invitation_revoke(request: HtmxHttpRequest, pk: int, invitation_pk: int) -> HttpResponse:
    team = _team(request, pk)
    access.require_role(request.user, team, Role.OWNER)
    invitation = get_object_or_404(Invitation, pk=invitation_pk, team=team)
    if invitations.do_revoke_invitation(invitation, user=request.user, request=request):
        messages.success(request, _("The invitation is revoked: its link no longer works."))
    else:
        messages.error(request, _("That invitation was already accepted, revoked or expired."))
    return redirect("team_detail", pk=team.pk)


@login_required
@require_POST
def team_owner_two_factor(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    team = _team(request, pk)
    access.require_role(request.user, team, Role.OWNER)
    form = OwnerTwoFactorForm(form_data(request))
    form.is_valid()  # a checkbox: absent is off
    required = bool(form.cleaned_data.get("require_owner_two_factor"))
    try:
        team = do_set_owner_two_factor(team, required=required, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
    else:
        if team.require_owner_two_factor:
            messages.success(request, _("Owners of this team now need two-factor authentication."))
        else:
            messages.success(request, _("Owners of this team no longer need two-factor."))
    return redirect("team_detail", pk=team.pk)


@login_required
@require_POST
def team_budget(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    team = _team(request, pk)
    access.require_role(request.user, team, Role.OWNER)
    form = BudgetForm(form_data(request), instance=Team.objects.get(pk=team.pk))
    if not form.is_valid():
        return _render_detail(request, team, budget_form=form)
    team = do_set_budget(team, data=form.cleaned_data, user=request.user, request=request)
    messages.success(request, _("The team's monthly budget is saved."))
    return redirect("team_detail", pk=team.pk)


@login_required
@require_POST
def team_member_role(request: HtmxHttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    team = _team(request, pk)
    membership = _membership(request, team, membership_pk)
    access.require_role(request.user, team, Role.OWNER)
    form = ChangeRoleForm(form_data(request))
    if not form.is_valid():
        messages.error(request, _("Choose one of the roles: viewer, operator or owner."))
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
            _("%(member)s is now %(role)s.")
            % {"member": membership.user.get_username(), "role": membership.get_role_display()},
        )
    return redirect("team_detail", pk=team.pk)


@login_required
def team_member_remove(request: HtmxHttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    """GET asks first, on a page of its own; the POST removes the member."""
    team = _team(request, pk)
    membership = _membership(request, team, membership_pk)
    access.require_role(request.user, team, Role.OWNER)
    if request.method != "POST":
        context = {"team": team, "membership": membership}
        return render(request, "deployments/team_member_remove.html", context)
    try:
        do_remove_member(membership, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
        return redirect("team_detail", pk=team.pk)
    messages.success(
        request,
        _("%(member)s removed from %(team)s.")
        % {"member": membership.user.get_username(), "team": team},
    )
    if membership.user_id == request.user.pk:
        return redirect("team_list")
    return redirect("team_detail", pk=team.pk)
