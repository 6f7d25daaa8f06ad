"""Model configs: their kinds, and the rules every config must follow.

The rules live here, not in a form, so that a config made from a preset or by an action is held
to the same rules as one typed into a page; each rule names the field it is about. Presets are
in `presets`; whether a model fits a server's GPUs is told by `fit`.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..choices import Device, ModelHub, ModelKind
from ..models import EmbeddingModelConfig, LLMModelConfig, ModelLaunch, RerankModelConfig, Team
from ..validators import validate_data_dir, validate_name

# FastGPT's vector column is VECTOR(1536); longer vectors are cut and shorter ones padded. 8192
# is the largest any embedding model offers, so a bigger number can only be a typo.
MAX_DIMENSIONS = 8192
SIZE_RE = re.compile(r"[0-9]+(_[0-9]+)?")
NOT_EDITABLE = {"id", "team", "created_at"}


@dataclass(frozen=True)
class Kind:
    slug: str  # as it appears in URLs
    kind: ModelKind
    model: type[Model]
    label: str  # "chat model": what a sentence calls one config of this kind
    plural: str

    @property
    def a_label(self) -> str:
        """ "a chat model", "an embedding model"."""
        return str(A_LABELS[self.slug])

    @property
    def fields(self) -> list[str]:
        """The fields a person may set, in the model's order."""
        return [
            field.name
            for field in self.model._meta.concrete_fields
            if field.name not in NOT_EDITABLE
        ]


KINDS: dict[str, Kind] = {
    "llm": Kind(
        "llm",
        ModelKind.LLM,
        LLMModelConfig,
        gettext_lazy("chat model"),
        gettext_lazy("Chat models"),
    ),
    "embedding": Kind(
        "embedding",
        ModelKind.EMBEDDING,
        EmbeddingModelConfig,
        gettext_lazy("embedding model"),
        gettext_lazy("Embedding models"),
    ),
    "rerank": Kind(
        "rerank",
        ModelKind.RERANK,
        RerankModelConfig,
        gettext_lazy("rerank model"),
        gettext_lazy("Rerank models"),
    ),
}
# Each kind with its article, as a sentence says "add a chat model".
A_LABELS = {
    "llm": gettext_lazy("a chat model"),
    "embedding": gettext_lazy("an embedding model"),
    "rerank": gettext_lazy("a rerank model"),
}
BY_KIND: dict[str, Kind] = {kind.kind: kind for kind in KINDS.values()}


def kind_of(config: Model) -> Kind:
    for kind in KINDS.values():
        if isinstance(config, kind.model):
            return kind
    raise TypeError(f"{type(config).__name__} is not a model config")


def settle_hub(values: dict) -> None:
    """Weights at a local path are not downloaded: the hub becomes "local"."""
    if values.get("local_path"):
        values["hub"] = ModelHub.LOCAL


def _message(error: ValidationError) -> str:
    return " ".join(error.messages)


def config_errors(kind: Kind, values: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with a config's values, by field. Absent values are not judged: a form
    leaves out the fields that already failed their own checks."""
    errors: dict[str, str] = {}

    def given(name: str) -> bool:
        return values.get(name) not in (None, "")

    for name in ("xinference_model_name", "model_engine", "model_format", "quantization"):
        if given(name):
            try:
                validate_name(values[name])
            except ValidationError as error:
                errors[name] = _message(error)
    if given("model_size_in_billions") and not SIZE_RE.fullmatch(values["model_size_in_billions"]):
        errors["model_size_in_billions"] = _(
            "Enter the size in billions as Xinference writes it: a whole number such as 7, "
            "or 0_5 for 0.5."
        )
    if kind.kind == ModelKind.LLM and "model_engine" in values and not given("model_engine"):
        errors["model_engine"] = _(
            "Xinference needs an engine to launch a chat model, e.g. vLLM or Transformers."
        )

    if given("local_path"):
        try:
            validate_data_dir(values["local_path"])
        except ValidationError as error:
            errors["local_path"] = _message(error)
    elif values.get("hub") == ModelHub.LOCAL:
        errors["local_path"] = _(
            "Enter where the weights are inside the Xinference container, or choose a hub to "
            "download them from."
        )

    device, gpus = values.get("device"), values.get("gpu_count")
    if device == Device.CPU and gpus:
        errors["gpu_count"] = _("A model that runs on the CPU uses no GPU: set this to 0.")
    elif device == Device.GPU and gpus == 0:
        errors["gpu_count"] = _(
            "A model that runs on the GPU needs at least 1 GPU; choose CPU to run it without one."
        )

    if kind.kind == ModelKind.LLM:
        context = values.get("max_context")
        response, quote = values.get("max_response"), values.get("quote_max_token")
        if context is not None and response is not None and response >= context:
            errors["max_response"] = _(
                "The longest answer must be shorter than the context (%(context)s tokens), which "
                "also holds the question."
            ) % {"context": context}
        if context is not None and quote is not None and quote > context:
            errors["quote_max_token"] = _(
                "The quoted knowledge cannot be longer than the context (%(context)s tokens)."
            ) % {"context": context}
    if kind.kind == ModelKind.EMBEDDING:
        dimensions = values.get("dimensions")
        if dimensions is not None and not 1 <= dimensions <= MAX_DIMENSIONS:
            errors["dimensions"] = _(
                "Enter the model's vector length, from 1 to %(most)s (m3e-base: 768)."
            ) % {"most": MAX_DIMENSIONS}
        default, most = values.get("default_token"), values.get("max_token")
        if default is not None and most is not None and default > most:
            errors["default_token"] = _(
                "The default chunk cannot be longer than the longest chunk (%(longest)s tokens)."
            ) % {"longest": most}
    return errors


def name_clash(team: Team | int, model: str, *, exclude: Model | None = None) -> str | None:
    """Why `model` cannot be used in `team`, or None.

    A name is unique across all three kinds: Xinference and One API know a model by this name
    alone, whatever its kind.
    """
    team_id = team if isinstance(team, int) else team.pk
    for kind in KINDS.values():
        taken = kind.model.objects.filter(team_id=team_id, model=model)
        if exclude is not None and isinstance(exclude, kind.model):
            taken = taken.exclude(pk=exclude.pk)
        if taken.exists():
            return _(
                "The team already has %(kind)s named “%(model)s”; Xinference and One API know a "
                "model by this name alone, so choose another."
            ) % {"kind": kind.a_label, "model": model}
    return None


def launches_of(config: Model):
    return ModelLaunch.objects.filter(**{kind_of(config).slug: config})
