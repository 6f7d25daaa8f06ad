"""Teams and membership: who is in a team, and with which role. Only owners change it; people
join through invitations (actions/invitations.py)."""

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from controlpanel.accounts import has_two_factor

from .. import access, audit
from ..choices import Role
from ..models import Membership, Team
from . import ActionError


def _other_owners(membership: Membership):
    # Locks the team's owner rows so that two owners demoting each other at once
    # cannot leave the team without one.
    return (
        Membership.objects.select_for_update()
        .filter(team_id=membership.team_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
    )


def _last_owner_error(membership: Membership, doing: str) -> ActionError:
    names = {"member": membership.user.get_username(), "team": membership.team}
    if doing == "demote":
        message = _(
            "Cannot demote %(member)s: they are the last owner of %(team)s. "
            "Make another member an owner first."
        )
    else:
        message = _(
            "Cannot remove %(member)s: they are the last owner of %(team)s. "
            "Make another member an owner first."
        )
    return ActionError(message % names)


def do_create_team(*, name: str, user, request=None) -> Team:
    """A new team, owned by the user who creates it."""
    try:
        with transaction.atomic():
            team = Team.objects.create(name=name)
            Membership.objects.create(team=team, user=user, role=Role.OWNER)
            audit.record("team.create", actor=user, request=request, target=team, team=team)
    except IntegrityError as error:
        raise ActionError(_("A team named “%(name)s” exists already.") % {"name": name}) from error
    return team


def do_set_owner_two_factor(team: Team, *, required: bool, user, request=None) -> Team:
    """Require (or stop requiring) two-factor authentication of the team's owners. Only an
    owner who has it may turn the rule on: no one locks out the owners they are one of."""
    access.require_role(user, team, Role.OWNER)
    if required and not has_two_factor(user):
        raise ActionError(
            _(
                "Turn on two-factor authentication for your own account first (under Account): "
                "then you can ask it of the team's owners."
            )
        )
    with transaction.atomic():
        current = Team.objects.select_for_update().get(pk=team.pk)
        if current.require_owner_two_factor == required:
            return current
        current.require_owner_two_factor = required
        current.save(update_fields=["require_owner_two_factor"])
        audit.record(
            "team.owner_two_factor",
            actor=user,
            request=request,
            target=current,
            details={"required": required},
        )
    return current


BUDGET_FIELDS = ("monthly_budget", "budget_currency", "budget_warning_percent")


def do_set_budget(team: Team, *, data: dict, user, request=None) -> Team:
    """Set the team's monthly budget, its currency and the share at which the panel warns.
    Owners only."""
    access.require_role(user, team, Role.OWNER)
    with transaction.atomic():
        current = Team.objects.select_for_update().get(pk=team.pk)
        changed = [
            field
            for field in BUDGET_FIELDS
            if field in data and getattr(current, field) != data[field]
        ]
        if not changed:
            return current
        for field in changed:
            setattr(current, field, data[field])
        current.full_clean(exclude=["name"])
        current.save(update_fields=changed)
        audit.record(
            "team.budget",
            actor=user,
            request=request,
            target=current,
            team=current,
            details={field: str(getattr(current, field)) for field in changed},
        )
    return current


def do_change_role(membership: Membership, *, role: Role, user, request=None) -> Membership:
    access.require_role(user, membership.team_id, Role.OWNER)
    role = Role(role)
    with transaction.atomic():
        current = Membership.objects.select_for_update().get(pk=membership.pk)
        if current.role == role:
            return current
        if current.role == Role.OWNER and not _other_owners(current).exists():
            raise _last_owner_error(current, "demote")
        old_role = current.role
        current.role = role
        current.save(update_fields=["role"])
        audit.record(
            "team.member_role",
            actor=user,
            request=request,
            target=current,
            details={"member": current.user.get_username(), "from": old_role, "to": role},
        )
    return current


def do_remove_member(membership: Membership, *, user, request=None) -> None:
    access.require_role(user, membership.team_id, Role.OWNER)
    with transaction.atomic():
        current = Membership.objects.select_for_update().get(pk=membership.pk)
        if current.role == Role.OWNER and not _other_owners(current).exists():
            raise _last_owner_error(current, "remove")
        audit.record(
            "team.member_remove",
            actor=user,
            request=request,
            target=current,
            details={"member": current.user.get_username(), "role": current.role},
        )
        current.delete()
