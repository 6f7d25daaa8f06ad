"""The One API stand-in keeps the v0.6.7 contract: envelopes, auth, channels, tokens, the relay
(forwarding for real to a fake upstream), the channel cache delay, and a stdlib-only start."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.sshd import free_port
from testkit.standins.client import call
from testkit.standins.oneapi import OneAPI
from testkit.standins.server import Fatal, Response, RunningStandin, json_response
from testkit.workers import wait_until

REPO = Path(__file__).resolve().parent.parent
ROOT_PASSWORD = "123456"
STATUS_KEYS = {
    "version",
    "start_time",
    "email_verification",
    "github_oauth",
    "github_client_id",
    "lark_client_id",
    "system_name",
    "logo",
    "footer_html",
    "wechat_qrcode",
    "wechat_login",
    "server_address",
    "turnstile_check",
    "turnstile_site_key",
    "top_up_link",
    "chat_link",
    "quota_per_unit",
    "display_in_currency",
}


class FakeUpstream:
    """An OpenAI-compatible upstream (like Xinference) that answers from the request's model."""

    def handle(self, request):
        body = request.json() if request.body else {}
        model = body.get("model", "")
        if model == "broken":
            error = {"message": "model broken is not running", "type": "invalid_request_error"}
            return json_response({"error": error}, 400)
        if request.path == "/v1/embeddings":
            vectors = [{"index": 0, "object": "embedding", "embedding": [0.1, 0.2]}]
            return json_response({"object": "list", "model": model, "data": vectors})
        if model.endswith("-embedding"):
            return json_response({"detail": f"{model} is not a chat model"}, 400)
        if body.get("stream"):
            chunks = [
                {"choices": [{"delta": {"content": "hel"}, "index": 0}]},
                {"choices": []},
                {"choices": [{"delta": {"content": "lo"}, "index": 0}]},
            ]
            lines = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]
            return Response(200, b"", [("Content-Type", "text/event-stream")], chunks=iter(lines))
        answer = {"role": "assistant", "content": f"answer from {model}"}
        return json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": answer, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
            },
            headers=[("X-Upstream", "fake")],
        )

    def reset(self):
        pass

    def close(self):
        pass


@pytest.fixture(scope="module")
def upstream():
    with RunningStandin(FakeUpstream()) as running:
        yield running


@pytest.fixture(scope="module")
def running_oneapi():
    env = {"INITIAL_ROOT_TOKEN": "fastgpt", "SESSION_SECRET": "a-session-secret"}
    with RunningStandin(OneAPI(env)) as running:
        yield running


@pytest.fixture
def oneapi(running_oneapi, upstream):
    call("POST", f"{running_oneapi.url}/__standin__/reset")
    call("POST", f"{upstream.url}/__standin__/reset")
    return running_oneapi


def login(url, username="root", secret=ROOT_PASSWORD):
    return call("POST", f"{url}/api/user/login", json={"username": username, "password": secret})


def admin_token(url):
    cookie = login(url).headers["Set-Cookie"].split(";")[0]
    return call("GET", f"{url}/api/user/self", headers={"Cookie": cookie}).json()["data"][
        "access_token"
    ]


def add_channel(url, token, **fields):
    channel = {
        "type": 1,
        "name": "xinference",
        "key": "sk-xinference",
        "models": "qwen2.5-instruct,bge-m3",
        "group": "default",
        "model_mapping": "",
        "config": "{}",
        **fields,
    }
    reply = call("POST", f"{url}/api/channel/", json=channel, headers={"Authorization": token})
    assert reply.json() == {"message": "", "success": True}
    found = call(
        "GET",
        f"{url}/api/channel/search?keyword={channel['name']}",
        headers={"Authorization": token},
    )
    return found.json()["data"][-1]["id"]


def relay(url, path, body, key="sk-fastgpt", **headers):
    return call(
        "POST", f"{url}{path}", json=body, headers={"Authorization": f"Bearer {key}", **headers}
    )


