"""Wiring a stack's ready models into One API (v0.6.7 stand-in): the Xinference channel, FastGPT's
relay token, and the wait until One API's memory cache routes the models."""

import contextlib
import json

import pytest

from deployments.choices import LaunchStatus
from deployments.clients.oneapi import OneAPIClient
from deployments.errors import WaitTimedOut
from deployments.llm import wiring
from deployments.llm.presets import PRESETS
from deployments.llm.wiring import WiringFailed, update_oneapi
from deployments.models import ModelLaunch
from deployments.stacks.secrets import ONEAPI_ACCESS_TOKEN, ONEAPI_FASTGPT_KEY, stack_secrets
from testkit.factories import make_server, make_stack
from testkit.standins.client import call
from testkit.standins.oneapi import OneAPI
from testkit.standins.server import RunningStandin, json_response

pytestmark = pytest.mark.django_db

CHANNEL_ENABLED, CHANNEL_MANUALLY_DISABLED = 1, 2


@pytest.fixture(autouse=True)
def _short_route_wait(settings):
    # Without the memory cache One API routes at once; a test that breaks fails in seconds.
    settings.ONEAPI_ROUTE_TIMEOUT = 10


@pytest.fixture
def standins():
    """Start One API stand-ins with the environment a test needs; all stop at its end."""
    with contextlib.ExitStack() as running:

        def start(env: dict[str, str] | None = None) -> RunningStandin:
            return running.enter_context(RunningStandin(OneAPI(env or {})))

        yield start


@pytest.fixture
def oneapi(standins):
    return standins()


def stack_on(team, oneapi):
    server = make_server(team, host="127.0.0.1")
    # Published: the panel reaches the stand-in directly rather than through SSH.
    return make_stack(server, oneapi_port=oneapi.port, publish_internal_services=True)


@pytest.fixture
def stack(team, oneapi):
    return stack_on(team, oneapi)


def ready(stack, preset: str, status=LaunchStatus.READY, **fields) -> ModelLaunch:
    config = PRESETS[preset].build(stack.team)
    for name, value in fields.items():
        setattr(config, name, value)
    config.save()
    kind = PRESETS[preset].config_kind.slug
    return ModelLaunch.objects.create(
        team=stack.team, stack=stack, model_uid=config.model, status=status, **{kind: config}
    )


def wire(stack, relay_key=None) -> tuple[str, list[str]]:
    lines: list[str] = []
    return update_oneapi(stack, lines.append, relay_key), lines


def admin(stack, oneapi) -> OneAPIClient:
    return OneAPIClient(oneapi.url, stack_secrets(stack)[ONEAPI_ACCESS_TOKEN])


def received(oneapi, method: str, path: str) -> list[dict]:
    records = call("GET", oneapi.url + "/__standin__/requests").json()["requests"]
    return [r for r in records if r["method"] == method and r["path"].split("?")[0] == path]


def channels(stack, oneapi) -> list[dict]:
    with admin(stack, oneapi) as client:
        return client.channels_named("xinference")


def fastgpt_tokens(stack, oneapi) -> list[dict]:
    with admin(stack, oneapi) as client:
        return client.tokens_named("fastgpt")


# The channel -----------------------------------------------------------------------------------


def test_the_first_wiring_signs_in_and_creates_a_channel_for_the_ready_models(stack, oneapi):
    ready(stack, "m3e-base")
    ready(stack, "m3e-base", model="bge-m3", xinference_model_name="bge-m3")
    ready(stack, "m3e-base", status=LaunchStatus.LAUNCHING, model="still-loading")
    ready(stack, "bge-reranker-v2-m3")  # One API has no rerank route: not in the channel

    said, lines = wire(stack)

    assert stack_secrets(stack).get(ONEAPI_ACCESS_TOKEN)
    (channel,) = channels(stack, oneapi)
    assert channel["type"] == 8
    assert channel["name"] == "xinference"
    assert channel["base_url"] == "http://xinference:9997"
    assert channel["models"] == "m3e-base,bge-m3"
    assert channel["group"] == "default"
    assert channel["status"] == CHANNEL_ENABLED
    (created,) = received(oneapi, "POST", "/api/channel/")
    body = json.loads(created["body"])
    assert body["config"] == "{}"
    assert body["key"] == "sk-xinference"
    assert body["model_mapping"] == ""
    assert "m3e-base, bge-m3" in said
    assert any("created" in line for line in lines)


def test_chat_models_come_first_in_the_channel_whatever_was_ready_first(stack, oneapi):
    ready(stack, "m3e-base")
    ready(stack, "qwen2-instruct-7b")
    # The channel test of the chat model cannot reach http://xinference:9997 from here.
    with pytest.raises(WiringFailed):
        wire(stack)
    (channel,) = channels(stack, oneapi)
    assert channel["models"] == "qwen2-instruct,m3e-base"


