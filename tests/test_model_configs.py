"""Model configs a team manages: presets, validation that names the field, team scoping, roles,
deletion while launched, the audit trail, and the Models pages."""

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from deployments.actions import ActionError
from deployments.actions.llm import (
    do_create_model_config,
    do_create_model_config_from_preset,
    do_delete_model_config,
    do_update_model_config,
)
from deployments.choices import LaunchStatus, ModelHub, ModelKind, Role
from deployments.forms.llm import MODEL_CONFIG_FORMS
from deployments.llm import KINDS, config_errors
from deployments.llm.fit import check_fit
from deployments.llm.presets import PRESETS
from deployments.models import (
    AuditEvent,
    EmbeddingModelConfig,
    KnowledgeBase,
    LLMModelConfig,
    ModelLaunch,
    RerankModelConfig,
)
from deployments.stacks.render import render
from testkit.factories import add_member, make_server, make_stack, make_team

PRESET_OF_KIND = {
    "llm": "qwen2-instruct-7b",
    "embedding": "m3e-base",
    "rerank": "bge-reranker-v2-m3",
}
# What nvidia-smi reports as the total memory of a 24 GB card (RTX 4090, A10) and a 40 GB A100.
GPU_24GB_MIB = 23028
GPU_40GB_MIB = 40960


def post_data(values: dict) -> dict:
    """Field values as a browser posts them: unchecked boxes are left out."""
    data = {}
    for name, value in values.items():
        if value is True:
            data[name] = "on"
        elif value is not False:
            data[name] = str(value)
    return data


def preset_values(kind: str, **overrides) -> dict:
    return {**PRESETS[PRESET_OF_KIND[kind]].values, **overrides}


def add_preset(team, user, key: str, **overrides):
    return do_create_model_config_from_preset(key, team=team, user=user, overrides=overrides)


def launch(config, stack):
    kind = next(slug for slug, kind in KINDS.items() if isinstance(config, kind.model))
    return ModelLaunch.objects.create(
        team=config.team, stack=stack, model_uid=config.model, **{kind: config}
    )


# Presets ------------------------------------------------------------------------------------


def test_presets_are_the_tutorials_three_and_an_alternative_chat_model():
    kinds = {key: preset.kind for key, preset in PRESETS.items()}
    assert kinds == {
        "qwen2-instruct-7b": ModelKind.LLM,
        "llama-3.1-instruct-8b": ModelKind.LLM,
        "m3e-base": ModelKind.EMBEDDING,
        "bge-reranker-v2-m3": ModelKind.RERANK,
    }
    assert PRESETS["m3e-base"].values["dimensions"] == 768
    assert all(preset.values["hub"] == ModelHub.MODELSCOPE for preset in PRESETS.values())
    assert all(preset.values["gpu_memory_mib"] > 0 for preset in PRESETS.values())


@pytest.mark.parametrize("key", list(PRESETS))
def test_every_preset_makes_a_config_that_passes_every_rule(team, operator, key):
    config = add_preset(team, operator, key)
    config.refresh_from_db()
    for name, value in PRESETS[key].values.items():
        assert getattr(config, name) == value, name


@pytest.mark.parametrize("key", list(PRESETS))
def test_every_preset_is_a_valid_form_as_it_is(team, operator, key):
    preset = PRESETS[key]
    form = MODEL_CONFIG_FORMS[preset.config_kind.slug](
        post_data(preset.values), user=operator, teams=[team]
    )
    assert form.is_valid(), form.errors


def one_gpu(name: str, total_mib: int) -> dict:
    """A server's facts with one idle GPU, as nvidia-smi reports it."""
    gpu = {"index": 0, "name": name, "memory_total_mib": total_mib, "memory_used_mib": 0}
    return {"gpus": [{**gpu, "memory_free_mib": total_mib - 400}]}


@pytest.mark.parametrize(
    ("key", "fits_24gb", "fits_40gb"),
    [
        ("qwen2-instruct-7b", True, True),
        ("llama-3.1-instruct-8b", False, True),
        ("m3e-base", True, True),
        ("bge-reranker-v2-m3", True, True),
    ],
)
def test_the_fit_check_agrees_with_what_the_presets_promise(key, fits_24gb, fits_40gb):
    values = PRESETS[key].values

    def fits(facts):
        return check_fit(facts, values["gpu_memory_mib"], values["gpu_count"], values["device"])

    assert fits(one_gpu("NVIDIA A10", GPU_24GB_MIB)).fits is fits_24gb
    assert fits(one_gpu("NVIDIA A100-SXM4-40GB", GPU_40GB_MIB)).fits is fits_40gb
    if key == "qwen2-instruct-7b":
        assert "Fits a 24 GB GPU" in PRESETS[key].description
    if key == "llama-3.1-instruct-8b":
        assert "Needs a 40 GB GPU" in PRESETS[key].description