def chat(model):
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}


# --- Status, login, management auth ------------------------------------------------------------


def test_status_has_the_v067_shape_without_auth(oneapi):
    reply = call("GET", f"{oneapi.url}/api/status")

    assert reply.status == 200
    body = reply.json()
    assert body["success"] is True and body["message"] == ""
    assert set(body["data"]) == STATUS_KEYS
    assert body["data"]["version"] == "v0.6.7"
    assert body["data"]["quota_per_unit"] == 500000
    assert re.fullmatch(r"\d{20,}", reply.headers["X-Oneapi-Request-Id"])


def test_root_logs_in_with_the_default_password_and_gets_a_session_cookie(oneapi):
    reply = login(oneapi.url)

    assert reply.json()["success"] is True
    assert reply.json()["data"]["username"] == "root"
    assert reply.json()["data"]["role"] == 100
    assert reply.json()["data"]["access_token"] == ""
    assert reply.headers["Set-Cookie"].startswith("session=")
    assert "Max-Age=2592000" in reply.headers["Set-Cookie"]


def test_wrong_password_is_refused_in_the_body_with_http_200(oneapi):
    reply = login(oneapi.url, secret="wrong")

    assert reply.status == 200
    assert reply.json() == {"message": "用户名或密码错误，或用户已被封禁", "success": False}


def test_self_shows_the_access_token_but_never_the_password(oneapi):
    cookie = login(oneapi.url).headers["Set-Cookie"].split(";")[0]

    data = call("GET", f"{oneapi.url}/api/user/self", headers={"Cookie": cookie}).json()["data"]

    assert re.fullmatch(r"[0-9a-f]{32}", data["access_token"])
    assert data["password"] == ""
    assert data["quota"] == 500000000000000
    assert data["group"] == "default"


def test_management_api_takes_the_access_token_with_or_without_bearer(oneapi):
    token = admin_token(oneapi.url)

    for header in (token, f"Bearer {token}"):
        reply = call("GET", f"{oneapi.url}/api/channel/", headers={"Authorization": header})
        assert reply.json() == {"data": [], "message": "", "success": True}


def test_management_api_without_credentials_is_401(oneapi):
    reply = call("GET", f"{oneapi.url}/api/channel/")

    assert reply.status == 401
    assert reply.json() == {
        "message": "无权进行此操作，未登录且未提供 access token",
        "success": False,
    }


def test_initial_root_token_is_a_relay_key_not_a_management_credential(oneapi):
    reply = call("GET", f"{oneapi.url}/api/channel/", headers={"Authorization": "fastgpt"})

    assert reply.status == 200
    assert reply.json() == {"message": "无权进行此操作，access token 无效", "success": False}
    models = call("GET", f"{oneapi.url}/v1/models", headers={"Authorization": "Bearer sk-fastgpt"})
    assert models.status == 200 and models.json() == {"object": "list", "data": []}


def test_initial_root_token_is_token_one_with_unlimited_quota(oneapi):
    token = admin_token(oneapi.url)

    tokens = call("GET", f"{oneapi.url}/api/token/", headers={"Authorization": token}).json()

    assert [t["id"] for t in tokens["data"]] == [1]
    first = tokens["data"][0]
    assert first["key"] == "fastgpt"
    assert first["name"] == "Initial Root Token"
    assert first["unlimited_quota"] is True and first["expired_time"] == -1


def test_generating_an_access_token_rotates_it(oneapi):
    old = admin_token(oneapi.url)

    new = call("GET", f"{oneapi.url}/api/user/token", headers={"Authorization": old}).json()["data"]

    assert re.fullmatch(r"[0-9a-f]{32}", new) and new != old
    refused = call("GET", f"{oneapi.url}/api/user/self", headers={"Authorization": old})
    assert refused.json()["success"] is False
    accepted = call("GET", f"{oneapi.url}/api/user/self", headers={"Authorization": new})
    assert accepted.json()["data"]["access_token"] == new


