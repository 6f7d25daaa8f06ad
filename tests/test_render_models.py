"""The rendered files once models are wired in: FastGPT's One API key in .env and the compose
file, and config.json listing the ready models, with Xinference's API key kept out of what the
panel shows."""

import json

import pytest
import yaml

from deployments.llm.presets import PRESETS
from deployments.stacks.render import COMPOSE_FILE, CONFIG_FILE, ENV_FILE, env_values, render
from deployments.stacks.secrets import (
    ONEAPI_FASTGPT_KEY,
    XINFERENCE_API_KEY,
    save_obtained_secret,
    stack_secrets,
)
from testkit.factories import make_server, make_stack

pytestmark = pytest.mark.django_db

XINFERENCE_KEY = "sk-XinferenceKey0123456789abcdef"
RELAY_KEY = "RelayTokenForFastGPT0123456789abcdefABCDEF012345"


@pytest.fixture
def stack(team):
    return make_stack(make_server(team))


@pytest.fixture
def models(team):
    return {
        "llms": [PRESETS["qwen2-instruct-7b"].build(team)],
        "embeddings": [PRESETS["m3e-base"].build(team)],
        "reranks": [PRESETS["bge-reranker-v2-m3"].build(team)],
    }


def env_of(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line)
    return {name: value.strip('"') for name, value in pairs}


def test_fastgpt_uses_one_apis_root_token_until_it_has_a_relay_token_of_its_own(stack):
    secrets = stack_secrets(stack)
    env = env_of(render(stack, secrets).files[ENV_FILE])
    assert env["FASTGPT_CHAT_KEY"] == secrets["ONEAPI_ROOT_TOKEN"]

    save_obtained_secret(stack, ONEAPI_FASTGPT_KEY, RELAY_KEY)
    env = env_of(render(stack, stack_secrets(stack)).files[ENV_FILE])
    assert env["FASTGPT_CHAT_KEY"] == RELAY_KEY
    # The root token stays One API's INITIAL_ROOT_TOKEN.
    assert env["ONEAPI_ROOT_TOKEN"] == secrets["ONEAPI_ROOT_TOKEN"]


def test_the_compose_file_sends_fastgpts_key_with_the_sk_prefix_by_name_only(stack):
    save_obtained_secret(stack, ONEAPI_FASTGPT_KEY, RELAY_KEY)
    result = render(stack, stack_secrets(stack))
    fastgpt = yaml.safe_load(result.files[COMPOSE_FILE])["services"]["fastgpt"]
    assert fastgpt["environment"]["CHAT_API_KEY"] == "sk-${FASTGPT_CHAT_KEY}"
    assert RELAY_KEY not in result.files[COMPOSE_FILE]


def test_credentials_obtained_later_stay_out_of_the_env_file_but_fastgpts_key():
    values = env_values(
        {
            "PG_PASSWORD": "pg",
            "ONEAPI_ROOT_TOKEN": "root",
            "ONEAPI_ACCESS_TOKEN": "management",
            ONEAPI_FASTGPT_KEY: "relay",
            XINFERENCE_API_KEY: "xinference",
        }
    )
    assert values == {"PG_PASSWORD": "pg", "ONEAPI_ROOT_TOKEN": "root", "FASTGPT_CHAT_KEY": "relay"}


def test_no_chat_key_is_written_without_a_token_to_use():
    assert "FASTGPT_CHAT_KEY" not in env_values({"PG_PASSWORD": "pg"})


def test_the_relay_token_is_masked_in_the_shown_env_file(stack):
    save_obtained_secret(stack, ONEAPI_FASTGPT_KEY, RELAY_KEY)
    shown = render(stack, stack_secrets(stack)).shown()
    assert "FASTGPT_CHAT_KEY=********" in shown[ENV_FILE]
    assert not any(RELAY_KEY in text for text in shown.values())