def test_preset_configs_become_fastgpt_model_entries(team, operator):
    chat = add_preset(team, operator, "qwen2-instruct-7b")
    embedding = add_preset(team, operator, "m3e-base")
    rerank = add_preset(team, operator, "bge-reranker-v2-m3")
    stack = make_stack(make_server(team))
    config = json.loads(
        render(stack, {}, llms=[chat], embeddings=[embedding], reranks=[rerank]).files[
            "config.json"
        ]
    )
    [llm] = config["llmModels"]
    assert (llm["model"], llm["maxContext"], llm["maxResponse"]) == ("qwen2-instruct", 32000, 4000)
    assert llm["datasetProcess"] is True
    [vector] = config["vectorModels"]
    assert (vector["model"], vector["defaultConfig"]) == ("m3e-base", {"dimensions": 768})
    assert config["reRankModels"][0]["model"] == "bge-reranker-v2-m3"


# Validation that names the field --------------------------------------------------------------

BAD_INPUT = [
    ("llm", {"model": "qwen 2"}, "model"),
    ("llm", {"model": "qwen/../2"}, "model"),
    ("llm", {"xinference_model_name": "qwen2;reboot"}, "xinference_model_name"),
    ("llm", {"model_engine": ""}, "model_engine"),
    ("llm", {"model_engine": "vllm --evil"}, "model_engine"),
    ("llm", {"model_size_in_billions": "7.5"}, "model_size_in_billions"),
    ("llm", {"quantization": "4 bit"}, "quantization"),
    ("llm", {"local_path": "models/qwen"}, "local_path"),
    ("llm", {"local_path": "/data/../etc"}, "local_path"),
    ("llm", {"hub": ModelHub.LOCAL, "local_path": ""}, "local_path"),
    ("llm", {"device": "cpu", "gpu_count": 1}, "gpu_count"),
    ("llm", {"device": "gpu", "gpu_count": 0}, "gpu_count"),
    ("llm", {"max_context": 8000, "max_response": 8000, "quote_max_token": 6000}, "max_response"),
    ("llm", {"max_context": 8000, "quote_max_token": 8001}, "quote_max_token"),
    ("embedding", {"dimensions": 0}, "dimensions"),
    ("embedding", {"dimensions": 8193}, "dimensions"),
    ("embedding", {"default_token": 600, "max_token": 512}, "default_token"),
    ("rerank", {"device": "cpu", "gpu_count": 2}, "gpu_count"),
]


@pytest.mark.parametrize(("kind", "overrides", "field"), BAD_INPUT)
def test_the_form_names_the_field_of_each_broken_rule(team, operator, kind, overrides, field):
    form = MODEL_CONFIG_FORMS[kind](
        post_data(preset_values(kind, **overrides)), user=operator, teams=[team]
    )
    assert not form.is_valid()
    assert list(form.errors) == [field]


@pytest.mark.parametrize(("kind", "overrides", "field"), BAD_INPUT)
def test_the_action_names_the_field_of_each_broken_rule(team, operator, kind, overrides, field):
    with pytest.raises(ValidationError) as caught:
        do_create_model_config(
            kind, team=team, data=preset_values(kind, **overrides), user=operator
        )
    assert list(caught.value.message_dict) == [field]
    assert not KINDS[kind].model.objects.exists()


def test_a_cpu_model_with_no_gpu_is_valid(team, operator):
    config = add_preset(team, operator, "m3e-base", device="cpu", gpu_count=0)
    assert (config.device, config.gpu_count) == ("cpu", 0)