def test_root_password_changes_through_put_self(oneapi):
    token = admin_token(oneapi.url)

    reply = call(
        "PUT",
        f"{oneapi.url}/api/user/self",
        json={"password": "a-longer-secret"},
        headers={"Authorization": token},
    )

    assert reply.json() == {"message": "", "success": True}
    assert login(oneapi.url).json()["success"] is False
    assert login(oneapi.url, secret="a-longer-secret").json()["success"] is True


def test_a_short_new_password_fails_validation(oneapi):
    token = admin_token(oneapi.url)

    reply = call(
        "PUT",
        f"{oneapi.url}/api/user/self",
        json={"password": "short"},
        headers={"Authorization": token},
    )

    assert reply.json()["success"] is False
    assert reply.json()["message"] == (
        "输入不合法 Key: 'User.Password' Error:Field validation for 'Password' failed on the "
        "'min' tag"
    )


def test_login_is_rate_limited_to_twenty_per_twenty_minutes(oneapi):
    statuses = [login(oneapi.url).status for _ in range(21)]

    assert statuses[:20] == [200] * 20
    assert statuses[20] == 429


# --- Channels -----------------------------------------------------------------------------------


def test_adding_a_channel_returns_no_id_and_search_finds_it(oneapi, upstream):
    token = admin_token(oneapi.url)

    channel_id = add_channel(oneapi.url, token, base_url=upstream.url)

    channel = call(
        "GET", f"{oneapi.url}/api/channel/{channel_id}", headers={"Authorization": token}
    ).json()["data"]
    assert channel["name"] == "xinference"
    assert channel["key"] == ""
    assert channel["models"] == "qwen2.5-instruct,bge-m3"
    assert channel["status"] == 1 and channel["priority"] == 0 and channel["weight"] == 0
    assert channel["base_url"] == upstream.url
    assert channel["config"] == "{}"


def test_one_channel_is_made_per_line_of_key(oneapi):
    token = admin_token(oneapi.url)

    add_channel(oneapi.url, token, key="sk-one\nsk-two\n")

    listed = call("GET", f"{oneapi.url}/api/channel/?p=0", headers={"Authorization": token})
    assert [c["id"] for c in listed.json()["data"]] == [2, 1]


def test_channel_list_pages_ten_at_a_time_newest_first(oneapi):
    token = admin_token(oneapi.url)
    add_channel(oneapi.url, token, key="\n".join(f"sk-{i}" for i in range(12)))

    first = call("GET", f"{oneapi.url}/api/channel/?p=0", headers={"Authorization": token})
    second = call("GET", f"{oneapi.url}/api/channel/?p=1", headers={"Authorization": token})

    assert [c["id"] for c in first.json()["data"]] == list(range(12, 2, -1))
    assert [c["id"] for c in second.json()["data"]] == [2, 1]


def test_config_sent_as_an_object_fails_binding(oneapi):
    token = admin_token(oneapi.url)

    reply = call(
        "POST",
        f"{oneapi.url}/api/channel/",
        json={"name": "x", "key": "k", "models": "m", "config": {}},
        headers={"Authorization": token},
    )

    assert reply.json() == {
        "message": "json: cannot unmarshal object into Go struct field Channel.config of type "
        "string",
        "success": False,
    }


def test_an_empty_key_creates_nothing(oneapi):
    token = admin_token(oneapi.url)

    reply = call(
        "POST",
        f"{oneapi.url}/api/channel/",
        json={"name": "x", "key": "", "models": "m"},
        headers={"Authorization": token},
    )

    assert reply.json()["success"] is False


def test_posting_without_the_trailing_slash_is_redirected(oneapi):
    token = admin_token(oneapi.url)

    reply = call("POST", f"{oneapi.url}/api/channel", json={}, headers={"Authorization": token})

    assert reply.status == 307
    assert reply.headers["Location"] == "/api/channel/"


