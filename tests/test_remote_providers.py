"""Remote model providers (a cloud model service with a key) on a stack: each gets a One API
channel named after it, tested through One API, and its chat models are offered in FastGPT's
config.json next to the launched ones. The One API stand-in (v0.6.7) runs in a thread; the
provider itself is a small OpenAI-compatible server that wants its own key."""

import json

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.urls import reverse

from deployments.actions import ActionError
from deployments.actions.launches import do_launch_model
from deployments.actions.providers import (
    do_add_provider,
    do_delete_provider,
    do_edit_provider,
    do_test_providers,
)
from deployments.choices import LaunchStatus, PipelineKind, RunStatus, StackStatus
from deployments.clients.oneapi import OneAPIClient
from deployments.errors import PanelError
from deployments.forms.providers import ProviderForm
from deployments.llm.presets import PRESETS
from deployments.llm.wiring import expected_in_fastgpt, update_oneapi
from deployments.models import (
    AuditEvent,
    ModelLaunch,
    PipelineEvent,
    PipelineRun,
    RemoteProvider,
    StepRun,
)
from deployments.pipelines import StepFailed, providers_sync, registry, runner
from deployments.pipelines.steps import StepContext
from deployments.stacks.files import shown_files, stack_files
from deployments.stacks.render import CONFIG_FILE
from deployments.stacks.secrets import ONEAPI_ACCESS_TOKEN, stack_secrets
from deployments.tasks import run_pipeline
from testkit.factories import add_member, make_server, make_stack, make_team
from testkit.standins.client import call
from testkit.standins.fastgpt import FastGPT
from testkit.standins.oneapi import OneAPI
from testkit.standins.server import RunningStandin, json_response

pytestmark = pytest.mark.django_db

KEY = "sk-ProviderKey0123456789abcdefSECRET"
WRONG_KEY = "sk-WrongKey0123456789abcdefALSOSECRET"
WORKER = "test:1"
ONE_API, TEST, FASTGPT, CHECK = range(4)


class ProviderUpstream:
    """A cloud model service speaking OpenAI's protocol. A wrong key is refused with the key
    echoed back, as some services do: the panel must mask it wherever it shows the refusal."""

    def __init__(self, key: str = KEY) -> None:
        self.key = key

    def handle(self, request):
        sent = request.header("Authorization").removeprefix("Bearer ")
        if sent != self.key:
            error = {"message": f"Incorrect API key provided: {sent}", "type": "auth_error"}
            return json_response({"error": error}, 401)
        model = request.json()["model"]
        message = {"role": "assistant", "content": "hi"}
        return json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    def reset(self):
        pass

    def close(self):
        pass


@pytest.fixture(autouse=True)
def _short_route_wait(settings):
    settings.ONEAPI_ROUTE_TIMEOUT = 10


@pytest.fixture
def oneapi():
    with RunningStandin(OneAPI({})) as server:
        yield server


@pytest.fixture
def upstream():
    with RunningStandin(ProviderUpstream()) as server:
        yield server


@pytest.fixture
def stack(team, oneapi):
    server = make_server(team, host="127.0.0.1")
    # Published: the panel reaches the stand-in directly rather than through SSH.
    return make_stack(
        server,
        name="prod",
        oneapi_port=oneapi.port,
        publish_internal_services=True,
        status=StackStatus.RUNNING,
    )


def provider_data(upstream=None, **fields) -> dict:
    data = {
        "name": "ernie",
        "channel_type": 8,
        "base_url": f"{upstream.url}/v1" if upstream else "https://api.example.com",
        "api_key": KEY,
        "model_names": ["ERNIE-Speed-128K", "ERNIE-Lite-8K"],
        "dataset_process": True,
        "max_context": 128000,
    }
    return {**data, **fields}


def add(stack, user, upstream=None, **fields) -> tuple[RemoteProvider, PipelineRun]:
    return do_add_provider(stack, data=provider_data(upstream, **fields), user=user)


def step(run: PipelineRun, index: int) -> tuple[str, list[str]]:
    """Run one step of the sync as a worker would, in this process."""
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, claimed_by=WORKER)
    run.refresh_from_db()
    pipeline = registry.get(PipelineKind.PROVIDERS_SYNC)
    name, func = pipeline.steps[index]
    ctx = StepContext(run=run, index=index, name=name, worker=WORKER)
    return func(ctx), ctx.lines


