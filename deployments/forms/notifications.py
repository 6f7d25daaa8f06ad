"""A team's notification channel: its kind, where it sends, its secret and its events.

A webhook URL (a chat service puts its token in it) and a signing secret are asked for when a
channel is added and never shown again: the edit form leaves them blank, and blank keeps them.
"""

import ipaddress
from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..models import ChannelKind, NotificationChannel, NotificationEvent, Team
from ..notifications.sending import private_reason, split_addresses
from .providers import has_control_characters

MAX_ADDRESSES = 20
URL_MAX = 2000
SECRET_MAX = 200
# Kinds whose bot can sign with a secret the person copies from the chat service.
SIGNED_BY_SERVICE = (ChannelKind.FEISHU, ChannelKind.DINGTALK)
KEPT = gettext_lazy("Saved; enter a new one to replace it. It is never shown.")


class SecretField(forms.CharField):
    """A value stored encrypted and never shown again: typed in a password box, never rendered
    back, optional (empty keeps what is saved)."""

    def __init__(self, **kwargs):
        widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})
        super().__init__(required=False, widget=widget, **kwargs)


class ChannelForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=ChannelKind.choices)
    url = SecretField(
        label=gettext_lazy("Webhook URL"),
        max_length=URL_MAX,
        help_text=gettext_lazy(
            "For every kind but e-mail: the URL the chat service gave the bot, or your "
            "receiver's. It holds the bot's token, so it is stored encrypted and never shown."
        ),
    )
    addresses = forms.CharField(
        label=gettext_lazy("E-mail addresses"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy("For e-mail: one or more addresses, separated by commas or lines."),
    )
    secret = SecretField(
        label=gettext_lazy("Signing secret (Feishu, DingTalk)"),
        max_length=SECRET_MAX,
        help_text=gettext_lazy(
            "Optional: the secret of the bot's signature setting (DingTalk's starts with SEC). "
            "A webhook channel gets a signing secret from the panel instead."
        ),
    )
    events = forms.MultipleChoiceField(
        label=gettext_lazy("Events"),
        choices=NotificationEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[
            NotificationEvent.RUN_FAILED,
            NotificationEvent.SERVER_UNREACHABLE,
            NotificationEvent.HOST_KEY_CHANGED,
            NotificationEvent.SMOKE_TEST_FLAGGED,
            NotificationEvent.DOCUMENT_FAILED,
        ],
        help_text=gettext_lazy(
            "The idle and budget events are sent once a server's idle guard or the team's "
            "budget is set."
        ),
    )
    allow_private = forms.BooleanField(
        label=gettext_lazy("Allow private addresses"),
        required=False,
        help_text=gettext_lazy(
            "Lets the channel send to loopback, link-local, private networks and the panel's "
            "own machine. Leave it off unless the receiver is on your own network: otherwise "
            "a URL could make the panel call services that only it can reach."
        ),
    )
    enabled = forms.BooleanField(label=gettext_lazy("On"), required=False, initial=True)

    def __init__(self, *args, team: Team, channel: NotificationChannel | None = None, **kwargs):
        if channel is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": channel.name,
                "kind": channel.kind,
                "addresses": channel.target if channel.kind == ChannelKind.EMAIL else "",
                "events": list(channel.events),
                "allow_private": channel.allow_private,
                "enabled": channel.enabled,
            }
        super().__init__(*args, **kwargs)
        self.team, self.channel = team, channel
        if channel is not None:
            kind = self.fields["kind"]
            kind.disabled = True
            kind.help_text = _("A channel keeps its kind: add another for a different one.")
            if channel.kind == ChannelKind.EMAIL:
                del self.fields["url"], self.fields["secret"]
            else:
                del self.fields["addresses"]
                self.fields["url"].help_text = KEPT
                if channel.kind == ChannelKind.WEBHOOK:
                    del self.fields["secret"]
                    self.fields["new_secret"] = forms.BooleanField(
                        label=_("Make a new signing secret"),
                        required=False,
                        help_text=_(
                            "The old one stops working; the new one is shown once, after saving."
                        ),
                    )
                elif channel.kind in SIGNED_BY_SERVICE:
                    if channel.secret:
                        self.fields["secret"].help_text = KEPT
                        self.fields["clear_secret"] = forms.BooleanField(
                            label=_("Remove the saved signing secret"), required=False
                        )
                else:
                    del self.fields["secret"]

    @property
    def channel_kind(self) -> str:
        if self.channel is not None:
            return self.channel.kind
        return self.cleaned_data.get("kind", "")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name or has_control_characters(name):
            raise ValidationError(_("Enter a name of one line."))
        same = NotificationChannel.objects.filter(team=self.team, name__iexact=name)
        if self.channel is not None:
            same = same.exclude(pk=self.channel.pk)
        if same.exists():
            raise ValidationError(
                _("Team “%(team)s” already has a channel “%(name)s”.")
                % {"team": self.team.name, "name": name}
            )
        return name

    def clean_url(self) -> str:
        url = self.cleaned_data.get("url", "").strip()
        if not url:
            return ""
        message = _("Enter an http:// or https:// address with no user name or fragment.")
        if has_control_characters(url):
            raise ValidationError(message)
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise ValidationError(message) from None
        parts = urlsplit(url)
        if parts.username or parts.password or parts.fragment or not parts.hostname:
            raise ValidationError(message)
        return url

    def clean_addresses(self) -> str:
        found = split_addresses(self.cleaned_data.get("addresses", ""))
        if len(found) > MAX_ADDRESSES:
            raise ValidationError(
                _("At most %(count)s addresses per channel.") % {"count": MAX_ADDRESSES}
            )
        bad = []
        for address in found:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            raise ValidationError(_("Not an e-mail address: %(bad)s") % {"bad": ", ".join(bad)})
        return "\n".join(found)

    def clean_secret(self) -> str:
        secret = self.cleaned_data.get("secret", "").strip()
        if secret and (has_control_characters(secret) or any(c.isspace() for c in secret)):
            raise ValidationError(_("A signing secret is one line with no spaces."))
        return secret

    def clean(self):
        cleaned = super().clean()
        kind = self.channel_kind
        if not kind:
            return cleaned
        adding = self.channel is None
        if kind == ChannelKind.EMAIL:
            if not cleaned.get("addresses") and "addresses" not in self.errors:
                self.add_error("addresses", _("Enter at least one e-mail address."))
        else:
            url = cleaned.get("url", "")
            if adding and not url and "url" not in self.errors:
                self.add_error("url", _("Enter the webhook URL."))
            if url and not cleaned.get("allow_private"):
                self._refuse_private_literal(url)
            if kind not in SIGNED_BY_SERVICE and cleaned.get("secret"):
                self.add_error("secret", _("Only Feishu and DingTalk bots take a signing secret."))
        return cleaned

    def _refuse_private_literal(self, url: str) -> None:
        """An address typed as such is checked here; a name is checked as it is sent, since
        what it resolves to may change."""
        host = urlsplit(url).hostname or ""
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            reason = _("a loopback address (the panel's own machine)")
        else:
            try:
                reason = private_reason(ipaddress.ip_address(host))
            except ValueError:
                return
        if reason:
            self.add_error(
                "url",
                _("%(host)s is %(reason)s: tick “Allow private addresses” to send there.")
                % {"host": host, "reason": reason},
            )

    def channel_data(self) -> dict:
        """The cleaned values as the actions take them; an empty target or secret keeps the
        saved one."""
        data = self.cleaned_data
        kind = self.channel_kind
        return {
            "name": data["name"],
            "target": data.get("addresses", "")
            if kind == ChannelKind.EMAIL
            else data.get("url", ""),
            "secret": data.get("secret", "") if kind in SIGNED_BY_SERVICE else "",
            "events": list(data["events"]),
            "allow_private": data["allow_private"],
            "enabled": data["enabled"],
        }
