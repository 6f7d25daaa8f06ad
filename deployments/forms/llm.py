"""Model configs (chat, embedding, rerank) and the presets they may start from.

The rules a config must follow live in deployments.llm; these forms put each message beside
its field.
"""

from django import forms
from django.utils.translation import gettext_lazy as _

from ..llm import KINDS, config_errors, name_clash, settle_hub
from ..llm.presets import PRESETS
from ..models import EmbeddingModelConfig, LLMModelConfig, RerankModelConfig, Team

MODEL_CONFIG_LABELS = {
    "model": _("Model name"),
    "display_name": _("Display name"),
    "xinference_model_name": _("Xinference model"),
    "model_engine": _("Engine"),
    "model_format": _("Format"),
    "model_size_in_billions": _("Size (billions of parameters)"),
    "device": _("Runs on"),
    "quantization": _("Quantization"),
    "gpu_count": _("GPUs"),
    "replicas": _("Replicas"),
    "hub": _("Download from"),
    "local_path": _("Local weights"),
    "max_context": _("Context (tokens)"),
    "max_response": _("Longest answer (tokens)"),
    "quote_max_token": _("Quoted knowledge (tokens)"),
    "max_temperature": _("Highest temperature"),
    "dataset_process": _("Use for knowledge-base processing"),
    "used_in_classify": _("Use for question classification"),
    "used_in_extract_fields": _("Use for field extraction"),
    "used_in_tool_call": _("Use for tool calls"),
    "used_in_query_extension": _("Use for query extension"),
    "tool_choice": _("Native tool calls (toolChoice)"),
    "function_call": _("Native function calls (functionCall)"),
    "default_system_chat_prompt": _("Default system prompt"),
    "default_token": _("Default chunk (tokens)"),
    "max_token": _("Longest chunk (tokens)"),
    "vision": _("Vision"),
    "dimensions": _("Dimensions"),
    "weight": _("Weight"),
}
MODEL_CONFIG_HELP = {
    "model": _(
        "The name FastGPT and One API use, and the model's uid in Xinference: letters, "
        "digits, dots, dashes and underscores."
    ),
    "xinference_model_name": _("A builtin or registered Xinference model, e.g. qwen2-instruct."),
    "model_engine": _(
        "vLLM, Transformers or llama.cpp for a chat model; sentence_transformers "
        "for embedding and rerank models."
    ),
    "model_format": _("pytorch, gptq, awq or ggufv2, as the model's spec in Xinference lists."),
    "model_size_in_billions": _(
        "7, or 0_5 for half a billion. Empty for embedding and rerank models."
    ),
    "quantization": _("none, 4-bit, 8-bit, Int4, Q4_K_M…: one the model's spec offers."),
    "gpu_count": _("0 on the CPU."),
    "local_path": _(
        "A directory inside the Xinference container, where the stack's xinference "
        "folder is /data. When given, nothing is downloaded."
    ),
    "max_context": _("What FastGPT sends at most: history, quotes and question together."),
    "quote_max_token": _("How much of a knowledge base's text FastGPT quotes at most."),
    "tool_choice": _(
        "Leave off unless the model is known to return tool calls in OpenAI's "
        "format; otherwise FastGPT asks for them in the prompt."
    ),
    "dimensions": _(
        "The length of the model's vectors. FastGPT stores 1536 numbers, padding or cutting others."
    ),
    "default_token": _("How long FastGPT cuts a document's chunks unless told otherwise."),
}
# The fields of every kind of model config, in the order the form shows them.
SERVED_FIELDSETS = [
    (_("Name"), ["model", "display_name"]),
    (
        _("How Xinference serves it"),
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
    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.none(), empty_label=None)

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
        groups = [*SERVED_FIELDSETS, (_("What FastGPT is told"), self.fastgpt_fields)]
        if "team" in self.fields:
            groups[0] = (_("Name"), ["team", *groups[0][1]])
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

    preset = forms.ChoiceField(label=_("Preset"), widget=forms.RadioSelect)
    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.none(), empty_label=None)

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
