"""Invitations: an owner offers a role in a team; the person holding the link takes it up.

No one joins a team without accepting. The link's token is shown once; only its SHA-256 is
stored, and neither goes to a log or the audit trail.
"""

import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import access, audit
from ..choices import ROLE_RANK, Role
from ..models import Invitation, Membership, Team
from . import ActionError

logger = logging.getLogger(__name__)


class InvitationUnusable(ActionError):
    """Unknown, expired, revoked or used: one and the same answer, so tokens cannot be probed."""

    def __init__(self):
        super().__init__(unusable_message())


def unusable_message() -> str:
    return _("This invitation link is not valid: ask a team owner for a new one.")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _usable(queryset: QuerySet) -> QuerySet:
    return queryset.filter(accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())


def pending(team: Team) -> QuerySet[Invitation]:
    """The team's invitations that can still be accepted."""
    return _usable(team.invitations.select_related("created_by")).order_by("expires_at", "pk")


def find_usable(token: str) -> Invitation | None:
    if not token:
        return None
    return (
        _usable(Invitation.objects.select_related("team"))
        .filter(token_hash=token_hash(token))
        .first()
    )


def do_create_invitation(
    team: Team, *, role: Role, email: str = "", user, request=None
) -> tuple[Invitation, str]:
    """A new invitation and its token, which exists nowhere else once the caller drops it."""
    access.require_role(user, team, Role.OWNER)
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            team=team,
            role=Role(role),
            email=email,
            token_hash=token_hash(token),
            created_by=user,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_DAYS),
        )
        audit.record(
            "invitation.create",
            actor=user,
            request=request,
            target=invitation,
            details={"role": invitation.role, "email": email, "invitation": invitation.pk},
        )
    return invitation, token


def mail_invitation(invitation: Invitation, url: str) -> bool:
    """Send the link to the invitation's e-mail address; False when the panel has no mail
    server configured or the server refused it."""
    if not invitation.email or not settings.EMAIL_HOST:
        return False
    inviter = invitation.created_by.get_username() if invitation.created_by else ""
    subject = _("Invitation to team %(team)s") % {"team": invitation.team.name}
    body = _(
        "%(inviter)s invites you to join team %(team)s on the LLM stack panel as %(role)s.\n\n"
        "Open this link to accept (it works once, until %(expires)s):\n%(url)s\n"
    ) % {
        "inviter": inviter or _("A team owner"),
        "team": invitation.team.name,
        "role": invitation.get_role_display().lower(),
        "expires": invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
        "url": url,
    }
    try:
        send_mail(subject, body, None, [invitation.email])
    except OSError as error:
        # The error names the mail server, never the link.
        logger.warning("Invitation %s could not be mailed: %s", invitation.pk, error)
        return False
    return True


def do_revoke_invitation(invitation: Invitation, *, user, request=None) -> bool:
    """Revoke a pending invitation; False when it was accepted, revoked or expired already."""
    access.require_role(user, invitation.team_id, Role.OWNER)
    with transaction.atomic():
        revoked = _usable(Invitation.objects.filter(pk=invitation.pk)).update(
            revoked_at=timezone.now()
        )
        if revoked:
            audit.record(
                "invitation.revoke",
                actor=user,
                request=request,
                target=invitation,
                details={
                    "role": invitation.role,
                    "email": invitation.email,
                    "invitation": invitation.pk,
                },
            )
    return bool(revoked)


def _claim(token: str) -> Invitation:
    """Use the invitation up, or refuse: a conditional UPDATE, so of two accepts of one token
    only one finds it usable (the second waits for the first's transaction, then matches no row).
    """
    hashed = token_hash(token)
    claimed = _usable(Invitation.objects.filter(token_hash=hashed)).update(
        accepted_at=timezone.now()
    )
    if not claimed:
        raise InvitationUnusable()
    return Invitation.objects.select_related("team").get(token_hash=hashed)


def _join(invitation: Invitation, member, request) -> Membership:
    """Membership with the invitation's role; a member already in the team keeps the higher
    of their role and the invited one (an invitation never demotes)."""
    membership = (
        Membership.objects.select_for_update().filter(team=invitation.team, user=member).first()
    )
    invited = Role(invitation.role)
    previous = membership.role if membership else None
    if membership is None:
        membership = Membership.objects.create(team=invitation.team, user=member, role=invited)
    elif ROLE_RANK[invited] > ROLE_RANK[Role(membership.role)]:
        membership.role = invited
        membership.save(update_fields=["role"])
    invitation.accepted_by = member
    invitation.save(update_fields=["accepted_by"])
    audit.record(
        "invitation.accept",
        actor=member,
        request=request,
        target=invitation,
        team=invitation.team,
        details={
            "invitation": invitation.pk,
            "member": member.get_username(),
            "invited_role": invited,
            "previous_role": previous,
            "role": membership.role,
        },
    )
    return membership


def do_accept_invitation(token: str, *, user, request=None) -> Membership:
    """`user` joins the invitation's team; the invitation is used up."""
    if not user.is_authenticated:
        raise InvitationUnusable()
    with transaction.atomic():
        return _join(_claim(token), user, request)


def do_accept_with_new_account(token: str, *, signup_form, request=None) -> Membership:
    """Create the account that `signup_form` (valid) describes and join with it, or neither."""
    with transaction.atomic():
        invitation = _claim(token)
        member = signup_form.save()
        audit.record(
            "user.signup",
            actor=member,
            request=request,
            team=invitation.team,
            target=member,
            details={"invitation": invitation.pk},
        )
        return _join(invitation, member, request)