def test_updating_a_channel_skips_zero_values_and_returns_it_with_key(oneapi, upstream):
    token = admin_token(oneapi.url)
    channel_id = add_channel(oneapi.url, token, base_url=upstream.url, priority=5)

    reply = call(
        "PUT",
        f"{oneapi.url}/api/channel/",
        json={"id": channel_id, "models": "qwen2.5-instruct", "priority": 0, "name": ""},
        headers={"Authorization": token},
    )

    data = reply.json()["data"]
    assert reply.json()["success"] is True
    assert data["models"] == "qwen2.5-instruct"
    assert data["name"] == "xinference"
    assert data["priority"] == 0
    assert data["key"] == "sk-xinference"


def test_deleting_a_channel(oneapi):
    token = admin_token(oneapi.url)
    channel_id = add_channel(oneapi.url, token)

    deleted = call(
        "DELETE", f"{oneapi.url}/api/channel/{channel_id}", headers={"Authorization": token}
    )

    assert deleted.json() == {"message": "", "success": True}
    gone = call("GET", f"{oneapi.url}/api/channel/{channel_id}", headers={"Authorization": token})
    assert gone.json() == {"message": "record not found", "success": False}


def test_channel_test_sends_a_two_token_chat_to_the_first_model(oneapi, upstream):
    token = admin_token(oneapi.url)
    channel_id = add_channel(oneapi.url, token, base_url=upstream.url)

    reply = call(
        "GET", f"{oneapi.url}/api/channel/test/{channel_id}", headers={"Authorization": token}
    )

    assert reply.json()["success"] is True and reply.json()["message"] == ""
    assert isinstance(reply.json()["time"], int | float)
    sent = upstream.server.records()[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-xinference"
    assert json.loads(sent["body"]) == {
        "messages": [{"role": "user", "content": "hi"}],
        "model": "qwen2.5-instruct",
        "max_tokens": 2,
    }
    channel = call(
        "GET", f"{oneapi.url}/api/channel/{channel_id}", headers={"Authorization": token}
    ).json()["data"]
    assert channel["test_time"] > 0


def test_channel_test_fails_when_an_embedding_model_comes_first(oneapi, upstream):
    token = admin_token(oneapi.url)
    channel_id = add_channel(
        oneapi.url, token, base_url=upstream.url, models="m3e-embedding,qwen2.5-instruct"
    )

    reply = call(
        "GET", f"{oneapi.url}/api/channel/test/{channel_id}", headers={"Authorization": token}
    )

    assert reply.json()["success"] is False
    # Xinference's {"detail": ...} is not a shape one-api reads, so only the status shows.
    assert reply.json()["message"] == "status code 400: bad response status code 400"


def test_channel_test_reports_an_unreachable_upstream(oneapi):
    token = admin_token(oneapi.url)
    port = free_port()
    channel_id = add_channel(oneapi.url, token, base_url=f"http://127.0.0.1:{port}")

    reply = call(
        "GET", f"{oneapi.url}/api/channel/test/{channel_id}", headers={"Authorization": token}
    )

    assert reply.json()["success"] is False
    assert reply.json()["message"] == (
        f'do request failed: Post "http://127.0.0.1:{port}/v1/chat/completions": '
        f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    )


# --- Tokens -------------------------------------------------------------------------------------


def test_a_created_token_comes_back_with_its_48_character_key(oneapi):
    token = admin_token(oneapi.url)

    reply = call(
        "POST",
        f"{oneapi.url}/api/token/",
        json={"name": "fastgpt", "remain_quota": 0, "unlimited_quota": True, "expired_time": 0},
        headers={"Authorization": token},
    )

    data = reply.json()["data"]
    assert reply.json()["success"] is True
    assert re.fullmatch(r"[0-9A-Za-z]{48}", data["key"])
    assert not data["key"].startswith("sk-")
    assert data["id"] == 2 and data["status"] == 1
    assert data["expired_time"] == -1
    assert data["models"] == "" and data["subnet"] == ""


def test_tokens_can_be_searched_read_updated_and_deleted(oneapi):
    token = admin_token(oneapi.url)
    auth = {"Authorization": token}
    created = call(
        "POST",
        f"{oneapi.url}/api/token/",
        json={"name": "panel-token", "unlimited_quota": True, "expired_time": -1},
        headers=auth,
    ).json()["data"]

    found = call("GET", f"{oneapi.url}/api/token/search?keyword=panel", headers=auth).json()
    assert [t["id"] for t in found["data"]] == [created["id"]]
    read = call("GET", f"{oneapi.url}/api/token/{created['id']}", headers=auth).json()
    assert read["data"]["key"] == created["key"]
    updated = call(
        "PUT",
        f"{oneapi.url}/api/token/",
        json={**created, "name": "renamed", "models": "qwen2.5-instruct"},
        headers=auth,
    ).json()
    assert updated["data"]["name"] == "renamed" and updated["data"]["models"] == "qwen2.5-instruct"
    deleted = call("DELETE", f"{oneapi.url}/api/token/{created['id']}", headers=auth).json()
    assert deleted == {"message": "", "success": True}
    missing = call("GET", f"{oneapi.url}/api/token/{created['id']}", headers=auth).json()
    assert missing == {"message": "record not found", "success": False}


def test_a_token_name_over_30_bytes_is_refused(oneapi):
    token = admin_token(oneapi.url)

    reply = call(
        "POST",
        f"{oneapi.url}/api/token/",
        json={"name": "x" * 31},
        headers={"Authorization": token},
    )

    assert reply.json() == {"message": "参数错误：令牌名称过长", "success": False}


def test_a_token_with_no_quota_left_is_refused_by_the_relay(oneapi):
    token = admin_token(oneapi.url)
    key = call(
        "POST",
        f"{oneapi.url}/api/token/",
        json={"name": "empty", "remain_quota": 0, "unlimited_quota": False, "expired_time": -1},
        headers={"Authorization": token},
    ).json()["data"]["key"]

    reply = relay(oneapi.url, "/v1/chat/completions", chat("qwen2.5-instruct"), key=f"sk-{key}")

    assert reply.status == 401
    assert reply.json()["error"]["message"].startswith("该令牌额度已用尽 (request id: ")
    assert reply.json()["error"]["type"] == "one_api_error"


# --- The relay ----------------------------------------------------------------------------------


def test_chat_is_forwarded_to_the_channel_base_url_with_the_channel_key(oneapi, upstream):
    add_channel(oneapi.url, admin_token(oneapi.url), base_url=upstream.url)
    body = {**chat("qwen2.5-instruct"), "temperature": 0.3, "extra": {"kept": True}}

    reply = relay(oneapi.url, "/v1/chat/completions", body)

    assert reply.status == 200
    assert reply.json()["choices"][0]["message"]["content"] == "answer from qwen2.5-instruct"
    assert reply.headers["X-Upstream"] == "fake"
    sent = upstream.server.records()[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-xinference"
    assert json.loads(sent["body"]) == body


def test_embeddings_are_forwarded_too(oneapi, upstream):
    add_channel(oneapi.url, admin_token(oneapi.url), base_url=upstream.url)

    reply = relay(oneapi.url, "/v1/embeddings", {"model": "bge-m3", "input": ["hello"]})

    assert reply.status == 200
    assert reply.json()["data"][0]["embedding"] == [0.1, 0.2]
    assert upstream.server.records()[-1]["path"] == "/v1/embeddings"


def test_a_model_mapping_renames_the_model_and_drops_unknown_fields(oneapi, upstream):
    mapping = json.dumps({"gpt-3.5-turbo": "qwen2.5-instruct"})
    add_channel(
        oneapi.url,
        admin_token(oneapi.url),
        base_url=upstream.url,
        models="gpt-3.5-turbo",
        model_mapping=mapping,
    )

    reply = relay(oneapi.url, "/v1/chat/completions", {**chat("gpt-3.5-turbo"), "extra": 1})

    assert reply.json()["choices"][0]["message"]["content"] == "answer from qwen2.5-instruct"
    sent = json.loads(upstream.server.records()[-1]["body"])
    assert sent["model"] == "qwen2.5-instruct" and "extra" not in sent


def test_streamed_chat_passes_data_lines_and_drops_empty_choices(oneapi, upstream):
    add_channel(oneapi.url, admin_token(oneapi.url), base_url=upstream.url)

    reply = relay(oneapi.url, "/v1/chat/completions", {**chat("qwen2.5-instruct"), "stream": True})

    assert reply.headers["Content-Type"] == "text/event-stream"
    events = [line for line in reply.text.split("\n\n") if line]
    assert len(events) == 3 and events[-1] == "data: [DONE]"
    assert upstream.server.records()[-1]["headers"]["Accept"] == "text/event-stream"


def test_an_upstream_error_keeps_its_status_and_message(oneapi, upstream):
    add_channel(oneapi.url, admin_token(oneapi.url), base_url=upstream.url, models="broken")

    reply = relay(oneapi.url, "/v1/chat/completions", chat("broken"))

    assert reply.status == 400
    error = reply.json()["error"]
    assert error["message"].startswith("model broken is not running (request id: ")
    assert error["type"] == "invalid_request_error"


def test_an_unreachable_upstream_is_a_500(oneapi):
    port = free_port()
    add_channel(oneapi.url, admin_token(oneapi.url), base_url=f"http://127.0.0.1:{port}")

    reply = relay(oneapi.url, "/v1/chat/completions", chat("qwen2.5-instruct"))

    assert reply.status == 500
    assert reply.json()["error"]["code"] == "do_request_failed"
    assert "connect: connection refused" in reply.json()["error"]["message"]


def test_a_model_no_channel_serves_is_503(oneapi):
    reply = relay(oneapi.url, "/v1/chat/completions", chat("unknown-model"))

    assert reply.status == 503
    assert reply.json()["error"]["message"].startswith(
        "当前分组 default 下对于模型 unknown-model 无可用渠道 (request id: "
    )


def test_the_relay_refuses_a_missing_or_unknown_key(oneapi):
    missing = call("POST", f"{oneapi.url}/v1/chat/completions", json=chat("m"))
    unknown = relay(oneapi.url, "/v1/chat/completions", chat("m"), key="sk-nope")

    assert missing.status == 401 and missing.json()["error"]["message"].startswith("未提供令牌")
    assert unknown.status == 401 and unknown.json()["error"]["message"].startswith("无效的令牌")
    assert set(unknown.json()["error"]) == {"message", "type"}


def test_models_lists_what_the_channels_serve(oneapi, upstream):
    add_channel(oneapi.url, admin_token(oneapi.url), base_url=upstream.url)

    reply = call("GET", f"{oneapi.url}/v1/models", headers={"Authorization": "Bearer sk-fastgpt"})

    assert [m["id"] for m in reply.json()["data"]] == ["bge-m3", "qwen2.5-instruct"]
    assert reply.json()["data"][0]["object"] == "model"


def test_there_is_no_rerank_route(oneapi):
    reply = relay(oneapi.url, "/v1/rerank", {"model": "bge-reranker", "query": "q"})

    assert reply.status == 404
    assert reply.json()["error"]["message"] == "Invalid URL (POST /v1/rerank)"


# --- The channel cache -------------------------------------------------------------------------


def test_with_memory_cache_a_new_channel_routes_only_after_the_next_sync(upstream):
    env = {"INITIAL_ROOT_TOKEN": "fastgpt", "MEMORY_CACHE_ENABLED": "true", "SYNC_FREQUENCY": "2"}
    with RunningStandin(OneAPI(env)) as cached:
        token = admin_token(cached.url)
        channel_id = add_channel(cached.url, token, base_url=upstream.url)

        before = relay(cached.url, "/v1/chat/completions", chat("qwen2.5-instruct"))
        tested = call(
            "GET", f"{cached.url}/api/channel/test/{channel_id}", headers={"Authorization": token}
        )

        assert before.status == 503
        assert tested.json()["success"] is True
        wait_until(
            lambda: (
                relay(cached.url, "/v1/chat/completions", chat("qwen2.5-instruct")).status == 200
            ),
            timeout=5,
            what="the channel cache to sync",
        )


def test_without_memory_cache_a_new_channel_routes_at_once(oneapi, upstream):
    add_channel(oneapi.url, admin_token(oneapi.url), base_url=upstream.url)

    assert relay(oneapi.url, "/v1/chat/completions", chat("qwen2.5-instruct")).status == 200


# --- Start-up and the stand-in's own endpoints ---------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        "root:oneapimmysql@tcp(mysql:3306)/oneapi",
        "postgres://u:p@pg:5432/oneapi",
        "root@/oneapi?charset=utf8mb4",
    ],
)
def test_a_well_formed_sql_dsn_is_accepted(dsn):
    OneAPI({"SQL_DSN": dsn}).close()


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        ("root:pw@tcp(mysql:3306)", "invalid DSN: missing the slash separating the database name"),
        (
            "root:pw@tcp(mysql:3306/oneapi",
            "invalid DSN: network address not terminated (missing closing brace)",
        ),
        ("root:pw@tcp(mysql:3306)x/oneapi", "invalid DSN: did you forget to escape a param value?"),
        ("mysql://root:pw@mysql:3306/oneapi", "default addr for network 'mysql:3306' unknown"),
    ],
)
def test_a_malformed_sql_dsn_stops_the_start(dsn, reason):
    with pytest.raises(Fatal, match=re.escape(f"failed to initialize database: {reason}")):
        OneAPI({"SQL_DSN": dsn})


