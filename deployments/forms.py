"""Forms: they validate what a person typed and say what is wrong beside the field.

They never save; views hand `cleaned_data` to a do_* action.
"""

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from . import access
from .actions.launches import LAUNCHABLE
from .actions.stacks import FIELDS as STACK_FIELDS
from .choices import Role, RunStatus
from .llm import KINDS, config_errors, name_clash, settle_hub
from .llm.presets import PRESETS
from .models import (
    AuditEvent,
    Deployment,
    EmbeddingModelConfig,
    LLMModelConfig,
    Membership,
    RerankModelConfig,
    Server,
    Stack,
    Team,
)
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


MODEL_CONFIG_LABELS = {
    "model": "Model name",
    "display_name": "Display name",
    "xinference_model_name": "Xinference model",
    "model_engine": "Engine",
    "model_format": "Format",
    "model_size_in_billions": "Size (billions of parameters)",
    "device": "Runs on",
    "gpu_count": "GPUs",
    "hub": "Download from",
    "local_path": "Local weights",
    "max_context": "Context (tokens)",
    "max_response": "Longest answer (tokens)",
    "quote_max_token": "Quoted knowledge (tokens)",
    "max_temperature": "Highest temperature",
    "dataset_process": "Use for knowledge-base processing",
    "used_in_classify": "Use for question classification",
    "used_in_extract_fields": "Use for field extraction",
    "used_in_tool_call": "Use for tool calls",
    "used_in_query_extension": "Use for query extension",
    "tool_choice": "Native tool calls (toolChoice)",
    "function_call": "Native function calls (functionCall)",
    "default_system_chat_prompt": "Default system prompt",
    "default_token": "Default chunk (tokens)",
    "max_token": "Longest chunk (tokens)",
}
MODEL_CONFIG_HELP = {
    "model": "The name FastGPT and One API use, and the model's uid in Xinference: letters, "
    "digits, dots, dashes and underscores.",
    "xinference_model_name": "A builtin or registered Xinference model, e.g. qwen2-instruct.",
    "model_engine": "vLLM, Transformers or llama.cpp for a chat model; sentence_transformers "
    "for embedding and rerank models.",
    "model_format": "pytorch, gptq, awq or ggufv2, as the model's spec in Xinference lists.",
    "model_size_in_billions": "7, or 0_5 for half a billion. Empty for embedding and rerank "
    "models.",
    "quantization": "none, 4-bit, 8-bit, Int4, Q4_K_M…: one the model's spec offers.",
    "gpu_count": "0 on the CPU.",
    "local_path": "A directory inside the Xinference container, where the stack's xinference "
    "folder is /data. When given, nothing is downloaded.",
    "max_context": "What FastGPT sends at most: history, quotes and question together.",
    "quote_max_token": "How much of a knowledge base's text FastGPT quotes at most.",
    "tool_choice": "Leave off unless the model is known to return tool calls in OpenAI's "
    "format; otherwise FastGPT asks for them in the prompt.",
    "dimensions": "The length of the model's vectors. FastGPT stores 1536 numbers, padding "
    "or cutting others.",
    "default_token": "How long FastGPT cuts a document's chunks unless told otherwise.",
}
# The fields of every kind of model config, in the order the form shows them.
SERVED_FIELDSETS = [
    ("Name", ["model", "display_name"]),
    (
        "How Xinference serves it",
        [
            "xinference_model_name",
            "model_engine",
            "model_format",
            "model_size_in_billions",
            "quantization",
            "device",
            "gpu_count",
            "replicas",
            "gpu_memory_mib",
            "hub",
            "local_path",
        ],
    ),
]