def test_a_local_path_means_the_weights_are_not_downloaded(team, operator):
    config = add_preset(team, operator, "qwen2-instruct-7b", local_path="/data/models/qwen2-7b")
    assert config.hub == ModelHub.LOCAL
    form = MODEL_CONFIG_FORMS["llm"](
        post_data(preset_values("llm", model="other", local_path="/data/models/q")),
        user=operator,
        teams=[team],
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["hub"] == ModelHub.LOCAL


def test_a_name_is_unique_in_the_team_across_all_kinds(team, operator):
    add_preset(team, operator, "m3e-base")
    with pytest.raises(ValidationError) as caught:
        add_preset(team, operator, "m3e-base")
    assert "already has an embedding model named “m3e-base”" in caught.value.messages[0]
    form = MODEL_CONFIG_FORMS["llm"](
        post_data(preset_values("llm", model="m3e-base")), user=operator, teams=[team]
    )
    assert not form.is_valid()
    assert "embedding model named “m3e-base”" in form.errors["model"][0]
    assert EmbeddingModelConfig.objects.count() == 1 and not LLMModelConfig.objects.exists()


def test_another_team_may_use_the_same_name(team, other_team, operator):
    add_member(other_team, operator, role=Role.OPERATOR)
    first = add_preset(team, operator, "m3e-base")
    second = add_preset(other_team, operator, "m3e-base")
    assert first.model == second.model and first.team != second.team


def test_editing_keeps_its_own_name_and_refuses_a_taken_one(team, operator):
    chat = add_preset(team, operator, "qwen2-instruct-7b")
    add_preset(team, operator, "bge-reranker-v2-m3")
    assert do_update_model_config(chat, data={"max_response": 2000}, user=operator) == [
        "max_response"
    ]
    with pytest.raises(ValidationError) as caught:
        do_update_model_config(chat, data={"model": "bge-reranker-v2-m3"}, user=operator)
    assert list(caught.value.message_dict) == ["model"]
    assert chat.model == "qwen2-instruct"  # left as it was
    chat.refresh_from_db()
    assert (chat.model, chat.max_response) == ("qwen2-instruct", 2000)


# Roles and team scoping ---------------------------------------------------------------------


def test_a_viewer_cannot_add_edit_or_delete_through_the_actions(team, operator, viewer):
    config = add_preset(team, operator, "m3e-base")
    with pytest.raises(PermissionDenied):
        add_preset(team, viewer, "qwen2-instruct-7b")
    with pytest.raises(PermissionDenied):
        do_update_model_config(config, data={"dimensions": 512}, user=viewer)
    with pytest.raises(PermissionDenied):
        do_delete_model_config(config, user=viewer)
    assert EmbeddingModelConfig.objects.get().dimensions == 768


def test_a_viewer_sees_the_models_but_gets_403_on_adding(client, team, operator, viewer):
    config = add_preset(team, operator, "m3e-base")
    client.force_login(viewer)
    html = client.get(reverse("model_list")).content.decode()
    assert "m3e-base" in html and reverse("model_preset") not in html
    detail = client.get(reverse("model_detail", args=["embedding", config.pk]))
    edit_url = reverse("model_edit", args=["embedding", config.pk])
    assert detail.status_code == 200 and edit_url not in detail.content.decode()
    assert client.get(reverse("model_create", args=["llm"])).status_code == 403
    assert client.get(reverse("model_preset")).status_code == 403
    data = post_data(preset_values("llm"))
    assert client.post(reverse("model_create", args=["llm"]), data).status_code == 403
    assert client.get(reverse("model_edit", args=["embedding", config.pk])).status_code == 403
    assert client.post(reverse("model_delete", args=["embedding", config.pk])).status_code == 403
    assert not LLMModelConfig.objects.exists() and EmbeddingModelConfig.objects.exists()


def test_another_teams_config_is_404_and_not_listed(client, team, other_team, operator):
    owner_elsewhere = add_member(other_team, role=Role.OPERATOR)
    theirs = add_preset(other_team, owner_elsewhere, "bge-reranker-v2-m3", model="their-rerank")
    client.force_login(operator)
    assert "their-rerank" not in client.get(reverse("model_list")).content.decode()
    for name in ("model_detail", "model_edit", "model_delete"):
        assert client.get(reverse(name, args=["rerank", theirs.pk])).status_code == 404
    assert client.post(reverse("model_delete", args=["rerank", theirs.pk])).status_code == 404
    assert RerankModelConfig.objects.filter(pk=theirs.pk).exists()


def test_a_config_is_only_found_under_its_own_kind(client, team, operator):
    config = add_preset(team, operator, "m3e-base")
    client.force_login(operator)
    assert client.get(reverse("model_detail", args=["embedding", config.pk])).status_code == 200
    assert client.get(reverse("model_detail", args=["vision", config.pk])).status_code == 404
    assert client.get(reverse("model_create", args=["vision"])).status_code == 404


def test_an_operator_cannot_pick_a_team_they_only_view(client, team, other_team, operator):
    add_member(other_team, operator, role=Role.VIEWER)
    add_member(make_team("Gamma"), operator, role=Role.OPERATOR)
    client.force_login(operator)
    data = {**post_data(preset_values("rerank")), "team": other_team.pk}
    response = client.post(reverse("model_create", args=["rerank"]), data)
    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["team"]
    assert not RerankModelConfig.objects.exists()


# Deleting -----------------------------------------------------------------------------------


def test_delete_is_refused_while_a_launch_refers_to_the_config(team, operator):
    config = add_preset(team, operator, "qwen2-instruct-7b")
    launch(config, make_stack(make_server(team), name="prod"))
    with pytest.raises(ActionError, match="launched on stack “prod”: terminate it there first"):
        do_delete_model_config(config, user=operator)
    assert LLMModelConfig.objects.filter(pk=config.pk).exists()
    assert not AuditEvent.objects.filter(action="model.delete").exists()


def test_delete_takes_ended_launches_along_and_keeps_their_runs(team, operator):
    config = add_preset(team, operator, "m3e-base")
    stack = make_stack(make_server(team), name="prod")
    ended = launch(config, stack)
    ended.status = LaunchStatus.TERMINATED
    ended.save()
    do_delete_model_config(config, user=operator)
    assert not EmbeddingModelConfig.objects.filter(pk=config.pk).exists()
    assert not ModelLaunch.objects.filter(pk=ended.pk).exists()


def test_delete_is_refused_while_a_knowledge_base_uses_the_config(team, operator):
    embedding = add_preset(team, operator, "m3e-base")
    chat = add_preset(team, operator, "qwen2-instruct-7b")
    KnowledgeBase.objects.create(
        team=team,
        stack=make_stack(make_server(team)),
        name="handbook",
        embedding_model=embedding.model,
        agent_model=chat.model,
    )
    with pytest.raises(ActionError, match="“handbook”"):
        do_delete_model_config(embedding, user=operator)
    assert EmbeddingModelConfig.objects.filter(pk=embedding.pk).exists()


def test_the_delete_page_shows_the_launches_and_the_post_keeps_the_config(client, team, operator):
    config = add_preset(team, operator, "bge-reranker-v2-m3")
    launch(config, make_stack(make_server(team), name="prod"))
    client.force_login(operator)
    page = client.get(reverse("model_delete", args=["rerank", config.pk])).content.decode()
    assert "prod" in page and 'class="danger"' not in page
    response = client.post(reverse("model_delete", args=["rerank", config.pk]), follow=True)
    assert "terminate it there first" in response.content.decode()
    assert RerankModelConfig.objects.filter(pk=config.pk).exists()


def test_an_operator_deletes_a_config_after_confirming(client, team, operator):
    config = add_preset(team, operator, "bge-reranker-v2-m3")
    client.force_login(operator)
    page = client.get(reverse("model_delete", args=["rerank", config.pk])).content.decode()
    assert 'class="danger"' in page
    response = client.post(reverse("model_delete", args=["rerank", config.pk]))
    assert response.url == reverse("model_list")
    assert not RerankModelConfig.objects.exists()


# Audit --------------------------------------------------------------------------------------


def test_create_edit_and_delete_leave_audit_rows(team, operator):
    config = add_preset(team, operator, "m3e-base")
    do_update_model_config(config, data={"default_token": 300}, user=operator)
    assert do_update_model_config(config, data={"default_token": 300}, user=operator) == []
    do_delete_model_config(config, user=operator)
    events = list(
        AuditEvent.objects.filter(action__startswith="model.")
        .order_by("id")
        .values_list("action", "actor", "team", "target_repr", "details")
    )
    assert events == [
        (
            "model.create",
            operator.pk,
            team.pk,
            "M3E base",
            {"kind": "embedding", "model": "m3e-base", "preset": "m3e-base"},
        ),
        (
            "model.update",
            operator.pk,
            team.pk,
            "M3E base",
            {"kind": "embedding", "fields": ["default_token"]},
        ),
        (
            "model.delete",
            operator.pk,
            team.pk,
            "M3E base",
            {"kind": "embedding", "model": "m3e-base"},
        ),
    ]


# Pages --------------------------------------------------------------------------------------


def test_the_models_page_lists_each_kind_and_is_in_the_navigation(client, team, operator):
    add_preset(team, operator, "qwen2-instruct-7b")
    add_preset(team, operator, "m3e-base")
    client.force_login(operator)
    response = client.get(reverse("model_list"))
    html = response.content.decode()
    assert f'href="{reverse("model_list")}" aria-current="page">Models' in html
    sections = {
        s["kind"].slug: [c.model for c in s["configs"]] for s in response.context["sections"]
    }
    assert sections == {"llm": ["qwen2-instruct"], "embedding": ["m3e-base"], "rerank": []}
    assert "No rerank models yet." in html
    assert "20480 MiB" in html


def test_choosing_a_preset_and_a_team_opens_a_prefilled_form(client, team, other_team, operator):
    add_member(other_team, operator, role=Role.OPERATOR)
    client.force_login(operator)
    response = client.post(
        reverse("model_preset"),
        {"preset": "llama-3.1-instruct-8b", "team": other_team.pk, "action": "review"},
    )
    assert response.url == (
        reverse("model_create", args=["llm"])
        + f"?preset=llama-3.1-instruct-8b&team={other_team.pk}"
    )
    page = client.get(response.url)
    form = page.context["form"]
    assert form["model"].value() == "llama-3.1-instruct"
    assert form["team"].value() == other_team.pk
    assert 'value="llama-3.1-instruct"' in page.content.decode()
    assert "Llama 3.1 8B Instruct" in page.content.decode()
    # Posting the reviewed form creates the config in the chosen team, the preset recorded.
    data = post_data(PRESETS["llama-3.1-instruct-8b"].values)
    data["team"] = other_team.pk
    created = client.post(response.url, data)
    config = LLMModelConfig.objects.get()
    assert created.url == reverse("model_detail", args=["llm", config.pk])
    assert config.team == other_team
    assert AuditEvent.objects.get(action="model.create").details["preset"] == (
        "llama-3.1-instruct-8b"
    )


def test_adding_a_preset_as_it_is_and_again_with_the_name_taken(client, team, operator):
    client.force_login(operator)
    data = {"preset": "m3e-base", "action": "add"}
    first = client.post(reverse("model_preset"), data)
    config = EmbeddingModelConfig.objects.get()
    assert first.url == reverse("model_detail", args=["embedding", config.pk])
    again = client.post(reverse("model_preset"), data, follow=True)
    assert "already has a" in again.content.decode()
    assert again.context["form"]["model"].value() == "m3e-base"  # the form, to rename it
    assert EmbeddingModelConfig.objects.count() == 1


def test_bad_input_on_the_page_is_shown_beside_its_field(client, team, operator):
    client.force_login(operator)
    data = post_data(preset_values("llm", max_context=4000, max_response=4000, model="a b"))
    response = client.post(reverse("model_create", args=["llm"]), data)
    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"model", "max_response", "quote_max_token"}
    html = response.content.decode()
    for field in ("model", "max_response", "quote_max_token"):
        assert f'id="id_{field}_error"' in html
    assert not LLMModelConfig.objects.exists()