def sync(run: PipelineRun) -> list[str]:
    """The One API steps of a sync: channels, then their tests."""
    lines = []
    for index in (ONE_API, TEST):
        said, output = step(run, index)
        lines += [*output, said]
    return lines


def received(server, method: str, path: str) -> list[dict]:
    records = call("GET", server.url + "/__standin__/requests").json()["requests"]
    return [r for r in records if r["method"] == method and r["path"].split("?")[0] == path]


def admin(stack, oneapi) -> OneAPIClient:
    return OneAPIClient(oneapi.url, stack_secrets(stack)[ONEAPI_ACCESS_TOKEN])


def channels(stack, oneapi, name: str) -> list[dict]:
    with admin(stack, oneapi) as client:
        return client.channels_named(name)


def ready(stack, preset: str, **fields) -> ModelLaunch:
    config = PRESETS[preset].build(stack.team)
    for name, value in fields.items():
        setattr(config, name, value)
    config.save()
    kind = PRESETS[preset].config_kind.slug
    return ModelLaunch.objects.create(
        team=stack.team,
        stack=stack,
        model_uid=config.model,
        status=LaunchStatus.READY,
        **{kind: config},
    )


def leaked(*texts: str, key: str = KEY) -> list[str]:
    return [text for text in texts if key in text]


# One API's channels ----------------------------------------------------------------------------


def test_a_provider_gets_a_channel_named_after_it_with_its_type_key_base_url_and_models(
    stack, oneapi, upstream, operator
):
    provider, run = add(stack, operator, upstream)

    lines = sync(run)

    (created,) = received(oneapi, "POST", "/api/channel/")
    body = json.loads(created["body"])
    assert body["name"] == "ernie"
    assert body["type"] == 8
    assert body["key"] == KEY
    # One API adds /v1/chat/completions itself.
    assert body["base_url"] == upstream.url
    assert body["models"] == "ERNIE-Speed-128K,ERNIE-Lite-8K"
    assert body["config"] == "{}"
    (channel,) = channels(stack, oneapi, "ernie")
    provider.refresh_from_db()
    assert provider.oneapi_channel_id == channel["id"]
    assert any("created for ERNIE-Speed-128K, ERNIE-Lite-8K" in line for line in lines)
    # The key reached the provider only through One API.
    chats = received(upstream, "POST", "/v1/chat/completions")
    assert chats
    assert all(r["headers"]["Authorization"] == f"Bearer {KEY}" for r in chats)
    assert all(r["headers"]["User-Agent"] == "Go-http-client/1.1" for r in chats)
    assert leaked(*lines) == []


def test_an_openai_type_provider_keeps_its_type_and_base_url(stack, oneapi, upstream, operator):
    _, run = add(stack, operator, upstream, name="openai", channel_type=1)

    sync(run)

    (channel,) = channels(stack, oneapi, "openai")
    assert channel["type"] == 1
    assert channel["base_url"] == upstream.url


def test_the_channel_test_passes_and_is_recorded_on_the_provider(stack, oneapi, upstream, operator):
    provider, run = add(stack, operator, upstream)

    said, lines = step(run, ONE_API)
    said, lines = step(run, TEST)

    provider.refresh_from_db()
    assert provider.last_test_ok is True
    assert provider.last_tested_at is not None
    assert "channel test passed" in provider.last_test_message
    assert "'ERNIE-Speed-128K' answered" in provider.last_test_message
    (test,) = received(oneapi, "GET", f"/api/channel/test/{provider.oneapi_channel_id}")
    assert "passed" in said


def test_a_failed_channel_test_fails_the_step_with_one_apis_message_and_the_key_masked(
    stack, oneapi, upstream, operator
):
    provider, run = add(stack, operator, upstream, api_key=WRONG_KEY)
    step(run, ONE_API)

    with pytest.raises(PanelError) as failed:
        step(run, TEST)

    message = str(failed.value)
    assert "ernie: One API's test of the channel" in message
    assert "status code 401: Incorrect API key provided: ********" in message
    assert WRONG_KEY not in message
    provider.refresh_from_db()
    assert provider.last_test_ok is False
    assert provider.last_test_message in message
    assert WRONG_KEY not in provider.last_test_message
    events = PipelineEvent.objects.filter(run=run).values_list("message", flat=True)
    assert leaked(*events, key=WRONG_KEY) == []


