"""What the panel sends Xinference for a model config: the custom registration built from a
local weights folder's files, the name it is served under, and the launch body."""

import json

import pytest

from deployments.choices import Device, ModelHub
from deployments.llm.launch import (
    WeightsError,
    WeightsFiles,
    launch_body,
    model_type,
    registration_spec,
    served_name,
)
from deployments.llm.presets import PRESETS
from deployments.models import EmbeddingModelConfig, LLMModelConfig, RerankModelConfig

FOLDER = "/models/qwen2-0_5b"
TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}"


def chat_config(**fields) -> LLMModelConfig:
    values = {
        "model": "tiny-chat",
        "display_name": "Tiny chat",
        "xinference_model_name": "qwen2-instruct",
        "model_engine": "Transformers",
        "local_path": FOLDER,
        "hub": ModelHub.LOCAL,
        "max_context": 4096,
        **fields,
    }
    return LLMModelConfig(**values)


def weights(
    config: dict | None = None,
    tokenizer: dict | None = None,
    template: str | None = None,
) -> WeightsFiles:
    return WeightsFiles(
        config=json.dumps({"eos_token_id": 151645} if config is None else config),
        tokenizer_config=json.dumps(
            {"chat_template": TEMPLATE, "eos_token": "<|im_end|>"}
            if tokenizer is None
            else tokenizer
        ),
        chat_template=template,
    )


# Chat registrations ---------------------------------------------------------------------------


def test_a_chat_registration_carries_the_tokenizers_template_stop_token_and_context():
    spec = registration_spec(chat_config(), weights())
    assert spec["version"] == 2
    assert spec["model_name"] == "tiny-chat-weights"
    assert spec["model_family"] == "qwen2-instruct"
    assert spec["context_length"] == 4096
    assert spec["model_ability"] == ["chat"]
    assert spec["chat_template"] == TEMPLATE
    assert spec["stop"] == ["<|im_end|>"]
    assert spec["stop_token_ids"] == [151645]
    (entry,) = spec["model_specs"]
    assert entry["model_uri"] == FOLDER
    assert entry["model_format"] == "pytorch"
    assert entry["quantization"] == "none"
    assert entry["model_size_in_billions"] == "1"
    assert FOLDER in spec["model_description"]
    # Xinference parses the spec from a JSON string: it must serialise as it is.
    assert json.loads(json.dumps(spec)) == spec


def test_a_chat_registration_keeps_the_configs_format_size_and_quantization():
    config = chat_config(model_format="gptq", model_size_in_billions="0_5", quantization="Int4")
    (entry,) = registration_spec(config, weights())["model_specs"]
    assert entry["model_format"] == "gptq"
    assert entry["model_size_in_billions"] == "0_5"
    assert entry["quantization"] == "Int4"


def test_the_template_comes_from_chat_template_jinja_when_the_tokenizer_config_has_none():
    files = weights(tokenizer={"eos_token": "</s>"}, template="{{ messages }}")
    spec = registration_spec(chat_config(), files)
    assert spec["chat_template"] == "{{ messages }}"


def test_a_blank_template_in_the_tokenizer_config_falls_back_to_chat_template_jinja():
    files = weights(tokenizer={"chat_template": " ", "eos_token": "</s>"}, template="{{ x }}")
    assert registration_spec(chat_config(), files)["chat_template"] == "{{ x }}"


def test_the_tokenizer_configs_template_wins_over_chat_template_jinja():
    spec = registration_spec(chat_config(), weights(template="{{ other }}"))
    assert spec["chat_template"] == TEMPLATE


def test_a_named_template_list_uses_the_default_template():
    tokenizer = {
        "chat_template": [
            {"name": "tool_use", "template": "{{ tools }}"},
            {"name": "default", "template": TEMPLATE},
        ],
        "eos_token": "<|im_end|>",
    }
    spec = registration_spec(chat_config(), weights(tokenizer=tokenizer))
    assert spec["chat_template"] == TEMPLATE


def test_an_eos_token_given_as_an_added_token_object_is_read_from_its_content():
    tokenizer = {
        "chat_template": TEMPLATE,
        "eos_token": {"content": "<|eot_id|>", "lstrip": False, "special": True},
    }
    spec = registration_spec(chat_config(), weights(tokenizer=tokenizer))
    assert spec["stop"] == ["<|eot_id|>"]


def test_several_eos_token_ids_all_become_stop_token_ids():
    spec = registration_spec(chat_config(), weights(config={"eos_token_id": [128001, 128009]}))
    assert spec["stop_token_ids"] == [128001, 128009]


def test_without_an_eos_token_the_registration_leaves_stops_to_xinference():
    files = weights(
        config={"architectures": ["Qwen2ForCausalLM"]}, tokenizer={"chat_template": "x"}
    )
    spec = registration_spec(chat_config(), files)
    assert "stop_token_ids" not in spec
    assert "stop" not in spec


def test_a_vision_model_is_registered_with_the_vision_ability():
    spec = registration_spec(chat_config(vision=True), weights())
    assert spec["model_ability"] == ["chat", "vision"]