def test_a_failed_channel_test_fails_the_step_with_one_apis_message(stack, oneapi):
    ready(stack, "qwen2-instruct-7b")
    with pytest.raises(WiringFailed) as failed:
        wire(stack)
    message = str(failed.value)
    assert "channel 'xinference'" in message
    assert "'qwen2-instruct'" in message
    (channel,) = channels(stack, oneapi)
    with admin(stack, oneapi) as client:
        said = client.test_channel(channel["id"])["message"]
    assert said and "xinference:9997" in said
    assert said in message
    # FastGPT gets no token for a channel that does not work.
    assert not received(oneapi, "POST", "/api/token/")


def test_the_channel_key_is_xinferences_api_key_when_its_auth_is_on(stack, oneapi):
    ready(stack, "m3e-base")
    wire(stack, relay_key="sk-first-key")
    wire(stack, relay_key="sk-second-key")
    (created,) = received(oneapi, "POST", "/api/channel/")
    (updated,) = received(oneapi, "PUT", "/api/channel/")
    assert json.loads(created["body"])["key"] == "sk-first-key"
    assert json.loads(updated["body"])["key"] == "sk-second-key"


def test_a_second_wiring_updates_the_same_channel(stack, oneapi):
    ready(stack, "m3e-base")
    wire(stack)
    (first,) = channels(stack, oneapi)
    ready(stack, "m3e-base", model="bge-m3", xinference_model_name="bge-m3")

    said, lines = wire(stack)

    (second,) = channels(stack, oneapi)
    assert second["id"] == first["id"]
    assert second["models"] == "m3e-base,bge-m3"
    assert len(received(oneapi, "POST", "/api/channel/")) == 1
    (updated,) = received(oneapi, "PUT", "/api/channel/")
    assert json.loads(updated["body"])["id"] == first["id"]
    assert any(f"id {first['id']}" in line and "now serves" in line for line in lines)


def test_extra_channels_of_the_same_name_are_removed(stack, oneapi):
    ready(stack, "m3e-base")
    wire(stack)
    with admin(stack, oneapi) as client:
        (kept,) = client.channels_named("xinference")
        client.add_channel({**kept, "key": "sk-by-hand", "models": "other"})
    assert len(channels(stack, oneapi)) == 2
    wire(stack)
    (channel,) = channels(stack, oneapi)
    assert channel["id"] == kept["id"]
    assert channel["models"] == "m3e-base"


def test_a_channel_disabled_in_one_api_is_enabled_again(stack, oneapi):
    ready(stack, "m3e-base")
    wire(stack)
    with admin(stack, oneapi) as client:
        (channel,) = client.channels_named("xinference")
        client.update_channel({"id": channel["id"], "status": CHANNEL_MANUALLY_DISABLED})
    wire(stack)
    (channel,) = channels(stack, oneapi)
    assert channel["status"] == CHANNEL_ENABLED


def test_with_no_model_ready_the_channel_is_removed(stack, oneapi):
    launch = ready(stack, "m3e-base")
    wire(stack)
    (channel,) = channels(stack, oneapi)
    ModelLaunch.objects.filter(pk=launch.pk).update(status=LaunchStatus.TERMINATED)

    said, _ = wire(stack)

    assert channels(stack, oneapi) == []
    assert "removed" in said
    said, _ = wire(stack)
    assert "needs no channel" in said
    assert len(received(oneapi, "DELETE", f"/api/channel/{channel['id']}")) == 1


def test_a_rerank_model_alone_needs_no_channel(stack, oneapi):
    ready(stack, "bge-reranker-v2-m3")
    said, _ = wire(stack)
    assert "needs no channel" in said
    assert not received(oneapi, "POST", "/api/channel/")


# FastGPT's relay token -------------------------------------------------------------------------


def test_fastgpt_gets_one_relay_token_that_is_kept(stack, oneapi):
    ready(stack, "m3e-base")
    wire(stack)
    key = stack_secrets(stack)[ONEAPI_FASTGPT_KEY]
    (token,) = fastgpt_tokens(stack, oneapi)
    assert token["key"] == key
    assert token["unlimited_quota"] is True
    assert token["expired_time"] == -1
    # A token limited to some models would fail FastGPT on the next one.
    assert token["models"] == ""

    wire(stack)
    assert stack_secrets(stack)[ONEAPI_FASTGPT_KEY] == key
    assert [t["key"] for t in fastgpt_tokens(stack, oneapi)] == [key]
    assert len(received(oneapi, "POST", "/api/token/")) == 1