def test_a_channel_type_one_api_will_not_serve_is_shown_as_one_apis_refusal(
    stack, oneapi, operator
):
    # The stand-in refuses types with adaptors of their own (Baidu's here), as a failed test.
    provider, run = add(stack, operator, name="baidu", channel_type=15, base_url="")
    step(run, ONE_API)

    with pytest.raises(PanelError) as failed:
        step(run, TEST)

    assert "baidu: One API's test of the channel" in str(failed.value)
    assert "channel type 15 is not modelled" in str(failed.value)
    (channel,) = channels(stack, oneapi, "baidu")
    # No base URL: One API's own for the type.
    assert channel["type"] == 15 and channel["base_url"] == ""


def test_editing_a_provider_updates_its_channel_and_a_blank_key_keeps_the_saved_one(
    stack, oneapi, upstream, operator
):
    provider, run = add(stack, operator, upstream)
    sync(run)
    channel_id = provider.__class__.objects.get(pk=provider.pk).oneapi_channel_id

    run = do_edit_provider(
        provider, data=provider_data(upstream, api_key="", model_names=["ERNIE-4.0"]), user=operator
    )
    sync(run)

    (updated,) = received(oneapi, "PUT", "/api/channel/")
    body = json.loads(updated["body"])
    assert body["id"] == channel_id
    assert body["models"] == "ERNIE-4.0"
    assert body["key"] == KEY
    assert body["status"] == 1
    assert len(received(oneapi, "POST", "/api/channel/")) == 1
    provider.refresh_from_db()
    assert provider.api_key == KEY
    assert provider.oneapi_channel_id == channel_id


def test_a_new_key_is_sent_on_the_next_sync(stack, oneapi, upstream, operator):
    provider, run = add(stack, operator, upstream)
    sync(run)
    new_key = "sk-NewKey0123456789abcdefNEWSECRET"

    run = do_edit_provider(provider, data=provider_data(upstream, api_key=new_key), user=operator)
    step(run, ONE_API)

    (updated,) = received(oneapi, "PUT", "/api/channel/")
    assert json.loads(updated["body"])["key"] == new_key
    (edit,) = AuditEvent.objects.filter(action="provider.edit")
    assert edit.details["key_changed"] is True
    assert new_key not in json.dumps(edit.details)


def test_renaming_a_provider_replaces_its_channel(stack, oneapi, upstream, operator):
    provider, run = add(stack, operator, upstream)
    sync(run)
    old_id = RemoteProvider.objects.get(pk=provider.pk).oneapi_channel_id

    run = do_edit_provider(provider, data=provider_data(upstream, name="qianfan"), user=operator)
    lines = sync(run)

    assert channels(stack, oneapi, "ernie") == []
    (channel,) = channels(stack, oneapi, "qianfan")
    assert channel["id"] != old_id
    assert any(f"(id {old_id}) deleted" in line for line in lines)


def test_deleting_a_provider_deletes_its_channel_and_leaves_the_xinference_channel_alone(
    stack, oneapi, upstream, operator
):
    ready(stack, "m3e-base")
    update_oneapi(stack, [].append, None)
    (xinference,) = channels(stack, oneapi, "xinference")
    provider, run = add(stack, operator, upstream)
    sync(run)
    channel_id = RemoteProvider.objects.get(pk=provider.pk).oneapi_channel_id

    run = do_delete_provider(provider, user=operator)
    lines = sync(run)

    assert channels(stack, oneapi, "ernie") == []
    assert len(received(oneapi, "DELETE", f"/api/channel/{channel_id}")) == 1
    assert channels(stack, oneapi, "xinference") == [xinference]
    assert not received(oneapi, "DELETE", f"/api/channel/{xinference['id']}")
    puts = [json.loads(r["body"])["id"] for r in received(oneapi, "PUT", "/api/channel/")]
    assert xinference["id"] not in puts
    assert "no remote providers" in " ".join(lines)


def test_a_removed_channel_taken_over_by_a_provider_of_the_same_name_is_kept(
    stack, oneapi, upstream, operator
):
    provider, run = add(stack, operator, upstream)
    sync(run)
    deleted = do_delete_provider(provider, user=operator)
    # Added again before the deletion's sync ran: it takes the channel over.
    again, run = add(stack, operator, upstream)
    sync(run)

    sync(deleted)

    (channel,) = channels(stack, oneapi, "ernie")
    again.refresh_from_db()
    assert channel["id"] == again.oneapi_channel_id


