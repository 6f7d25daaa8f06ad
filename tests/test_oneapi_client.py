"""The One API client against the v0.6.7 stand-in: first-run setup, channels, tokens, errors."""

import json

import httpx
import pytest

from deployments.clients.oneapi import (
    DEFAULT_ROOT_PASSWORD,
    OneAPIClient,
    OneAPIError,
    first_run_setup,
    read_relay_503,
    xinference_channel,
)
from testkit.sshd import free_port
from testkit.standins.client import call
from testkit.standins.oneapi import OneAPI
from testkit.standins.server import RunningStandin, json_response

NEW_PASSWORD = "panel-Secret-42"


class ChatUpstream:
    """An OpenAI-compatible upstream that answers every chat request."""

    def handle(self, request):
        model = json.loads(request.body)["model"]
        message = {"role": "assistant", "content": "hello"}
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


@pytest.fixture
def oneapi():
    with RunningStandin(OneAPI({})) as server:
        yield server


@pytest.fixture
def client(oneapi):
    token = first_run_setup(oneapi.url, NEW_PASSWORD)
    with OneAPIClient(oneapi.url, token) as client:
        yield client


def requests_to(server, path):
    records = call("GET", server.url + "/__standin__/requests").json()["requests"]
    return [r for r in records if r["path"].split("?")[0] == path]


def login_passwords(server):
    return [json.loads(r["body"])["password"] for r in requests_to(server, "/api/user/login")]


def root_login_works(server, password):
    reply = call(
        "POST", server.url + "/api/user/login", json={"username": "root", "password": password}
    )
    return reply.json()["success"]


def change_root_password_by_hand(server, password):
    login = call(
        "POST",
        server.url + "/api/user/login",
        json={"username": "root", "password": DEFAULT_ROOT_PASSWORD},
    )
    cookie = login.headers["Set-Cookie"].split(";")[0]
    reply = call(
        "PUT",
        server.url + "/api/user/self",
        json={"password": password},
        headers={"Cookie": cookie},
    )
    assert reply.json()["success"]


# First run ---------------------------------------------------------------------------------------


def test_first_run_setup_replaces_the_default_root_password(oneapi):
    first_run_setup(oneapi.url, NEW_PASSWORD)

    assert not root_login_works(oneapi, DEFAULT_ROOT_PASSWORD)
    assert root_login_works(oneapi, NEW_PASSWORD)


def test_first_run_setup_returns_a_token_that_authenticates_management_calls(oneapi):
    token = first_run_setup(oneapi.url, NEW_PASSWORD)

    reply = call("GET", oneapi.url + "/api/user/self", headers={"Authorization": token})
    assert reply.json()["success"]
    assert reply.json()["data"]["username"] == "root"


def test_first_run_setup_again_logs_in_once_with_the_new_password_and_keeps_the_token(oneapi):
    first = first_run_setup(oneapi.url, NEW_PASSWORD)
    logins_before = len(login_passwords(oneapi))

    second = first_run_setup(oneapi.url, NEW_PASSWORD)

    assert second == first
    assert login_passwords(oneapi)[logins_before:] == [NEW_PASSWORD]
    assert requests_to(oneapi, "/api/user/token") == []  # the token was read, never rotated


def test_first_run_setup_says_the_password_was_changed_elsewhere_when_both_logins_fail(oneapi):
    change_root_password_by_hand(oneapi, "someone-elses-pw")
    logins_before = len(login_passwords(oneapi))
    updates_before = len(requests_to(oneapi, "/api/user/self"))

    with pytest.raises(OneAPIError) as raised:
        first_run_setup(oneapi.url, NEW_PASSWORD)

    message = str(raised.value)
    assert "changed outside the panel" in message
    assert NEW_PASSWORD not in message
    assert login_passwords(oneapi)[logins_before:] == [NEW_PASSWORD, DEFAULT_ROOT_PASSWORD]
    assert len(requests_to(oneapi, "/api/user/self")) == updates_before


def test_first_run_setup_stops_at_the_login_rate_limit_without_trying_the_default(oneapi):
    for _ in range(20):  # One API allows 20 logins per 20 minutes
        root_login_works(oneapi, "wrong-password")
    logins_before = len(login_passwords(oneapi))

    with pytest.raises(OneAPIError, match="too many requests") as raised:
        first_run_setup(oneapi.url, NEW_PASSWORD)

    assert raised.value.permanent is False
    assert login_passwords(oneapi)[logins_before:] == [NEW_PASSWORD]


def test_first_run_setup_refuses_a_password_one_api_would_refuse_before_logging_in(oneapi):
    with pytest.raises(OneAPIError, match="8 to 20 characters"):
        first_run_setup(oneapi.url, "short")

    assert login_passwords(oneapi) == []


