"""The server form: where the server is, how the panel logs in, and its SSH key."""

from django import forms
from django.utils.translation import gettext_lazy as _

from .. import access
from ..choices import Role
from ..models import Server, Team

PRIVATE_KEY_MAX_CHARS = 16_000


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value back, not even after a failed submit."""

    def format_value(self, value):
        return None


KEY_MODES = [
    (
        "generate",
        _("Generate a key pair: the panel shows the public key to add to authorized_keys"),
    ),
    ("paste", _("Paste a private key")),
    ("password", _("Log in once with a password to install the panel's own key")),
]
KEEP_KEY = ("keep", _("Keep the stored key"))


class ServerForm(forms.ModelForm):
    """Create or edit a server.

    `teams` are the teams the user may create servers in (operator or above); a
    select appears only when there is more than one. The SSH key field is present
    only when the user owns one of them, and it is write-only.
    """

    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.none(), empty_label=None)
    key_mode = forms.ChoiceField(
        label=_("SSH key"),
        choices=KEY_MODES,
        initial="generate",
        required=False,
        widget=forms.RadioSelect,
    )
    ssh_password = forms.CharField(
        label=_("One-time password"),
        required=False,
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Used once to log in and install the panel's key, then forgotten."),
    )
    ssh_private_key = forms.CharField(
        label=_("SSH private key"),
        required=False,
        strip=True,
        max_length=PRIVATE_KEY_MAX_CHARS,
        widget=SecretTextarea(attrs={"rows": 6, "autocomplete": "off", "spellcheck": "false"}),
    )

    # `team` stays out of Meta.fields: the model's (team, name) constraint is then left
    # to clean(), which puts the message beside the name instead of above the form.
    field_order = ["team", "name", "host", "ssh_port", "ssh_user", "hourly_price", "price_currency"]

    class Meta:
        model = Server
        fields = [
            "name",
            "host",
            "ssh_port",
            "ssh_user",
            "hourly_price",
            "price_currency",
            "allow_local_address",
        ]
        labels = {
            "name": _("Name"),
            "host": _("Host"),
            "ssh_port": _("SSH port"),
            "ssh_user": _("SSH user"),
            "hourly_price": _("Hourly price"),
            "price_currency": _("Currency"),
            "allow_local_address": _("Allow a local address"),
        }

    def __init__(self, *args, user, teams: list[Team] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        editing = self.instance.pk is not None
        self.fixed_team = self.instance.team if editing else None
        if editing:
            owned = access.has_role(user, self.instance.team_id, Role.OWNER)
            self.owned_team_ids = {self.instance.team_id} if owned else set()
        else:
            teams = list(teams or [])
            if len(teams) == 1:
                self.fixed_team = teams[0]
            else:
                self.fields["team"].queryset = Team.objects.filter(pk__in=[t.pk for t in teams])
            self.owned_team_ids = {t.pk for t in teams} & set(access.team_ids(user, Role.OWNER))
        if self.fixed_team is not None:
            del self.fields["team"]
        self.fields["price_currency"].required = False
        if not self.owned_team_ids:
            for name in ("key_mode", "ssh_password", "ssh_private_key", "allow_local_address"):
                del self.fields[name]
            return
        self.fields["ssh_private_key"].help_text = _(
            "Only team owners can set the key. It is stored encrypted and never shown again."
        )
        if editing and self.instance.has_private_key:
            self.fields["key_mode"].choices = [KEEP_KEY, *KEY_MODES]
            self.fields["key_mode"].initial = "keep"

    @property
    def chosen_team(self) -> Team | None:
        """The team the server is (or goes) in; None until a valid choice is made."""
        return self.fixed_team or self.cleaned_data.get("team")

    def clean_price_currency(self) -> str:
        # Left empty: the server's currency so far (USD for a new one).
        code = (self.cleaned_data.get("price_currency") or "").strip().upper()
        return code or self.instance.price_currency or "USD"

    def clean_ssh_private_key(self) -> str:
        key = self.cleaned_data["ssh_private_key"].replace("\r\n", "\n")
        if not key:
            return ""
        if not key.startswith("-----BEGIN ") or "PRIVATE KEY-----" not in key:
            raise forms.ValidationError(
                _(
                    "Paste the whole private key, from its -----BEGIN ... PRIVATE KEY----- line "
                    "to its -----END ... line."
                )
            )
        return key + "\n"

    def clean(self):
        cleaned = super().clean()
        # No choice made: a pasted key means "paste", else the key stays as it is.
        mode = cleaned.get("key_mode") or ("paste" if cleaned.get("ssh_private_key") else "keep")
        cleaned["key_mode"] = mode
        if mode == "paste" and not cleaned.get("ssh_private_key"):
            self.add_error("ssh_private_key", _("Paste the private key, or choose another option."))
        if mode == "password" and not cleaned.get("ssh_password"):
            self.add_error("ssh_password", _("Enter the password, or choose another option."))
        if mode != "paste":
            cleaned["ssh_private_key"] = ""
        if mode != "password":
            cleaned["ssh_password"] = ""
        team = self.chosen_team
        if team is None:
            return cleaned
        if cleaned.get("ssh_private_key") and team.pk not in self.owned_team_ids:
            self.add_error("ssh_private_key", _("Only owners of the team can set the SSH key."))
        name = cleaned.get("name")
        if name:
            clash = Server.objects.filter(team=team, name=name).exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error(
                    "name", _("The team already has a server named “%(name)s”.") % {"name": name}
                )
        return cleaned