def test_the_model_wiring_never_deletes_a_providers_channel(stack, oneapi, upstream, operator):
    # One API's search matches a name prefix: "xinference-cloud" is found by "xinference".
    _, run = add(stack, operator, upstream, name="xinference-cloud")
    sync(run)
    launch = ready(stack, "m3e-base")
    update_oneapi(stack, [].append, None)
    ModelLaunch.objects.filter(pk=launch.pk).update(status=LaunchStatus.TERMINATED)

    said = update_oneapi(stack, [].append, None)

    assert "removed" in said
    assert channels(stack, oneapi, "xinference") == []
    (kept,) = channels(stack, oneapi, "xinference-cloud")
    assert kept["models"] == "ERNIE-Speed-128K,ERNIE-Lite-8K"


def test_a_sync_on_a_stack_that_is_not_deployed_is_refused(stack, oneapi, upstream, operator):
    _, run = add(stack, operator, upstream)
    stack.status = StackStatus.TORN_DOWN
    stack.save(update_fields=["status"])

    with pytest.raises(StepFailed, match="torn down: deploy it"):
        step(run, ONE_API)
    assert not received(oneapi, "POST", "/api/channel/")
    with pytest.raises(ActionError, match="deploy it before"):
        do_test_providers(stack, user=operator)


def test_a_provider_is_added_only_to_a_deployed_stack(team, operator):
    draft = make_stack(make_server(team), name="draft")
    with pytest.raises(ActionError, match="is not deployed: deploy it"):
        add(draft, operator)
    assert not RemoteProvider.objects.exists()


def test_the_key_stays_out_of_logs_while_syncing(stack, oneapi, upstream, operator, caplog):
    caplog.set_level("DEBUG")
    _, run = add(stack, operator, upstream)
    lines = sync(run)
    assert leaked(caplog.text, *lines) == []


# FastGPT's config.json -------------------------------------------------------------------------


def synced(stack, **fields) -> RemoteProvider:
    """A provider whose channel One API has: its models go into config.json."""
    data = provider_data(**fields)
    return RemoteProvider.objects.create(team=stack.team, stack=stack, oneapi_channel_id=7, **data)


def llm_entries(stack) -> dict[str, dict]:
    document = json.loads(shown_files(stack)[CONFIG_FILE])
    return {entry["model"]: entry for entry in document["llmModels"]}


def test_config_json_offers_a_providers_models_next_to_the_launched_ones(stack):
    ready(stack, "qwen2-instruct-7b")
    synced(stack)
    synced(
        stack, name="kimi", model_names=["moonshot-v1-8k"], dataset_process=False, max_context=8000
    )
    # Saved but not in One API yet: FastGPT could not reach its models.
    RemoteProvider.objects.create(
        team=stack.team, stack=stack, **provider_data(name="new", model_names=["not-synced"])
    )

    entries = llm_entries(stack)

    assert list(entries) == [
        "qwen2-instruct",
        "ERNIE-Speed-128K",
        "ERNIE-Lite-8K",
        "moonshot-v1-8k",
    ]
    ernie = entries["ERNIE-Speed-128K"]
    assert ernie["name"] == "ERNIE-Speed-128K (ernie)"
    assert ernie["datasetProcess"] is True
    assert ernie["maxContext"] == 128000
    assert ernie["maxResponse"] == 4000
    assert ernie["quoteMaxToken"] == 122000
    assert ernie["maxTemperature"] == 1
    assert ernie["charsPointsPrice"] == 0
    assert ernie["functionCall"] is False and ernie["toolChoice"] is False
    assert ernie["customCQPrompt"] == "" and ernie["customExtractPrompt"] == ""
    assert ernie["usedInClassify"] is True and ernie["usedInQueryExtension"] is True
    kimi = entries["moonshot-v1-8k"]
    assert kimi["datasetProcess"] is False
    assert kimi["maxContext"] == 8000 and kimi["maxResponse"] == 2000
    assert kimi["quoteMaxToken"] == 4000
    assert expected_in_fastgpt(stack)["llmModels"] == list(entries)
    assert KEY not in "".join(stack_files(stack).files.values())


def test_a_launched_model_keeps_its_entry_when_a_provider_names_it_too(stack):
    ready(stack, "qwen2-instruct-7b")
    synced(stack, model_names=["qwen2-instruct", "qwen-max"])

    entries = llm_entries(stack)

    assert list(entries) == ["qwen2-instruct", "qwen-max"]
    assert entries["qwen2-instruct"]["name"] != "qwen2-instruct (ernie)"