# Channels ----------------------------------------------------------------------------------------


def test_xinference_channel_sends_models_as_a_comma_list_chat_first_and_config_as_text(
    oneapi, client
):
    body = xinference_channel(
        "xinference", "http://xinference:9997/v1/", ["qwen2.5-instruct", "bge-m3"]
    )

    row = client.add_channel(body)

    sent = json.loads(requests_to(oneapi, "/api/channel/")[-1]["body"])
    assert sent["models"] == "qwen2.5-instruct,bge-m3"
    assert sent["config"] == "{}"
    assert sent["base_url"] == "http://xinference:9997"
    assert isinstance(row["id"], int) and row["id"] > 0
    assert row["name"] == "xinference"
    assert row["models"] == "qwen2.5-instruct,bge-m3"


def test_channel_calls_use_the_trailing_slash_and_the_bare_access_token(oneapi, client):
    client.add_channel(xinference_channel("xinference", "http://xinference:9997", ["chat"]))

    posted = [r for r in requests_to(oneapi, "/api/channel/") if r["method"] == "POST"]
    assert len(posted) == 1
    assert posted[0]["headers"]["Authorization"] == client.access_token
    assert requests_to(oneapi, "/api/channel") == []  # no redirect was needed


def test_channels_named_returns_only_exact_names(client):
    client.add_channel(xinference_channel("xinference", "http://a:9997", ["chat"]))
    client.add_channel(xinference_channel("xinference-2", "http://b:9997", ["chat"]))

    found = client.channels_named("xinference")

    assert [row["base_url"] for row in found] == ["http://a:9997"]


def test_update_channel_changes_the_models_and_returns_the_row(client):
    row = client.add_channel(xinference_channel("xinference", "http://a:9997", ["chat"]))

    updated = client.update_channel({"id": row["id"], "models": "chat,embed"})

    assert updated["id"] == row["id"]
    assert updated["models"] == "chat,embed"
    assert client.channels_named("xinference")[0]["models"] == "chat,embed"


def test_delete_channel_removes_it(client):
    row = client.add_channel(xinference_channel("xinference", "http://a:9997", ["chat"]))

    client.delete_channel(row["id"])

    assert client.channels_named("xinference") == []


def test_test_channel_reports_a_passing_channel(client):
    with RunningStandin(ChatUpstream()) as upstream:
        row = client.add_channel(xinference_channel("xinference", upstream.url, ["chat", "emb"]))

        result = client.test_channel(row["id"])

    assert result["success"] is True
    assert result["message"] == ""
    assert isinstance(result["time"], int | float)


def test_test_channel_returns_a_failed_test_as_a_result(client):
    unreachable = f"http://127.0.0.1:{free_port()}"
    row = client.add_channel(xinference_channel("xinference", unreachable, ["chat"]))

    result = client.test_channel(row["id"])

    assert result["success"] is False
    assert "do request failed" in result["message"]


def test_test_channel_of_an_unknown_channel_raises(client):
    with pytest.raises(OneAPIError, match="record not found"):
        client.test_channel(999)


# Tokens ------------------------------------------------------------------------------------------


def test_add_token_returns_a_key_without_sk_that_the_relay_accepts(oneapi, client):
    token = client.add_token("fastgpt")

    sent = json.loads(requests_to(oneapi, "/api/token/")[-1]["body"])
    assert sent["unlimited_quota"] is True
    assert sent["expired_time"] == -1
    assert len(token["key"]) == 48
    assert not token["key"].startswith("sk-")
    models = call(
        "GET", oneapi.url + "/v1/models", headers={"Authorization": f"Bearer sk-{token['key']}"}
    )
    assert models.status == 200
    assert [t["id"] for t in client.tokens_named("fastgpt")] == [token["id"]]


def test_add_token_refuses_a_long_name_before_sending(oneapi, client):
    with pytest.raises(OneAPIError, match="at most 30 bytes"):
        client.add_token("x" * 31)

    assert [r for r in requests_to(oneapi, "/api/token/") if r["method"] == "POST"] == []


def test_delete_token_removes_it(client):
    token = client.add_token("fastgpt")

    client.delete_token(token["id"])

    assert client.tokens_named("fastgpt") == []


# Errors ------------------------------------------------------------------------------------------


def test_a_refusal_from_one_api_raises_with_its_message_and_the_endpoint(oneapi):
    with OneAPIClient(oneapi.url, "0" * 32) as client, pytest.raises(OneAPIError) as raised:
        client.channels_named("xinference")

    assert "access token 无效" in str(raised.value)
    assert "GET /api/channel/search" in str(raised.value)
    assert raised.value.oneapi_message == "无权进行此操作，access token 无效"