def test_config_json_lists_the_ready_models_by_kind(stack, models):
    config = json.loads(render(stack, stack_secrets(stack), **models).files[CONFIG_FILE])
    assert [entry["model"] for entry in config["llmModels"]] == ["qwen2-instruct"]
    assert [entry["model"] for entry in config["vectorModels"]] == ["m3e-base"]
    assert [entry["model"] for entry in config["reRankModels"]] == ["bge-reranker-v2-m3"]
    rerank = config["reRankModels"][0]
    assert rerank["requestUrl"] == "http://xinference:9997/v1/rerank"
    assert rerank["name"] == "BGE reranker v2 m3"


def test_without_models_config_json_lists_none(stack):
    config = json.loads(render(stack, stack_secrets(stack)).files[CONFIG_FILE])
    assert config["llmModels"] == [] and config["vectorModels"] == []
    assert config["reRankModels"] == []


def test_rerank_models_carry_xinferences_api_key_when_its_auth_is_on(stack, models):
    secrets = stack_secrets(stack)
    plain = json.loads(render(stack, secrets, **models).files[CONFIG_FILE])
    assert plain["reRankModels"][0]["requestAuth"] == ""

    save_obtained_secret(stack, XINFERENCE_API_KEY, XINFERENCE_KEY)
    result = render(stack, stack_secrets(stack), **models)
    config = json.loads(result.files[CONFIG_FILE])
    assert config["reRankModels"][0]["requestAuth"] == XINFERENCE_KEY
    # Chat and embedding models go through One API: no key of Xinference's in their entries.
    assert XINFERENCE_KEY not in json.dumps(config["llmModels"] + config["vectorModels"])


def test_xinferences_api_key_never_appears_in_the_shown_files(stack, models):
    save_obtained_secret(stack, XINFERENCE_API_KEY, XINFERENCE_KEY)
    save_obtained_secret(stack, ONEAPI_FASTGPT_KEY, RELAY_KEY)
    reranks = [*models["reranks"], PRESETS["bge-reranker-v2-m3"].build(stack.team)]
    reranks[1].model = "second-reranker"
    result = render(stack, stack_secrets(stack), **{**models, "reranks": reranks})
    shown = result.shown()
    for text in shown.values():
        assert XINFERENCE_KEY not in text
        assert RELAY_KEY not in text
    config = json.loads(shown[CONFIG_FILE])
    assert [entry["requestAuth"] for entry in config["reRankModels"]] == ["********"] * 2
    # Everything else is shown as written.
    written = json.loads(result.files[CONFIG_FILE])
    assert config["llmModels"] == written["llmModels"]
    assert config["vectorModels"] == written["vectorModels"]
    assert [e["requestUrl"] for e in config["reRankModels"]] == [
        e["requestUrl"] for e in written["reRankModels"]
    ]


def test_a_config_without_secrets_is_shown_exactly_as_written(stack, models):
    """What the panel stored before is diffed against what it shows now: no spurious change."""
    result = render(stack, stack_secrets(stack), **models)
    assert result.shown()[CONFIG_FILE] == result.files[CONFIG_FILE]
    assert result.shown()[COMPOSE_FILE] == result.files[COMPOSE_FILE]


def test_the_files_of_a_stack_carry_its_launched_models_and_xinferences_key_unmasked(stack):
    """A deploy (and so a rollback, which deploys the restored settings) writes config.json
    with the models launched now and the real key; only what is shown has the mask."""
    from deployments.choices import LaunchStatus
    from deployments.models import ModelLaunch
    from deployments.stacks.files import stack_files

    save_obtained_secret(stack, XINFERENCE_API_KEY, XINFERENCE_KEY)
    rerank = PRESETS["bge-reranker-v2-m3"].build(stack.team)
    rerank.save()
    ModelLaunch.objects.create(
        team=stack.team,
        stack=stack,
        rerank=rerank,
        model_uid=rerank.model,
        status=LaunchStatus.READY,
    )
    files = stack_files(stack)
    written = json.loads(files.files[CONFIG_FILE])
    shown = json.loads(files.shown()[CONFIG_FILE])
    assert [entry["model"] for entry in written["reRankModels"]] == [rerank.model]
    assert [entry["requestAuth"] for entry in written["reRankModels"]] == [XINFERENCE_KEY]
    assert [entry["requestAuth"] for entry in shown["reRankModels"]] == ["********"]