class ModelConfigForm(forms.ModelForm):
    """A chat, embedding or rerank model config; subclasses name the kind.

    `teams` are those the user may add configs to (operator or above); a select appears only
    when there is more than one. The (team, model) constraints are checked in clean(), across
    the three kinds, so that the message stands beside the name.
    """

    config_kind = None  # a deployments.llm.Kind, set by each subclass
    fastgpt_fields: list[str] = []
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)

    def __init__(self, *args, user, teams: list[Team] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if self.instance.pk is not None:
            self.fixed_team = self.instance.team
        else:
            teams = list(teams or [])
            self.fixed_team = teams[0] if len(teams) == 1 else None
            self.fields["team"].queryset = Team.objects.filter(pk__in=[t.pk for t in teams])
        if self.fixed_team is not None:
            del self.fields["team"]

    @property
    def chosen_team(self) -> Team | None:
        return self.fixed_team or self.cleaned_data.get("team")

    def fieldsets(self):
        """(legend, bound fields) for the template, each field in one group."""
        groups = [*SERVED_FIELDSETS, ("What FastGPT is told", self.fastgpt_fields)]
        if "team" in self.fields:
            groups[0] = ("Name", ["team", *groups[0][1]])
        return [
            (legend, [self[name] for name in names if name in self.fields])
            for legend, names in groups
            if names
        ]

    def clean(self):
        cleaned = super().clean()
        settle_hub(cleaned)
        for field, message in config_errors(self.config_kind, cleaned).items():
            if field in self.fields and field not in self.errors:
                self.add_error(field, message)
        team, model = self.chosen_team, cleaned.get("model")
        if team is not None and model:
            clash = name_clash(team, model, exclude=self.instance if self.instance.pk else None)
            if clash:
                self.add_error("model", clash)
        return cleaned


class LLMModelConfigForm(ModelConfigForm):
    config_kind = KINDS["llm"]
    fastgpt_fields = [
        "max_context",
        "max_response",
        "quote_max_token",
        "max_temperature",
        "vision",
        "dataset_process",
        "used_in_classify",
        "used_in_extract_fields",
        "used_in_tool_call",
        "used_in_query_extension",
        "tool_choice",
        "function_call",
        "default_system_chat_prompt",
    ]

    class Meta:
        model = LLMModelConfig
        fields = KINDS["llm"].fields
        labels = MODEL_CONFIG_LABELS
        help_texts = MODEL_CONFIG_HELP
        widgets = {"default_system_chat_prompt": forms.Textarea(attrs={"rows": 3})}


class EmbeddingModelConfigForm(ModelConfigForm):
    config_kind = KINDS["embedding"]
    fastgpt_fields = ["dimensions", "default_token", "max_token", "weight"]

    class Meta:
        model = EmbeddingModelConfig
        fields = KINDS["embedding"].fields
        labels = MODEL_CONFIG_LABELS
        help_texts = MODEL_CONFIG_HELP


class RerankModelConfigForm(ModelConfigForm):
    config_kind = KINDS["rerank"]

    class Meta:
        model = RerankModelConfig
        fields = KINDS["rerank"].fields
        labels = MODEL_CONFIG_LABELS
        help_texts = MODEL_CONFIG_HELP


MODEL_CONFIG_FORMS = {
    "llm": LLMModelConfigForm,
    "embedding": EmbeddingModelConfigForm,
    "rerank": RerankModelConfigForm,
}


class PresetForm(forms.Form):
    """A preset to start a model config from, and the team it goes to."""

    preset = forms.ChoiceField(widget=forms.RadioSelect)
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)

    def __init__(self, *args, teams: list[Team], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["preset"].choices = [
            (preset.key, f"{preset.label}: {preset.description}") for preset in PRESETS.values()
        ]
        self.fixed_team = teams[0] if len(teams) == 1 else None
        if self.fixed_team is not None:
            del self.fields["team"]
        else:
            self.fields["team"].queryset = Team.objects.filter(pk__in=[t.pk for t in teams])

    @property
    def chosen_team(self) -> Team | None:
        return self.fixed_team or self.cleaned_data.get("team")


class LaunchForm(forms.Form):
    """The stack of the config's team to launch a model on."""

    stack = forms.ModelChoiceField(
        label="Launch on stack",
        queryset=Stack.objects.none(),
        empty_label=None,
        error_messages={
            "required": "Choose a stack to launch the model on.",
            "invalid_choice": "Choose one of the stacks of the model's team.",
        },
    )

    def __init__(self, *args, team: Team, **kwargs):
        super().__init__(*args, **kwargs)
        stacks = Stack.objects.filter(team=team).select_related("server").order_by("name")
        field = self.fields["stack"]
        field.queryset = stacks
        field.label_from_instance = lambda stack: (
            f"{stack.name} on {stack.server.name} ({stack.get_status_display().lower()})"
        )
        # A stack whose Xinference runs is the likely choice.
        field.initial = next((stack.pk for stack in stacks if stack.status in LAUNCHABLE), None)
