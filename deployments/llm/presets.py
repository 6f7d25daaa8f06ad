"""Presets: the models a team usually starts with, as data a config is filled from.

The three of the usual FastGPT setup (the qwen2 chat model, the m3e-base embedding model and
the bge-reranker-v2-m3 rerank model) and one other chat model. Xinference values (builtin
model name, engine, format, size, quantization) follow its builtin model specs of the 0.16 line
that stacks run, which later releases keep: qwen2-instruct (context 32768; pytorch 7B,
quantization none, vLLM or Transformers), llama-3.1-instruct (context 131072; pytorch 8B,
quantization none), m3e-base (768 dimensions, at most 512 tokens) and bge-reranker-v2-m3
(type normal, at most 8192 tokens). All four have ModelScope copies, the hub stacks download
from.

GPU memory is an estimate of the total a launch takes, for the fit check before it: weights as
their engines load them (16-bit for chat models, 32-bit for the others), the engine's cache
for a whole context, and a margin for CUDA itself. The numbers err on the high side; an
operator who knows better edits the config. A chat model on vLLM takes 90% of its GPU whatever
it needs, and Xinference gives a chat model its GPUs to itself: the estimate tells whether the
model can run there at all.
"""

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext_lazy as _

from ..choices import Device, ModelHub, ModelKind
from ..models import Team
from . import BY_KIND, Kind


@dataclass(frozen=True)
class Preset:
    key: str
    kind: ModelKind
    label: str
    description: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def config_kind(self) -> Kind:
        return BY_KIND[self.kind]

    def build(self, team: Team):
        """An unsaved config of the preset's kind for `team`."""
        return self.config_kind.model(team=team, **self.values)


SERVED_ON_ONE_GPU = {
    "device": Device.GPU,
    "gpu_count": 1,
    "replicas": 1,
    "hub": ModelHub.MODELSCOPE,
    "local_path": "",
}

# FastGPT's switches, the same for both chat presets.
CHAT_IN_FASTGPT = {
    "max_temperature": 1.2,
    "vision": False,
    "dataset_process": True,
    "used_in_classify": True,
    "used_in_extract_fields": True,
    "used_in_tool_call": True,
    "used_in_query_extension": True,
    # FastGPT then asks for tool calls in the prompt, which the chat presets follow; native
    # tool calls through One API are where a model answers in raw JSON instead.
    "tool_choice": False,
    "function_call": False,
    "default_system_chat_prompt": "",
}

PRESETS: dict[str, Preset] = {
    preset.key: preset
    for preset in (
        Preset(
            key="qwen2-instruct-7b",
            kind=ModelKind.LLM,
            label="Qwen2 7B Instruct",
            description=_(
                "The usual chat model of a FastGPT setup: Chinese and English, 32k context, "
                "served by vLLM. Fits a 24 GB GPU."
            ),
            values={
                **SERVED_ON_ONE_GPU,
                **CHAT_IN_FASTGPT,
                "model": "qwen2-instruct",
                "display_name": "Qwen2 7B Instruct",
                "xinference_model_name": "qwen2-instruct",
                "model_engine": "vLLM",
                "model_format": "pytorch",
                "model_size_in_billions": "7",
                "quantization": "none",
                # 7.6 billion parameters: 14.2 GiB of weights; vLLM's cache for the whole 32k
                # context is 1.8 GiB (28 layers, 4 key/value heads of 128); 4 GiB to spare.
                "gpu_memory_mib": 20 * 1024,
                # FastGPT counts with its own tokenizer: a margin below Qwen2's 32768.
                "max_context": 32000,
                "max_response": 4000,
                "quote_max_token": 24000,
            },
        ),
        Preset(
            key="llama-3.1-instruct-8b",
            kind=ModelKind.LLM,
            label="Llama 3.1 8B Instruct",
            description=_(
                "An alternative chat model, strongest in English, 128k context, served by "
                "vLLM. Needs a 40 GB GPU."
            ),
            values={
                **SERVED_ON_ONE_GPU,
                **CHAT_IN_FASTGPT,
                "model": "llama-3.1-instruct",
                "display_name": "Llama 3.1 8B Instruct",
                "xinference_model_name": "llama-3.1-instruct",
                "model_engine": "vLLM",
                "model_format": "pytorch",
                "model_size_in_billions": "8",
                "quantization": "none",
                # 8 billion parameters: 15 GiB of weights; vLLM reserves its cache for the
                # model's whole 131072-token context, 16 GiB (32 layers, 8 key/value heads of
                # 128); 3 GiB to spare. Hence not on a 24 GB GPU.
                "gpu_memory_mib": 34 * 1024,
                "max_context": 128000,
                "max_response": 4000,
                # Long quotes make answers slow; half the context is plenty for a knowledge base.
                "quote_max_token": 64000,
            },
        ),
        Preset(
            key="m3e-base",
            kind=ModelKind.EMBEDDING,
            label="M3E base",
            description=_(
                "The usual embedding model of a FastGPT setup: Chinese and English, 768 "
                "dimensions, small enough to share a GPU with the others."
            ),
            values={
                **SERVED_ON_ONE_GPU,
                "model": "m3e-base",
                "display_name": "M3E base",
                "xinference_model_name": "m3e-base",
                # Xinference chooses engines for embedding models from 1.7 on; this is the one
                # it uses by default, and the only one before.
                "model_engine": "sentence_transformers",
                "model_format": "pytorch",
                "model_size_in_billions": "",
                "quantization": "none",
                # 110 million parameters in 32-bit floats are 0.4 GiB; the rest is CUDA's own
                # context and a batch of 512-token inputs.
                "gpu_memory_mib": 1536,
                "dimensions": 768,
                # m3e-base reads at most 512 tokens and drops the rest of a longer chunk.
                "default_token": 400,
                "max_token": 512,
                "weight": 100,
            },
        ),
        Preset(
            key="bge-reranker-v2-m3",
            kind=ModelKind.RERANK,
            label="BGE reranker v2 m3",
            description=_(
                "The usual rerank model of a FastGPT setup: multilingual, orders the passages "
                "a search found by how well they answer the question."
            ),
            values={
                **SERVED_ON_ONE_GPU,
                "model": "bge-reranker-v2-m3",
                "display_name": "BGE reranker v2 m3",
                "xinference_model_name": "bge-reranker-v2-m3",
                "model_engine": "sentence_transformers",
                "model_format": "pytorch",
                "model_size_in_billions": "",
                "quantization": "none",
                # 568 million parameters in 32-bit floats are 2.1 GiB; inputs of up to 8192
                # tokens need as much again at worst.
                "gpu_memory_mib": 4096,
            },
        ),
    )
}


def get_preset(key: str) -> Preset | None:
    return PRESETS.get(key)


def presets_of(kind: ModelKind) -> list[Preset]:
    return [preset for preset in PRESETS.values() if preset.kind == kind]