def test_nonsense_numbers_on_the_page_are_errors_not_a_crash(client, team, operator):
    client.force_login(operator)
    data = post_data(preset_values("embedding", dimensions="lots", gpu_count="-1"))
    response = client.post(reverse("model_create", args=["embedding"]), data)
    assert response.status_code == 200
    assert {"dimensions", "gpu_count"} <= set(response.context["form"].errors)


def test_an_operator_edits_a_config_on_its_page(client, team, operator):
    config = add_preset(team, operator, "qwen2-instruct-7b")
    client.force_login(operator)
    url = reverse("model_edit", args=["llm", config.pk])
    assert client.get(url).context["form"]["max_context"].value() == 32000
    data = post_data({**PRESETS["qwen2-instruct-7b"].values, "max_response": 2000})
    response = client.post(url, data)
    assert response.url == reverse("model_detail", args=["llm", config.pk])
    config.refresh_from_db()
    assert config.max_response == 2000
    unchanged = client.post(url, data, follow=True)
    assert "Nothing changed." in unchanged.content.decode()


def test_the_detail_page_shows_fields_and_launches(client, team, viewer, operator):
    config = add_preset(team, operator, "qwen2-instruct-7b")
    launch(config, make_stack(make_server(team), name="prod"))
    client.force_login(viewer)
    html = client.get(reverse("model_detail", args=["llm", config.pk])).content.decode()
    assert "vLLM" in html and "ModelScope" in html and "32000" in html and "prod" in html


@pytest.mark.parametrize("size", ["7\n", "0_5\n", "7\nx", "7 ", "0.5"])
def test_a_size_in_billions_with_a_newline_or_other_text_is_refused(size):
    errors = config_errors(KINDS["llm"], {"model_size_in_billions": size})
    assert "model_size_in_billions" in errors


@pytest.mark.parametrize("size", ["7", "0_5", "72"])
def test_a_size_in_billions_as_xinference_writes_it_is_accepted(size):
    assert config_errors(KINDS["llm"], {"model_size_in_billions": size}) == {}
