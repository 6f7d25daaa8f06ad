"""Team membership: who is in a team, and with which role. Only owners change it."""

from django.db import IntegrityError, transaction

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
    return ActionError(
        f"Cannot {doing} {membership.user.get_username()}: they are the last owner of "
        f"{membership.team}. Make another member an owner first."
    )


def do_add_member(team: Team, *, member, role: Role, user, request=None) -> Membership:
    access.require_role(user, team, Role.OWNER)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(team=team, user=member, role=Role(role))
            audit.record(
                "team.member_add",
                actor=user,
                request=request,
                target=membership,
                details={"member": member.get_username(), "role": membership.role},
            )
    except IntegrityError as error:
        raise ActionError(f"{member.get_username()} is already a member of {team}.") from error
    return membership


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