def test_a_relay_token_deleted_in_one_api_is_made_again(stack, oneapi):
    ready(stack, "m3e-base")
    wire(stack)
    old = stack_secrets(stack)[ONEAPI_FASTGPT_KEY]
    with admin(stack, oneapi) as client:
        (token,) = client.tokens_named("fastgpt")
        client.delete_token(token["id"])

    wire(stack)

    new = stack_secrets(stack)[ONEAPI_FASTGPT_KEY]
    assert new != old
    assert [t["key"] for t in fastgpt_tokens(stack, oneapi)] == [new]


def test_the_relay_is_probed_with_fastgpts_token(stack, oneapi):
    ready(stack, "m3e-base")
    wire(stack)
    key = stack_secrets(stack)[ONEAPI_FASTGPT_KEY]
    probes = received(oneapi, "POST", "/v1/embeddings")
    assert probes
    assert all(probe["headers"]["Authorization"] == f"Bearer sk-{key}" for probe in probes)
    assert json.loads(probes[0]["body"])["model"] == "m3e-base"


# One API's memory cache ------------------------------------------------------------------------


def test_the_wiring_waits_until_one_apis_memory_cache_routes_the_model(team, standins, settings):
    settings.ONEAPI_ROUTE_TIMEOUT = 20
    oneapi = standins({"MEMORY_CACHE_ENABLED": "true", "SYNC_FREQUENCY": "2"})
    stack = stack_on(team, oneapi)
    ready(stack, "m3e-base")

    said, lines = wire(stack)

    # The first probe came before the next sync and got "no channel available".
    assert len(received(oneapi, "POST", "/v1/embeddings")) >= 2
    assert "One API routes 'm3e-base'." in lines
    assert "m3e-base" in said


def test_a_model_added_to_a_routed_channel_is_waited_for_too(team, standins, settings):
    settings.ONEAPI_ROUTE_TIMEOUT = 20
    oneapi = standins({"MEMORY_CACHE_ENABLED": "true", "SYNC_FREQUENCY": "2"})
    stack = stack_on(team, oneapi)
    ready(stack, "m3e-base")
    wire(stack)
    ready(stack, "m3e-base", model="bge-m3", xinference_model_name="bge-m3")

    _, lines = wire(stack)

    assert "One API routes 'bge-m3'." in lines
    with admin(stack, oneapi) as client:
        routed, why = client.relay_routes(
            stack_secrets(stack)[ONEAPI_FASTGPT_KEY], "bge-m3", embedding=True
        )
    assert routed, why


def test_routes_that_never_come_fail_the_step_naming_sync_frequency(team, standins, settings):
    settings.ONEAPI_ROUTE_TIMEOUT = 1
    oneapi = standins({"MEMORY_CACHE_ENABLED": "true", "SYNC_FREQUENCY": "600"})
    stack = stack_on(team, oneapi)
    ready(stack, "m3e-base")

    with pytest.raises(WaitTimedOut) as failed:
        wire(stack)

    message = str(failed.value)
    assert "'m3e-base'" in message
    assert "after 1 s" in message
    assert "SYNC_FREQUENCY" in message
    assert "no channel for 'm3e-base' yet" in message
    assert "无可用渠道" in message  # One API's own reason


def test_a_cancel_stops_the_wait_for_routes(team, standins, settings):
    settings.ONEAPI_ROUTE_TIMEOUT = 600
    oneapi = standins({"MEMORY_CACHE_ENABLED": "true", "SYNC_FREQUENCY": "600"})
    stack = stack_on(team, oneapi)
    ready(stack, "m3e-base")
    asked = []

    class Cancelled(Exception):
        pass

    def check_cancel():
        asked.append(1)
        raise Cancelled

    with pytest.raises(Cancelled):
        update_oneapi(stack, [].append, None, check_cancel)
    # Cancelled at the first pause, not after the ten minutes of the deadline.
    assert asked == [1]


class BusyXinference:
    """Xinference with no free slot: every request is answered 503."""

    def handle(self, request):
        return json_response({"detail": "No available slot found for the model"}, 503)

    def reset(self):
        pass

    def close(self):
        pass


def test_a_503_of_the_model_server_itself_is_named_as_such_not_as_a_missing_route(
    stack, oneapi, monkeypatch
):
    with RunningStandin(BusyXinference()) as xinference:
        monkeypatch.setattr(wiring, "XINFERENCE_URL", xinference.url)
        ready(stack, "m3e-base")

        said, lines = wire(stack)

    assert "m3e-base" in said
    (warning,) = [line for line in lines if line.startswith("Warning:")]
    assert "One API routes 'm3e-base', but the model server itself answered HTTP 503" in warning
    assert "One API routes 'm3e-base'." not in lines
    # Routed at the first probe: One API's cache is not what failed.
    assert len(received(oneapi, "POST", "/v1/embeddings")) == 1
