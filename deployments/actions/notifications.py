"""A team's notification channels: add, edit, delete and test them. Owners may.

The URL of a chat webhook (its token is the credential) and every signing secret are stored
encrypted and never written to the audit trail, a message or a log. A webhook channel's signing
secret is made here and handed back once, for the page to show that one time.
"""

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from .. import access, audit
from ..choices import Role
from ..models import ChannelKind, NotificationChannel, Team
from ..notifications import notify, sending
from ..notifications.formats import Message
from . import ActionError

# What a person sets on a channel, its URL or addresses and its secret apart.
FIELDS = ("name", "events", "allow_private", "enabled")


def new_signing_secret() -> str:
    # Prefixed, so a person and a secret scanner can tell what it is.
    return "whsec_" + secrets.token_urlsafe(32)


def target_hint(kind: str, target: str) -> str:
    if kind == ChannelKind.EMAIL:
        return ", ".join(sending.split_addresses(target))[:300]
    return sending.url_hint(target)[:300]


def _details(channel: NotificationChannel, **extra) -> dict:
    """What the audit trail keeps of a channel: never its URL's token or its secret."""
    return {
        "name": channel.name,
        "kind": channel.kind,
        "target": channel.target_hint,
        "events": list(channel.events),
        "allow_private": channel.allow_private,
        "enabled": channel.enabled,
        **extra,
    }


def _taken(team: Team, name: str) -> ActionError:
    return ActionError(
        _("Team “%(team)s” already has a channel “%(name)s”.") % {"team": team.name, "name": name}
    )


def do_add_channel(
    team: Team, *, kind: str, data: dict, user, request=None
) -> tuple[NotificationChannel, str]:
    """Save a channel; returns it and the signing secret to show once ("" when the panel made
    none: only a webhook channel gets one)."""
    access.require_role(user, team, Role.OWNER)
    if not data.get("target"):
        raise ActionError(_("Enter where the channel sends to."))
    shown = new_signing_secret() if kind == ChannelKind.WEBHOOK else ""
    channel = NotificationChannel(
        team=team,
        kind=kind,
        target=data["target"],
        target_hint=target_hint(kind, data["target"]),
        secret=shown or data.get("secret", ""),
        created_by=user if user is not None and user.is_authenticated else None,
        **{field: data[field] for field in FIELDS},
    )
    try:
        with transaction.atomic():
            channel.save()
            audit.record(
                "notification_channel.add",
                actor=user,
                request=request,
                target=channel,
                details=_details(channel, secret=bool(channel.secret)),
            )
    except IntegrityError:
        raise _taken(team, data["name"]) from None
    return channel, shown


def do_edit_channel(
    channel: NotificationChannel,
    *,
    data: dict,
    new_secret: bool = False,
    clear_secret: bool = False,
    user,
    request=None,
) -> str:
    """Save a channel's settings. An empty target or secret keeps the saved one; `new_secret`
    makes a webhook's new signing secret, returned to show once ("" otherwise)."""
    access.require_role(user, channel.team_id, Role.OWNER)
    shown = ""
    changed = [field for field in FIELDS if getattr(channel, field) != data[field]]
    for field in FIELDS:
        setattr(channel, field, data[field])
    if data.get("target") and data["target"] != channel.target:
        channel.target = data["target"]
        channel.target_hint = target_hint(channel.kind, channel.target)
        changed.append("target")
    if channel.kind == ChannelKind.WEBHOOK:
        if new_secret:
            shown = channel.secret = new_signing_secret()
            changed.append("secret")
    elif data.get("secret"):
        channel.secret = data["secret"]
        changed.append("secret")
    elif clear_secret and channel.secret:
        channel.secret = ""
        changed.append("secret")
    try:
        with transaction.atomic():
            channel.save()
            audit.record(
                "notification_channel.edit",
                actor=user,
                request=request,
                target=channel,
                details=_details(channel, changed=changed),
            )
    except IntegrityError:
        raise _taken(channel.team, data["name"]) from None
    return shown


def do_delete_channel(channel: NotificationChannel, *, user, request=None) -> None:
    access.require_role(user, channel.team_id, Role.OWNER)
    with transaction.atomic():
        audit.record(
            "notification_channel.delete",
            actor=user,
            request=request,
            target=channel,
            details=_details(channel),
        )
        channel.delete()


def do_test_channel(channel: NotificationChannel, *, user, request=None) -> sending.Outcome:
    """Send a test message now, once (no retry), and say how it went."""
    access.require_role(user, channel.team_id, Role.OPERATOR)
    name = user.get_username() if user is not None and user.is_authenticated else ""
    # The message is the team's, in the panel's language; the outcome is shown to the sender.
    with translation.override(settings.LANGUAGE_CODE):
        message = Message(
            event="test",
            event_label=str(_("A test")),
            team=channel.team.name,
            subject=_("Test message from the control panel"),
            text=_("%(user)s sent this test to the channel “%(channel)s”.")
            % {"user": name, "channel": channel.name},
            url=notify.absolute(reverse("notification_list", args=[channel.team_id])),
            test=True,
        )
    outcome = sending.deliver(channel, message)
    audit.record(
        "notification_channel.test",
        actor=user,
        request=request,
        target=channel,
        details={"name": channel.name, "ok": outcome.ok, "result": outcome.detail[:500]},
    )
    return outcome