def test_requests_are_recorded_with_all_headers_and_reset_forgets_state(oneapi):
    token = admin_token(oneapi.url)
    add_channel(oneapi.url, token)

    recorded = call("GET", f"{oneapi.url}/__standin__/requests").json()["requests"]
    call("POST", f"{oneapi.url}/__standin__/reset")

    assert [r["path"] for r in recorded][-2:] == [
        "/api/channel/",
        "/api/channel/search?keyword=xinference",
    ]
    assert recorded[-2]["headers"]["Authorization"] == token
    assert json.loads(recorded[-2]["body"])["key"] == "sk-xinference"
    assert call("GET", f"{oneapi.url}/__standin__/requests").json() == {"requests": []}
    assert (
        call("GET", f"{oneapi.url}/api/user/self", headers={"Authorization": token}).json()[
            "success"
        ]
        is False
    )


def _bare_python():
    """The system interpreter, without site-packages: proof that the stand-in needs only the
    standard library."""
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    return [python, "-S", "-E"]


def test_runs_as_a_module_on_a_bare_python_and_answers_status(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            *_bare_python(),
            "-m",
            "testkit.standins.oneapi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "INITIAL_ROOT_TOKEN": "fastgpt"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        reply = wait_until(
            lambda: _status_or_none(f"http://127.0.0.1:{port}/api/status"),
            timeout=10,
            what="the stand-in to listen",
        )
        assert reply["success"] is True and reply["data"]["version"] == "v0.6.7"
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=10)[0].decode()
    assert process.returncode == 0
    assert "One API v0.6.7 started" in output


def _status_or_none(url):
    try:
        return call("GET", url, timeout=1).json()
    except OSError:
        return None


def test_a_malformed_sql_dsn_makes_the_process_exit_1():
    process = subprocess.run(
        [*_bare_python(), "-m", "testkit.standins.oneapi", "--port", str(free_port())],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "SQL_DSN": "not a dsn"},
        capture_output=True,
        text=True,
        timeout=10,
    )

    assert process.returncode == 1
    assert "[FATAL]" in process.stderr
    assert "invalid DSN: missing the slash separating the database name" in process.stderr