def test_another_teams_provider_on_the_stack_is_not_listed(stack, other_team):
    RemoteProvider.objects.create(
        team=other_team, stack=stack, oneapi_channel_id=3, **provider_data()
    )
    assert llm_entries(stack) == {}


# The whole run -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_sync_run_wires_the_provider_through_to_fastgpt(tmp_path, oneapi, upstream, monkeypatch):
    """Every step in the runner, FastGPT's file written where its stand-in reads it (not over
    SSH), and FastGPT asked whether it lists the provider's models."""
    monkeypatch.setattr(run_pipeline, "delay_on_commit", lambda run_id: None)
    team = make_team()
    operator = add_member(team)
    config_path = tmp_path / "config.json"
    env = {
        "STANDIN_FASTGPT_CONFIG": str(config_path),
        "MONGODB_URI": "mongodb://fastgpt:x@mongo:27017/fastgpt",
        "PG_URL": "postgresql://fastgpt:x@pg:5432/postgres",
        "TOKEN_KEY": "token-key",
    }
    written = []

    def write_config(stack, log):
        files = stack_files(stack)
        config_path.write_text(files.files[CONFIG_FILE])
        stack.rendered_files = {CONFIG_FILE: files.shown()[CONFIG_FILE]}
        stack.save(update_fields=["rendered_files"])
        written.append(files.files[CONFIG_FILE])
        return "config.json written."

    monkeypatch.setattr(providers_sync, "update_fastgpt", write_config)
    with RunningStandin(FastGPT(env)) as fastgpt:
        server = make_server(team, host="127.0.0.1")
        stack = make_stack(
            server,
            oneapi_port=oneapi.port,
            fastgpt_port=fastgpt.port,
            publish_internal_services=True,
            status=StackStatus.RUNNING,
        )
        _, run = add(stack, operator, upstream)

        runner.run(run.pk, WORKER)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    document = json.loads(written[0])
    assert [entry["model"] for entry in document["llmModels"]] == [
        "ERNIE-Speed-128K",
        "ERNIE-Lite-8K",
    ]
    outputs = list(StepRun.objects.filter(run=run).values_list("output", flat=True))
    events = list(PipelineEvent.objects.filter(run=run).values_list("message", flat=True))
    assert any("FastGPT" in event and "ERNIE-Speed-128K" in event for event in events)
    assert leaked(*outputs, *events, run.error, *written) == []


# Pages, roles and the audit trail --------------------------------------------------------------


def form_post(**fields) -> dict:
    """What the add or edit form posts: the test's data, with `fields` typed over it."""
    data = provider_data()
    post = {
        "name": data["name"],
        "channel_type": str(data["channel_type"]),
        "base_url": data["base_url"],
        "api_key": data["api_key"],
        "models": "\n".join(data["model_names"]),
        "max_context": str(data["max_context"]),
        "dataset_process": "on",
    }
    return {**post, **fields}


def test_an_operator_adds_a_provider_and_the_key_is_never_shown_again(client, stack, operator):
    client.force_login(operator)
    url = reverse("provider_create", args=[stack.pk])
    assert 'type="password"' in client.get(url).content.decode()

    response = client.post(url, form_post())

    assert response.status_code == 302
    assert response.url == reverse("provider_list", args=[stack.pk])
    provider = RemoteProvider.objects.get()
    assert provider.api_key == KEY
    assert provider.model_names == ["ERNIE-Speed-128K", "ERNIE-Lite-8K"]
    assert provider.created_by == operator and provider.team == stack.team
    run = PipelineRun.objects.get(kind=PipelineKind.PROVIDERS_SYNC)
    assert run.params == {"stack_id": stack.pk, "removed_channels": []}
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM deployments_remoteprovider")
        (raw,) = cursor.fetchone()
    assert KEY not in raw
    pages = [
        client.get(response.url).content.decode(),
        client.get(reverse("provider_edit", args=[provider.pk])).content.decode(),
        client.get(reverse("run_detail", args=[run.pk])).content.decode(),
        client.get(reverse("audit_list")).content.decode(),
    ]
    assert "ernie" in pages[0] and "ERNIE-Speed-128K" in pages[0]
    assert f"run #{run.pk}" in pages[0]
    assert leaked(*pages) == []
    audits = AuditEvent.objects.filter(action__startswith="provider.")
    assert [a.action for a in audits] == ["provider.add"]
    assert leaked(*(json.dumps(a.details) for a in AuditEvent.objects.all())) == []


