"""Hostile text put through the forms into every field whose value reaches SSH, the compose
file, config.json or an outside service's body. Each value is either refused beside its field
(nothing saved) or kept verbatim and written only as data: the rendered files parse to the same
structure with the value as one string, and nothing ran."""

import json
import os
import uuid

import pytest
import yaml
from django.urls import reverse

from deployments.choices import LaunchStatus, StackStatus
from deployments.llm.presets import PRESETS
from deployments.models import LLMModelConfig, ModelLaunch, RemoteProvider, Server, Stack
from deployments.stacks.files import stack_files
from deployments.stacks.render import COMPOSE_FILE, CONFIG_FILE
from testkit import hostile
from testkit.factories import make_server, make_stack

pytestmark = pytest.mark.django_db

MARKER = f"{hostile.MARKER_PREFIX}{uuid.uuid4()}"
CORPUS = hostile.corpus(MARKER)
IDS = hostile.ids()


def post_data(values: dict) -> dict:
    """Form fields as a browser posts them: unticked boxes absent, None as empty."""
    data = {}
    for name, value in values.items():
        if value is True:
            data[name] = "on"
        elif value not in (False, None):
            data[name] = value
    return data


def structure(node):
    """The shape of a parsed document: its keys and nesting, not its string values."""
    if isinstance(node, dict):
        return {key: structure(value) for key, value in node.items()}
    if isinstance(node, list):
        return [structure(item) for item in node]
    return type(node).__name__


@pytest.fixture
def stack(team):
    return make_stack(make_server(team), status=StackStatus.RUNNING)


@pytest.fixture
def baseline(stack):
    files = stack_files(stack).files
    return structure(yaml.safe_load(files[COMPOSE_FILE])), json.loads(files[CONFIG_FILE])


def refused_beside(response, field: str) -> bool:
    form = response.context and response.context.get("form")
    return bool(form is not None and form.errors.get(field))


@pytest.mark.parametrize("value", CORPUS, ids=IDS)
@pytest.mark.parametrize("field", ["display_name", "default_system_chat_prompt", "model"])
def test_a_chat_model_field_is_refused_or_lands_in_config_json_as_one_string(
    client, team, operator, stack, baseline, field, value
):
    client.force_login(operator)
    values = {**PRESETS["qwen2-instruct-7b"].values, field: value}
    response = client.post(reverse("model_create", args=["llm"]), post_data(values))

    if response.status_code == 200:
        assert refused_beside(response, field), response.content.decode()[:2000]
        assert not LLMModelConfig.objects.exists()
        return
    config = LLMModelConfig.objects.get()
    ModelLaunch.objects.create(
        team=team, stack=stack, model_uid=config.model, llm=config, status=LaunchStatus.READY
    )
    files = stack_files(stack).files
    compose_shape, config_before = baseline
    assert structure(yaml.safe_load(files[COMPOSE_FILE])) == compose_shape
    document = json.loads(files[CONFIG_FILE])
    assert set(document) == set(config_before)
    (entry,) = document["llmModels"]
    key = {"display_name": "name", "default_system_chat_prompt": "defaultSystemChatPrompt"}
    assert entry[key.get(field, "model")] == getattr(config, field) == value
    assert not os.path.exists(MARKER)


@pytest.mark.parametrize("value", CORPUS, ids=IDS)
@pytest.mark.parametrize("field", ["name", "models", "base_url"])
def test_a_remote_provider_field_is_refused_or_lands_in_config_json_as_one_string(
    client, operator, stack, baseline, field, value
):
    client.force_login(operator)
    values = {
        "name": "cloud",
        "channel_type": "8",
        "base_url": "https://api.example.com",
        "api_key": "sk-test",
        "models": "ERNIE-Speed-128K",
        "dataset_process": True,
        "max_context": "16000",
        field: value,
    }
    response = client.post(reverse("provider_create", args=[stack.pk]), post_data(values))

    if response.status_code == 200:
        assert refused_beside(response, field), response.content.decode()[:2000]
        assert not RemoteProvider.objects.exists()
        return
    provider = RemoteProvider.objects.get()
    # As after its first sync: One API has its channel, so config.json lists its models.
    RemoteProvider.objects.filter(pk=provider.pk).update(oneapi_channel_id=1)
    files = stack_files(stack).files
    assert structure(yaml.safe_load(files[COMPOSE_FILE])) == baseline[0]
    listed = json.loads(files[CONFIG_FILE])["llmModels"]
    assert [entry["model"] for entry in listed] == provider.model_names
    assert all(entry["name"] == f"{entry['model']} ({provider.name})" for entry in listed)
    if field == "name":
        assert provider.name == value.strip()
    elif field == "models":
        # Commas and new lines separate names, as the form says: each piece is kept as typed.
        assert provider.model_names and all(name in value for name in provider.model_names)


@pytest.mark.parametrize("value", CORPUS, ids=IDS)
@pytest.mark.parametrize("field", ["name", "registry_prefix", "data_dir"])
def test_a_stack_field_is_refused_or_leaves_the_compose_file_as_it_was(
    client, team, operator, field, value
):
    from tests.test_views_stacks import stack_data  # the form as the views tests post it

    server = make_server(team)
    client.force_login(operator)
    overrides = {field: value}
    if field == "registry_prefix":
        overrides["registry"] = "custom"
    response = client.post(reverse("stack_create"), stack_data(server, **overrides))

    assert response.status_code == 200
    assert refused_beside(response, field), response.content.decode()[:2000]
    assert not Stack.objects.exists()


@pytest.mark.parametrize("value", CORPUS, ids=IDS)
@pytest.mark.parametrize("field", ["name", "host", "ssh_user"])
def test_a_server_field_that_reaches_ssh_is_refused(client, team, owner, field, value):
    client.force_login(owner)
    values = {"name": "gpu-1", "host": "203.0.113.10", "ssh_port": "22", "ssh_user": "root"}
    response = client.post(
        reverse("server_create"), post_data({**values, "key_mode": "generate", field: value})
    )
    assert response.status_code == 200
    assert refused_beside(response, field), response.content.decode()[:2000]
    assert not Server.objects.exists()
