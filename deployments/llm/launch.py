"""What the panel sends Xinference to launch a model config: the launch body, and, for
weights at a local path on the server, the custom model registered first.

A config with a local path is registered under a name of its own (`served_name`), built from
the folder's files: a chat model needs its chat template and stop token, which the weights'
tokenizer files carry. A config without one launches Xinference's builtin model of that name,
downloaded from the config's hub.
"""

import json
from dataclasses import dataclass

from django.db.models import Model

from ..choices import Device, ModelHub, ModelKind, StackStatus
from . import kind_of

# Stacks a model may be launched on: their Xinference is up, or at least was deployed.
LAUNCHABLE = (StackStatus.RUNNING, StackStatus.DEGRADED)
# Appended to the config's model name: a custom registration may not take a builtin's name.
CUSTOM_SUFFIX = "-weights"
LANGUAGES = ["en", "zh"]
RERANK_MAX_TOKENS = 512


class WeightsError(ValueError):
    """The local weights folder lacks what a registration needs; the message says what."""


@dataclass(frozen=True)
class WeightsFiles:
    """The text of the files in a weights folder that a registration reads (None: absent)."""

    config: str | None = None  # config.json
    tokenizer_config: str | None = None  # tokenizer_config.json
    chat_template: str | None = None  # chat_template.jinja (newer transformers)


WEIGHTS_FILE_NAMES = {
    "config": "config.json",
    "tokenizer_config": "tokenizer_config.json",
    "chat_template": "chat_template.jinja",
}


def served_name(config: Model) -> str:
    """The model name Xinference launches: a custom registration for local weights."""
    if config.local_path:
        return f"{config.model}{CUSTOM_SUFFIX}"
    return config.xinference_model_name


def model_type(config: Model) -> str:
    return str(kind_of(config).kind)


def _spec_entry(config: Model) -> dict:
    return {
        "model_format": config.model_format or "pytorch",
        "model_id": None,
        # Only the hub's name: model_uri points at the folder, nothing is downloaded.
        "model_hub": "huggingface",
        "model_uri": config.local_path,
        "quantization": config.quantization or "none",
    }


def _json(text: str | None, name: str, folder: str) -> dict:
    if text is None:
        raise WeightsError(f"{folder}/{name} is missing: a chat model's folder needs it.")
    try:
        value = json.loads(text)
    except ValueError as error:
        raise WeightsError(f"{folder}/{name} is not valid JSON: {error}.") from None
    if not isinstance(value, dict):
        raise WeightsError(f"{folder}/{name} does not hold a JSON object.")
    return value


def _token_text(token) -> str | None:
    """A tokenizer_config special token: a string, or {"content": ...}."""
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) and token else None


def _template_text(value) -> str | None:
    """tokenizer_config.json's chat_template: a string, or a list of named templates (models
    with a tool-use template besides the default one), of which the default is the chat's."""
    if isinstance(value, list):
        named = {
            entry.get("name"): entry.get("template") for entry in value if isinstance(entry, dict)
        }
        value = named.get("default")
    return value if isinstance(value, str) and value.strip() else None


def registration_spec(config: Model, files: WeightsFiles) -> dict:
    """The custom model to register for a config whose weights are at its local path."""
    kind = kind_of(config).kind
    name = served_name(config)
    folder = config.local_path
    if kind == ModelKind.EMBEDDING:
        return {
            "version": 2,
            "model_name": name,
            "dimensions": config.dimensions,
            "max_tokens": config.max_token,
            "language": LANGUAGES,
            "model_specs": [_spec_entry(config)],
        }
    if kind == ModelKind.RERANK:
        return {
            "version": 2,
            "model_name": name,
            "type": "normal",
            "max_tokens": RERANK_MAX_TOKENS,
            "language": LANGUAGES,
            "model_specs": [_spec_entry(config)],
        }
    model_config = _json(files.config, "config.json", folder)
    tokenizer = _json(files.tokenizer_config, "tokenizer_config.json", folder)
    template = _template_text(tokenizer.get("chat_template")) or _template_text(files.chat_template)
    if template is None:
        raise WeightsError(
            f"{folder} has no chat template (tokenizer_config.json's chat_template, or "
            "chat_template.jinja): Xinference cannot chat with the model without one."
        )
    spec = {
        "version": 2,
        "model_name": name,
        "model_family": config.xinference_model_name,
        "model_description": f"{config.display_name or config.model}, weights at {folder}",
        "context_length": config.max_context,
        "model_lang": LANGUAGES,
        "model_ability": ["chat", *(["vision"] if config.vision else [])],
        "model_specs": [
            {**_spec_entry(config), "model_size_in_billions": config.model_size_in_billions or "1"}
        ],
        "chat_template": template,
    }
    eos_id = model_config.get("eos_token_id")
    eos_ids = eos_id if isinstance(eos_id, list) else [eos_id]
    stop_ids = [value for value in eos_ids if isinstance(value, int)]
    if stop_ids:
        spec["stop_token_ids"] = stop_ids
    stop = _token_text(tokenizer.get("eos_token"))
    if stop:
        spec["stop"] = [stop]
    return spec


def launch_body(config: Model) -> dict:
    """POST /v1/models: the uid is the config's model name, which One API and FastGPT use."""
    body: dict = {
        "model_uid": config.model,
        "model_name": served_name(config),
        "model_type": model_type(config),
        "replica": config.replicas,
        # None: the CPU. Otherwise how many GPUs the model takes.
        "n_gpu": None if config.device == Device.CPU else config.gpu_count,
    }
    if config.model_engine:
        body["model_engine"] = config.model_engine
    for field in ("model_format", "model_size_in_billions", "quantization"):
        value = getattr(config, field)
        if value:
            body[field] = value
    if not config.local_path and config.hub in (ModelHub.MODELSCOPE, ModelHub.HUGGINGFACE):
        body["download_hub"] = config.hub
    return body