def test_the_edit_form_leaves_the_key_blank_and_blank_keeps_it(client, stack, operator):
    provider, _ = add(stack, operator)
    client.force_login(operator)
    url = reverse("provider_edit", args=[provider.pk])

    response = client.post(url, form_post(api_key="", models="ERNIE-4.0"))

    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.api_key == KEY
    assert provider.model_names == ["ERNIE-4.0"]
    assert PipelineRun.objects.filter(kind=PipelineKind.PROVIDERS_SYNC).count() == 2


def test_the_list_shows_the_last_test(client, stack, operator, viewer):
    provider, _ = add(stack, operator)
    RemoteProvider.objects.filter(pk=provider.pk).update(
        last_test_ok=False, last_test_message="ernie: One API's test of the channel failed: no"
    )
    client.force_login(viewer)

    page = client.get(reverse("provider_list", args=[stack.pk])).content.decode()

    assert "Failed" in page and "ernie: One API&#x27;s test of the channel failed: no" in page
    assert "Custom: any OpenAI-compatible base URL (8)" in page


def test_a_viewer_sees_the_providers_but_may_change_nothing(client, stack, operator, viewer):
    provider, _ = add(stack, operator)
    client.force_login(viewer)

    page = client.get(reverse("provider_list", args=[stack.pk])).content.decode()

    assert "ernie" in page
    assert reverse("provider_create", args=[stack.pk]) not in page
    assert reverse("provider_edit", args=[provider.pk]) not in page
    assert client.get(reverse("provider_create", args=[stack.pk])).status_code == 403
    assert client.post(reverse("provider_create", args=[stack.pk]), form_post()).status_code == 403
    assert client.get(reverse("provider_edit", args=[provider.pk])).status_code == 403
    assert client.post(reverse("provider_delete", args=[provider.pk])).status_code == 403
    assert client.post(reverse("provider_test", args=[stack.pk])).status_code == 403
    assert RemoteProvider.objects.count() == 1
    assert PipelineRun.objects.filter(kind=PipelineKind.PROVIDERS_SYNC).count() == 1


def test_actions_refuse_a_viewer(stack, operator, viewer):
    provider, _ = add(stack, operator)
    with pytest.raises(PermissionDenied):
        add(stack, viewer, name="other")
    with pytest.raises(PermissionDenied):
        do_edit_provider(provider, data=provider_data(), user=viewer)
    with pytest.raises(PermissionDenied):
        do_delete_provider(provider, user=viewer)
    with pytest.raises(PermissionDenied):
        do_test_providers(stack, user=viewer)


def test_another_teams_providers_are_not_found(client, stack, operator):
    provider, _ = add(stack, operator)
    stranger = add_member(make_team(), role="owner")
    client.force_login(stranger)
    assert client.get(reverse("provider_list", args=[stack.pk])).status_code == 404
    assert client.get(reverse("provider_edit", args=[provider.pk])).status_code == 404
    assert client.post(reverse("provider_delete", args=[provider.pk])).status_code == 404


def test_an_operator_deletes_a_provider_and_a_sync_removes_its_channel(client, stack, operator):
    provider, _ = add(stack, operator)
    RemoteProvider.objects.filter(pk=provider.pk).update(oneapi_channel_id=12)
    client.force_login(operator)

    response = client.post(reverse("provider_delete", args=[provider.pk]))

    assert response.status_code == 302
    assert not RemoteProvider.objects.exists()
    run = PipelineRun.objects.filter(kind=PipelineKind.PROVIDERS_SYNC).latest("id")
    assert run.params["removed_channels"] == [{"id": 12, "name": "ernie"}]
    assert AuditEvent.objects.filter(action="provider.delete").exists()


def test_testing_all_starts_a_sync(client, stack, operator):
    add(stack, operator)
    client.force_login(operator)

    response = client.post(reverse("provider_test", args=[stack.pk]))

    assert response.status_code == 302
    assert PipelineRun.objects.filter(kind=PipelineKind.PROVIDERS_SYNC).count() == 2
    assert AuditEvent.objects.filter(action="provider.test").exists()


def test_a_refused_action_is_shown_on_the_form(client, team, operator):
    draft = make_stack(make_server(team), name="draft")
    client.force_login(operator)

    response = client.post(reverse("provider_create", args=[draft.pk]), form_post())

    assert response.status_code == 200
    assert "is not deployed: deploy it before" in response.content.decode()
    assert not RemoteProvider.objects.exists()