def test_a_call_without_credentials_raises_on_http_401(oneapi):
    with OneAPIClient(oneapi.url) as client, pytest.raises(OneAPIError, match="not logged in"):
        client.self_user()


def test_a_channel_one_api_cannot_bind_raises_with_its_message(client):
    body = xinference_channel("xinference", "http://a:9997", ["chat"])
    body["config"] = {}

    with pytest.raises(OneAPIError, match="creating channel 'xinference'") as raised:
        client.add_channel(body)

    assert "config" in raised.value.oneapi_message


def test_an_unreachable_port_raises_a_readable_sentence():
    url = f"http://127.0.0.1:{free_port()}"

    with OneAPIClient(url) as client, pytest.raises(OneAPIError) as raised:
        client.status()

    assert str(raised.value).startswith(f"One API at {url} does not answer: ")
    assert raised.value.permanent is False


def test_status_reads_the_version(oneapi):
    with OneAPIClient(oneapi.url) as client:
        assert client.status()["version"] == "v0.6.7"


def test_a_password_one_api_refuses_stays_out_of_the_error(oneapi, client):
    too_long = "a-password-far-too-long-for-one-api"

    with pytest.raises(OneAPIError) as raised:
        client.update_self(password=too_long)

    assert "User.Password" in str(raised.value)
    assert too_long not in str(raised.value)


def test_secrets_echoed_by_the_server_are_masked_in_errors():
    def echo(request):
        sent = json.loads(request.content)
        return httpx.Response(200, json={"success": False, "message": f"bad {sent['password']}"})

    transport = httpx.MockTransport(echo)
    with (
        OneAPIClient("http://oneapi:3000", transport=transport) as client,
        pytest.raises(OneAPIError) as raised,
    ):
        client.login("root", NEW_PASSWORD)

    assert NEW_PASSWORD not in str(raised.value)
    assert NEW_PASSWORD not in raised.value.oneapi_message


# The relay's 503: no channel yet, or the model server's own -----------------------------------


class BusyUpstream:
    """A model server that answers every request 503, as Xinference does with no free slot."""

    def handle(self, request):
        return json_response({"detail": "No available slot found for the model"}, 503)

    def reset(self):
        pass

    def close(self):
        pass


def test_a_relay_503_for_a_model_without_a_channel_is_not_routed_yet(client):
    key = client.add_token("fastgpt")["key"]

    routed, why = client.relay_routes(key, "nobody-serves-this", embedding=False)

    assert routed is False
    assert why.startswith("One API has no channel for 'nobody-serves-this' yet")
    assert "无可用渠道" in why
    assert key not in why


def test_a_503_of_the_model_server_passed_on_by_one_api_means_the_route_exists(client):
    key = client.add_token("fastgpt")["key"]
    with RunningStandin(BusyUpstream()) as upstream:
        client.add_channel(xinference_channel("xinference", upstream.url, ["busy-chat"]))

        routed, why = client.relay_routes(key, "busy-chat", embedding=False)

    assert routed is True
    assert "One API routes 'busy-chat', but the model server itself answered HTTP 503" in why
    assert "no channel" not in why


@pytest.mark.parametrize(
    ("body", "no_channel", "from_oneapi"),
    [
        (
            {
                "error": {
                    "message": "当前分组 default 下对于模型 x 无可用渠道 (request id: 1)",
                    "type": "one_api_error",
                }
            },
            True,
            True,
        ),
        # One API's own type says it is One API's refusal, whatever the words.
        ({"error": {"message": "channel gone", "type": "one_api_error"}}, True, True),
        (
            {
                "error": {
                    "message": "bad response status code 503 (request id: 2)",
                    "type": "upstream_error",
                    "code": "bad_response_status_code",
                }
            },
            False,
            True,
        ),
        ({"error": {"message": "overloaded", "type": "server_error"}}, False, True),
    ],
)
def test_a_relay_503_is_told_apart_by_one_apis_text_or_error_type(body, no_channel, from_oneapi):
    read = read_relay_503(json.dumps(body, ensure_ascii=False))
    assert (read.no_channel, read.from_oneapi) == (no_channel, from_oneapi)
    assert read.said == body["error"]["message"]
    sentence = read.sentence("m")
    if no_channel:
        assert "no channel for 'm' yet" in sentence
    else:
        assert "the model server itself answered HTTP 503" in sentence


def test_a_503_without_one_apis_error_body_came_from_in_front_of_it():
    read = read_relay_503("<html>503 Service Temporarily Unavailable</html>")
    assert not read.no_channel and not read.from_oneapi
    assert "in front of One API" in read.sentence("m")
