"""Forms: they validate what a person typed and say what is wrong beside the field.

They never save; views hand `cleaned_data` to a do_* action.
"""

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from . import access
from .actions.stacks import FIELDS as STACK_FIELDS
from .choices import Role, RunStatus
from .models import AuditEvent, Deployment, Membership, Server, Stack, Team
from .stacks.versions import line_choices

PRIVATE_KEY_MAX_CHARS = 16_000


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value back, not even after a failed submit."""

    def format_value(self, value):
        return None


KEY_MODES = [
    ("generate", "Generate a key pair: the panel shows the public key to add to authorized_keys"),
    ("paste", "Paste a private key"),
    ("password", "Log in once with a password to install the panel's own key"),
]
KEEP_KEY = ("keep", "Keep the stored key")


class ServerForm(forms.ModelForm):
    """Create or edit a server.

    `teams` are the teams the user may create servers in (operator or above); a
    select appears only when there is more than one. The SSH key field is present
    only when the user owns one of them, and it is write-only.
    """

    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    key_mode = forms.ChoiceField(
        label="SSH key",
        choices=KEY_MODES,
        initial="generate",
        required=False,
        widget=forms.RadioSelect,
    )
    ssh_password = forms.CharField(
        label="One-time password",
        required=False,
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Used once to log in and install the panel's key, then forgotten.",
    )
    ssh_private_key = forms.CharField(
        label="SSH private key",
        required=False,
        strip=True,
        max_length=PRIVATE_KEY_MAX_CHARS,
        widget=SecretTextarea(attrs={"rows": 6, "autocomplete": "off", "spellcheck": "false"}),
    )

    # `team` stays out of Meta.fields: the model's (team, name) constraint is then left
    # to clean(), which puts the message beside the name instead of above the form.
    field_order = ["team", "name", "host", "ssh_port", "ssh_user", "hourly_price"]

    class Meta:
        model = Server
        fields = ["name", "host", "ssh_port", "ssh_user", "hourly_price"]
        labels = {"ssh_port": "SSH port", "ssh_user": "SSH user", "hourly_price": "Hourly price"}

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
        if not self.owned_team_ids:
            for name in ("key_mode", "ssh_password", "ssh_private_key"):
                del self.fields[name]
            return
        self.fields[
            "ssh_private_key"
        ].help_text = (
            "Only team owners can set the key. It is stored encrypted and never shown again."
        )
        if editing and self.instance.has_private_key:
            self.fields["key_mode"].choices = [KEEP_KEY, *KEY_MODES]
            self.fields["key_mode"].initial = "keep"

    @property
    def chosen_team(self) -> Team | None:
        """The team the server is (or goes) in; None until a valid choice is made."""
        return self.fixed_team or self.cleaned_data.get("team")

    def clean_ssh_private_key(self) -> str:
        key = self.cleaned_data["ssh_private_key"].replace("\r\n", "\n")
        if not key:
            return ""
        if not key.startswith("-----BEGIN ") or "PRIVATE KEY-----" not in key:
            raise forms.ValidationError(
                "Paste the whole private key, from its -----BEGIN ... PRIVATE KEY----- line "
                "to its -----END ... line."
            )
        return key + "\n"

    def clean(self):
        cleaned = super().clean()
        # No choice made: a pasted key means "paste", else the key stays as it is.
        mode = cleaned.get("key_mode") or ("paste" if cleaned.get("ssh_private_key") else "keep")
        cleaned["key_mode"] = mode
        if mode == "paste" and not cleaned.get("ssh_private_key"):
            self.add_error("ssh_private_key", "Paste the private key, or choose another option.")
        if mode == "password" and not cleaned.get("ssh_password"):
            self.add_error("ssh_password", "Enter the password, or choose another option.")
        if mode != "paste":
            cleaned["ssh_private_key"] = ""
        if mode != "password":
            cleaned["ssh_password"] = ""
        team = self.chosen_team
        if team is None:
            return cleaned
        if cleaned.get("ssh_private_key") and team.pk not in self.owned_team_ids:
            self.add_error("ssh_private_key", "Only owners of the team can set the SSH key.")
        name = cleaned.get("name")
        if name:
            clash = Server.objects.filter(team=team, name=name).exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("name", f"The team already has a server named “{name}”.")
        return cleaned


class DeploymentFilterForm(forms.Form):
    """The history's filters. Choices are limited to what the user may see."""

    server = forms.ModelChoiceField(queryset=Server.objects.none(), required=False)
    stack = forms.ModelChoiceField(queryset=Stack.objects.none(), required=False)
    user = forms.ModelChoiceField(queryset=get_user_model().objects.none(), required=False)
    outcome = forms.ChoiceField(choices=[("", "Any outcome"), *RunStatus.choices], required=False)

    def __init__(self, *args, viewer, **kwargs):
        super().__init__(*args, **kwargs)
        team_ids = access.team_ids(viewer)
        self.fields["server"].queryset = access.visible(Server.objects.all(), viewer)
        self.fields["server"].empty_label = "Any server"
        self.fields["stack"].queryset = access.visible(
            Stack.objects.select_related("server"), viewer
        )
        self.fields["stack"].empty_label = "Any stack"
        self.fields["user"].queryset = (
            get_user_model()
            .objects.filter(
                Q(memberships__team__in=team_ids) | Q(pk__in=_deployment_user_ids(team_ids))
            )
            .distinct()
            .order_by("username")
        )
        self.fields["user"].empty_label = "Anyone"

    def filter(self, queryset):
        data = self.cleaned_data
        if data.get("server"):
            queryset = queryset.filter(stack__server=data["server"])
        if data.get("stack"):
            queryset = queryset.filter(stack=data["stack"])
        if data.get("user"):
            queryset = queryset.filter(user=data["user"])
        if data.get("outcome"):
            queryset = queryset.filter(run__status=data["outcome"])
        return queryset