# Form validation -------------------------------------------------------------------------------


def form_errors(stack, provider=None, **fields) -> dict:
    form = ProviderForm(form_post(**fields), stack=stack, provider=provider)
    form.is_valid()
    return {name: " ".join(errors) for name, errors in form.errors.items()}


def test_a_valid_form_gives_the_actions_their_data(stack):
    form = ProviderForm(
        form_post(base_url="https://api.example.com/v1/", models="a, b\nc,,a"), stack=stack
    )
    assert form.is_valid(), form.errors
    data = form.provider_data()
    assert data["model_names"] == ["a", "b", "c"]
    assert data["base_url"] == "https://api.example.com/v1"
    assert data["channel_type"] == 8


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"base_url": ""}, "base_url", "needs its base URL"),
        ({"base_url": "ftp://files.example.com"}, "base_url", "http:// or https://"),
        ({"base_url": "https://user:pw@api.example.com"}, "base_url", "no user"),
        ({"base_url": "https://api.example.com/?key=1"}, "base_url", "no user, query"),
        ({"base_url": "https://api.example.com/v1\nX"}, "base_url", "http:// or https://"),
        ({"name": "xinference"}, "name", "channel of the models launched"),
        ({"name": "XInference"}, "name", "channel of the models launched"),
        ({"name": "bad\x07name"}, "name", "Use letters"),
        ({"name": "a,b"}, "name", "Use letters"),
        ({"models": "good\nbad\x07name"}, "models", "control characters"),
        ({"models": "bad\u202ename"}, "models", "control characters"),
        ({"models": "two words"}, "models", "Not a model name: two words"),
        ({"models": " , \n"}, "models", "at least one model"),
        ({"api_key": ""}, "api_key", "required"),
        ({"api_key": "sk-one two"}, "api_key", "one line with no spaces"),
        ({"channel_type": "99"}, "channel_type", "valid choice"),
        ({"max_context": "10"}, "max_context", "greater than or equal to 1000"),
    ],
)
def test_the_form_refuses_bad_input_beside_the_field(stack, fields, field, words):
    errors = form_errors(stack, **fields)
    assert words in errors.get(field, ""), errors


def test_a_base_url_is_optional_for_a_service_with_one_api_default(stack):
    assert form_errors(stack, channel_type="1", base_url="") == {}


def test_a_model_launched_on_the_stack_cannot_be_a_providers_too(stack):
    ready(stack, "qwen2-instruct-7b")
    errors = form_errors(stack, models="qwen2-instruct\nqwen-max")
    assert "“qwen2-instruct” is already launched on this stack" in errors["models"]


def test_a_model_of_another_provider_or_its_name_cannot_be_taken_twice(stack, operator):
    provider, _ = add(stack, operator)
    errors = form_errors(stack, name="Ernie", models="ERNIE-Lite-8K")
    assert "already has a provider “Ernie”" in errors["name"]
    assert "served by the provider “ernie”" in errors["models"]
    # The provider itself keeps its own name and models.
    assert form_errors(stack, provider=provider, api_key="") == {}


def test_the_channel_type_choices_are_one_apis_numbers(stack):
    choices = dict(ProviderForm(stack=stack).fields["channel_type"].choices)
    assert choices[8].startswith("Custom")
    assert choices[1] == "OpenAI (1)"
    assert choices[15] == "Baidu ERNIE (Qianfan) (15)"
    assert choices[16] == "Zhipu ChatGLM (16)"
    assert choices[17] == "Alibaba Qwen (DashScope) (17)"
    assert choices[25] == "Moonshot AI (25)"
    assert choices[36] == "DeepSeek (36)"
    assert list(choices)[0] == 8


def test_a_model_a_provider_serves_is_not_launched_under_the_same_name(
    stack, oneapi, upstream, operator, monkeypatch
):
    monkeypatch.setattr(run_pipeline, "delay_on_commit", lambda run_id: None)
    config = PRESETS["qwen2-instruct-7b"].build(stack.team)
    config.save()
    add(stack, operator, upstream, model_names=[config.model])
    with pytest.raises(ActionError, match="Remote provider “ernie” already serves"):
        do_launch_model(config, stack=stack, user=operator)
    assert not ModelLaunch.objects.filter(stack=stack).exists()