@pytest.mark.parametrize(
    ("files", "names"),
    [
        (WeightsFiles(config=None, tokenizer_config="{}"), ["config.json", "missing"]),
        (WeightsFiles(config="{}", tokenizer_config=None), ["tokenizer_config.json", "missing"]),
        (WeightsFiles(config="{oops", tokenizer_config="{}"), ["config.json", "not valid JSON"]),
        (WeightsFiles(config="{}", tokenizer_config="[1]"), ["tokenizer_config.json", "object"]),
    ],
)
def test_a_missing_or_broken_weights_file_is_named_in_the_error(files, names):
    with pytest.raises(WeightsError) as raised:
        registration_spec(chat_config(), files)
    message = str(raised.value)
    assert message.endswith(".")
    assert all(name in message for name in names)
    assert f"{FOLDER}/{names[0]}" in message


@pytest.mark.parametrize("template", [None, "", "   \n"])
def test_a_chat_model_without_a_template_is_refused_with_both_places_named(template):
    files = weights(tokenizer={"eos_token": "</s>"}, template=template)
    with pytest.raises(WeightsError) as raised:
        registration_spec(chat_config(), files)
    message = str(raised.value)
    assert FOLDER in message
    assert "chat_template.jinja" in message and "tokenizer_config.json" in message


# Embedding and rerank registrations -----------------------------------------------------------


def test_an_embedding_registration_has_the_configs_dimensions_and_max_tokens():
    config = EmbeddingModelConfig(
        model="minilm",
        xinference_model_name="all-MiniLM-L6-v2",
        local_path="/models/minilm",
        dimensions=384,
        max_token=256,
    )
    # An embedding folder needs none of the chat files.
    spec = registration_spec(config, WeightsFiles())
    assert spec["model_name"] == "minilm-weights"
    assert spec["dimensions"] == 384
    assert spec["max_tokens"] == 256
    assert spec["version"] == 2
    assert "chat_template" not in spec
    (entry,) = spec["model_specs"]
    assert entry["model_uri"] == "/models/minilm"
    assert entry["model_format"] == "pytorch" and entry["quantization"] == "none"


def test_a_rerank_registration_is_of_the_normal_type():
    config = RerankModelConfig(
        model="minilm-rerank", xinference_model_name="x", local_path="/models/rerank"
    )
    spec = registration_spec(config, WeightsFiles())
    assert spec["type"] == "normal"
    assert spec["model_name"] == "minilm-rerank-weights"
    assert spec["max_tokens"] > 0
    assert spec["model_specs"][0]["model_uri"] == "/models/rerank"
    assert "dimensions" not in spec


# Names and the launch body --------------------------------------------------------------------


def test_a_builtin_model_is_served_under_its_xinference_name():
    config = PRESETS["qwen2-instruct-7b"].build(team=None)
    assert served_name(config) == "qwen2-instruct"
    config.xinference_model_name = "qwen2.5-instruct"
    assert served_name(config) == "qwen2.5-instruct"


def test_local_weights_are_served_under_the_custom_name_never_a_builtins():
    config = PRESETS["m3e-base"].build(team=None)
    config.local_path = "/models/m3e"
    assert served_name(config) == "m3e-base-weights"
    assert served_name(config) != config.xinference_model_name


def test_the_launch_body_of_a_preset_downloads_from_its_hub_on_one_gpu():
    config = PRESETS["qwen2-instruct-7b"].build(team=None)
    assert launch_body(config) == {
        "model_uid": "qwen2-instruct",
        "model_name": "qwen2-instruct",
        "model_type": "LLM",
        "replica": 1,
        "n_gpu": 1,
        "model_engine": "vLLM",
        "model_format": "pytorch",
        "model_size_in_billions": "7",
        "quantization": "none",
        "download_hub": "modelscope",
    }


def test_the_uid_is_the_configs_model_name_not_xinferences():
    config = PRESETS["bge-reranker-v2-m3"].build(team=None)
    config.model = "team-reranker"
    body = launch_body(config)
    assert body["model_uid"] == "team-reranker"
    assert body["model_name"] == "bge-reranker-v2-m3"
    assert body["model_type"] == "rerank"


def test_a_cpu_model_asks_for_no_gpu_and_a_gpu_model_for_its_count():
    config = PRESETS["m3e-base"].build(team=None)
    config.device, config.gpu_count = Device.CPU, 0
    assert launch_body(config)["n_gpu"] is None
    config.device, config.gpu_count, config.replicas = Device.GPU, 2, 2
    body = launch_body(config)
    assert body["n_gpu"] == 2
    assert body["replica"] == 2


def test_unset_engine_format_size_and_quantization_are_left_to_xinference():
    config = EmbeddingModelConfig(model="m3e", xinference_model_name="m3e-base")
    body = launch_body(config)
    for field in ("model_engine", "model_format", "model_size_in_billions", "quantization"):
        assert field not in body
    assert body["model_type"] == "embedding"
    assert model_type(config) == "embedding"


def test_local_weights_launch_the_registration_without_a_download_hub():
    config = chat_config()
    body = launch_body(config)
    assert body["model_name"] == "tiny-chat-weights"
    assert body["model_uid"] == "tiny-chat"
    assert "download_hub" not in body


def test_a_hugging_face_config_downloads_from_hugging_face():
    config = PRESETS["m3e-base"].build(team=None)
    config.hub = ModelHub.HUGGINGFACE
    assert launch_body(config)["download_hub"] == "huggingface"