def _deployment_user_ids(team_ids):
    # People who deployed and have since left the team still appear in its history.
    return Deployment.objects.filter(team__in=team_ids, user__isnull=False).values("user")


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(required=False)

    def __init__(self, *args, events: QuerySet[AuditEvent], **kwargs):
        super().__init__(*args, **kwargs)
        actions = events.order_by("action").values_list("action", flat=True).distinct()
        self.fields["action"].choices = [("", "Any action"), *((a, a) for a in actions)]


class AddMemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args, team: Team, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"There is no user “{username}”.")
        if Membership.objects.filter(team=self.team, user=user).exists():
            raise forms.ValidationError(f"{username} is already a member of {self.team}.")
        return user


class ChangeRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class StackForm(forms.ModelForm):
    """A new stack: where it goes, which versions, where images come from, which ports."""

    field_order = ["server", "name", "version_line", "registry", "registry_prefix"]

    class Meta:
        model = Stack
        fields = ["server", *STACK_FIELDS]
        labels = {
            "version_line": "Version line",
            "fastgpt_port": "FastGPT port",
            "oneapi_port": "One API port",
            "xinference_port": "Xinference port",
            "expose_database_ports": "Publish the database ports on the server",
            "xinference_device": "Xinference runs on",
            "data_dir": "Data directory on the server",
        }

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["server"].queryset = Server.objects.filter(
            team__in=access.team_ids(user, Role.OPERATOR)
        ).select_related("team")
        self.fields["server"].empty_label = None
        self.fields["version_line"] = forms.ChoiceField(
            label="Version line", choices=line_choices()
        )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("registry") == "custom" and not cleaned.get("registry_prefix"):
            self.add_error("registry_prefix", "Enter the registry prefix to pull images from.")
        ports = [cleaned.get(name) for name in ("fastgpt_port", "oneapi_port", "xinference_port")]
        given = [port for port in ports if port]
        if len(set(given)) != len(given):
            self.add_error("oneapi_port", "FastGPT, One API and Xinference need different ports.")
        server, name = cleaned.get("server"), cleaned.get("name")
        if server and name and Stack.objects.filter(server=server, name=name).exists():
            self.add_error("name", f"Server {server.name} already has a stack “{name}”.")
        return cleaned


class UpgradeForm(forms.Form):
    version_line = forms.ChoiceField(label="Version line", choices=line_choices)

    def __init__(self, *args, initial_line: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version_line"].initial = initial_line


class TeardownForm(forms.Form):
    delete_data = forms.BooleanField(
        label="Also delete the stack's data (databases, uploaded files, models)",
        required=False,
    )
    confirm_name = forms.CharField(
        label="To delete the data, type the stack's name",
        required=False,
        max_length=64,
    )
