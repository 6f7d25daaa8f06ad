"""The FastGPT stand-in keeps the V488 contract and its corrections (K1..K13): lazy init from
config.json, the envelope and its HTTP-200 named errors, sha256 login, keys, datasets, collections
from text, files and links, training over time or through the embedding model, apps, share
links, chat, and binding to $HOSTNAME."""

import base64
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import docx
import openpyxl
import pytest
from fpdf import FPDF

from testkit.sshd import free_port
from testkit.standins.client import call
from testkit.standins.fastgpt import FastGPT, readers
from testkit.standins.fastgpt.chat import NO_MATCH_ANSWER
from testkit.standins.server import RunningStandin
from testkit.workers import wait_until

REPO = Path(__file__).resolve().parent.parent
ROOT_PASSWORD = "panel-secret"
TOKEN_KEY = "token-key-for-tests"
CONFIG = {
    "feConfigs": {"lafEnv": "https://laf.dev", "systemTitle": "Not shown"},
    "systemEnv": {"vectorMaxProcess": 15, "qaMaxProcess": 15, "pgHNSWEfSearch": 100},
    "llmModels": [
        {
            "model": "qwen2.5-instruct",
            "name": "Qwen 2.5",
            "maxContext": 32000,
            "maxResponse": 4000,
            "quoteMaxToken": 16000,
            "maxTemperature": 1.2,
            "charsPointsPrice": 0,
            "datasetProcess": True,
            "functionCall": False,
            "toolChoice": False,
            "customCQPrompt": "",
            "customExtractPrompt": "",
        }
    ],
    "vectorModels": [
        {
            "model": "m3e-base",
            "name": "M3E",
            "defaultToken": 512,
            "maxToken": 512,
            "weight": 100,
            "charsPointsPrice": 0,
        }
    ],
    "reRankModels": [
        {
            "model": "bge-reranker-v2-m3",
            "name": "BGE reranker",
            "charsPointsPrice": 0,
            "requestUrl": "http://xinference:9997/v1/rerank",
            "requestAuth": "rerank-secret",
        }
    ],
}
FACTS = (
    "The control panel deploys FastGPT on a rented GPU server.\n\n"
    "Xinference serves the embedding model m3e-base and the chat model.\n\n"
    "Share links are published for every chat app."
)


def base_env(config_path, **extra):
    return {
        "DEFAULT_ROOT_PSW": ROOT_PASSWORD,
        "TOKEN_KEY": TOKEN_KEY,
        "ROOT_KEY": "root-key-for-tests",
        "FILE_TOKEN_KEY": "file-token-key",
        "CHAT_API_KEY": "sk-fastgpt",
        "MONGODB_URI": "mongodb://user:pass@mongo:27017/fastgpt?authSource=admin",
        "PG_URL": "postgresql://username:password@pg:5432/postgres",
        "STANDIN_FASTGPT_CONFIG": str(config_path),
        "STANDIN_TRAINING_SECONDS": "1",
        **extra,
    }


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("fastgpt") / "config.json"
    path.write_text(json.dumps(CONFIG))
    return path


@pytest.fixture(scope="module")
def running_fastgpt(config_path):
    with RunningStandin(FastGPT(base_env(config_path))) as running:
        yield running


@pytest.fixture
def fastgpt(running_fastgpt):
    call("POST", f"{running_fastgpt.url}/__standin__/reset")
    return running_fastgpt


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def login(url, secret=ROOT_PASSWORD):
    return call(
        "POST",
        f"{url}/api/support/user/account/loginByPassword",
        json={"username": "root", "password": sha256(secret)},
    )


def user_token(url):
    return {"token": login(url).json()["data"]["token"]}


def data_of(reply):
    body = reply.json()
    assert reply.status == 200 and body["code"] == 200, body
    return body["data"]


def post(url, path, body, headers):
    return call("POST", f"{url}{path}", json=body, headers=headers)


def create_key(url, headers, **body):
    return data_of(post(url, "/api/support/openapi/create", {"name": "panel", **body}, headers))


def create_dataset(url, headers, name="docs", **body):
    return data_of(post(url, "/api/core/dataset/create", {"name": name, **body}, headers))


def add_text(url, headers, dataset_id, text=FACTS, **body):
    return data_of(
        post(
            url,
            "/api/core/dataset/collection/create/text",
            {"datasetId": dataset_id, "name": "facts", "text": text, "chunkSize": 80, **body},
            headers,
        )
    )


def collections(url, headers, dataset_id, **body):
    return data_of(
        post(url, "/api/core/dataset/collection/list", {"datasetId": dataset_id, **body}, headers)
    )


def wait_trained(url, headers, dataset_id):
    wait_until(
        lambda: all(
            c["trainingAmount"] == 0 for c in collections(url, headers, dataset_id)["data"]
        ),
        timeout=5,
        what="training to finish",
    )


def app_modules(*dataset_ids):
    """The nodes of a simple dataset chat app, as the panel builds them."""
    return [
        {"nodeId": "workflowStartNodeId", "flowNodeType": "workflowStart", "inputs": []},
        {
            "nodeId": "iKBoX2vIzETU",
            "flowNodeType": "datasetSearchNode",
            "inputs": [
                {"key": "datasets", "value": [{"datasetId": d} for d in dataset_ids]},
                {"key": "userChatInput", "value": ["workflowStartNodeId", "userChatInput"]},
            ],
        },
        {
            "nodeId": "7BdojPlukIQw",
            "flowNodeType": "chatNode",
            "inputs": [
                {"key": "model", "value": "qwen2.5-instruct"},
                {"key": "quoteQA", "value": ["iKBoX2vIzETU", "quoteQA"]},
            ],
        },
    ]


def create_app(url, headers, *dataset_ids):
    body = {"name": "helpdesk", "type": "simple", "modules": app_modules(*dataset_ids), "edges": []}
    return data_of(post(url, "/api/core/app/create", body, headers))


def ask(url, question, headers, **body):
    messages = [{"role": "user", "content": question}]
    return post(url, "/api/v1/chat/completions", {"messages": messages, **body}, headers)


def answer_of(reply):
    assert reply.status == 200, reply.text
    return reply.json()["choices"][0]["message"]["content"]


def multipart(fields, filename_header, content):
    boundary = "standinBoundary7d1"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '.encode()
        + filename_header
        + b"\r\nContent-Type: application/octet-stream\r\n\r\n"
        + content
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload(url, headers, dataset_id, filename_header, content, timeout=10, **data):
    body, content_type = multipart(
        {"data": json.dumps({"datasetId": dataset_id, "trainingType": "chunk", **data})},
        filename_header,
        content,
    )
    return post_form(url, headers, body, content_type, timeout=timeout)


def upload_file(url, headers, dataset_id, name, content, **data):
    """An upload as the panel sends it: the name through encodeURIComponent."""
    return upload(url, headers, dataset_id, f'filename="{quote(name)}"'.encode(), content, **data)


def form_body(parts):
    """A multipart body of (field, file name or None, content) parts, in that order."""
    boundary = "standinBoundary7d1"
    chunks = []
    for field, filename, content in parts:
        named = f'; filename="{filename}"' if filename is not None else ""
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"{named}\r\n\r\n'
        data = content.encode() if isinstance(content, str) else content
        chunks.append(head.encode() + data + b"\r\n")
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_form(url, headers, body, content_type, timeout=10):
    return call(
        "POST",
        f"{url}/api/core/dataset/collection/create/localFile",
        data=body,
        headers={**headers, "Content-Type": content_type},
        timeout=timeout,
    )


def collection_detail(url, headers, collection_id):
    return data_of(
        call("GET", f"{url}/api/core/dataset/collection/detail?id={collection_id}", headers=headers)
    )


def search(url, headers, dataset_id, text):
    body = {"datasetId": dataset_id, "text": text}
    return data_of(post(url, "/api/core/dataset/searchTest", body, headers))["list"]


class FakeUpstream:
    """A loopback HTTP server a test scripts: `respond(path, count)` gives (status, headers,
    body) for the count-th request (from 0); every request is recorded with its time."""

    def __init__(self, respond):
        self.requests = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                record = {
                    "time": time.monotonic(),
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": body,
                }
                upstream.requests.append(record)
                status, headers, answer = respond(self.path, len(upstream.requests) - 1)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_GET

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()


def json_answer(status, value):
    return status, {"Content-Type": "application/json"}, json.dumps(value).encode()


# --- Lazy init and getInitData -------------------------------------------------------------------


def test_config_json_is_read_on_the_first_request_and_not_again(tmp_path):
    path = tmp_path / "config.json"
    with RunningStandin(FastGPT(base_env(path))) as running:
        path.write_text(json.dumps(CONFIG))
        first = data_of(call("GET", f"{running.url}/api/common/system/getInitData"))
        path.write_text(json.dumps({**CONFIG, "llmModels": []}))
        second = data_of(call("GET", f"{running.url}/api/common/system/getInitData"))

    assert [m["model"] for m in first["llmModels"]] == ["qwen2.5-instruct"]
    assert second["llmModels"] == first["llmModels"]


def test_init_data_reports_version_and_models_with_rerank_secrets_blanked(fastgpt):
    data = data_of(call("GET", f"{fastgpt.url}/api/common/system/getInitData"))

    assert data["systemVersion"] == "4.8.8"
    assert [m["model"] for m in data["vectorModels"]] == ["m3e-base"]
    assert data["reRankModels"] == [
        {**CONFIG["reRankModels"][0], "requestUrl": "", "requestAuth": ""}
    ]
    assert data["feConfigs"]["lafEnv"] == "https://laf.dev"
    assert data["feConfigs"]["systemTitle"] == "FastGPT"
    assert data["feConfigs"]["isPlus"] is False


def test_a_missing_config_json_ends_the_process_on_the_first_request(tmp_path):
    running = RunningStandin(FastGPT(base_env(tmp_path / "absent.json")))
    try:
        with pytest.raises(OSError):
            call("GET", f"{running.url}/api/common/system/getInitData")
        wait_until(lambda: running.fatal, timeout=5, what="the stand-in to stop")
        assert "init error" in running.fatal
    finally:
        running.close()


def test_an_unusable_mongodb_uri_leaves_requests_unanswered(config_path):
    env = base_env(config_path, MONGODB_URI="mongo:27017")
    with RunningStandin(FastGPT(env)) as running, pytest.raises(TimeoutError):
        call("GET", f"{running.url}/api/common/system/getInitData", timeout=1)


# --- Login and the user token ------------------------------------------------------------------


def test_login_takes_the_sha256_hex_of_default_root_psw(fastgpt):
    reply = login(fastgpt.url)

    data = data_of(reply)
    assert data["user"]["username"] == "root"
    assert data["user"]["team"]["permission"]["isOwner"] is True
    assert reply.headers["Set-Cookie"] == (
        f"fastgpt_token={data['token']}; Path=/; HttpOnly; Max-Age=604800; Samesite=Strict;"
    )


def test_the_token_is_an_hs256_jwt_signed_with_token_key(fastgpt):
    token = data_of(login(fastgpt.url))["token"]

    head, payload, signature = token.split(".")
    expected = hmac.new(TOKEN_KEY.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert {"userId", "teamId", "tmbId", "exp", "iat"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 7 * 24 * 3600


def test_a_plain_password_is_refused(fastgpt):
    reply = call(
        "POST",
        f"{fastgpt.url}/api/support/user/account/loginByPassword",
        json={"username": "root", "password": ROOT_PASSWORD},
    )

    assert reply.status == 500
    assert reply.json() == {"code": 500, "statusText": "", "message": "密码错误", "data": None}


def test_an_unknown_user_is_not_registered(fastgpt):
    reply = call(
        "POST",
        f"{fastgpt.url}/api/support/user/account/loginByPassword",
        json={"username": "admin", "password": sha256(ROOT_PASSWORD)},
    )

    assert reply.json()["message"] == "用户未注册"


def test_the_root_password_is_123456_when_default_root_psw_is_unset(config_path):
    env = base_env(config_path)
    del env["DEFAULT_ROOT_PSW"]
    with RunningStandin(FastGPT(env)) as running:
        assert login(running.url, "123456").json()["code"] == 200


def test_login_fails_without_token_key(config_path):
    env = base_env(config_path)
    del env["TOKEN_KEY"]
    with RunningStandin(FastGPT(env)) as running:
        reply = login(running.url)

    assert reply.status == 500
    assert reply.json()["message"] == "secretOrPrivateKey must have a value"


def test_the_token_header_and_the_cookie_both_authenticate(fastgpt):
    token = data_of(login(fastgpt.url))["token"]
    url = f"{fastgpt.url}/api/support/user/account/tokenLogin"

    by_header = data_of(call("GET", url, headers={"token": token}))
    by_cookie = data_of(call("GET", url, headers={"Cookie": f"fastgpt_token={token}"}))

    assert by_header["username"] == by_cookie["username"] == "root"


def test_a_bad_token_is_a_named_error_with_http_200(fastgpt):
    reply = call(
        "GET",
        f"{fastgpt.url}/api/support/user/account/tokenLogin",
        headers={"token": "not-a-jwt"},
    )

    assert reply.status == 200
    assert reply.json() == {
        "code": 403,
        "statusText": "unAuthorization",
        "message": "凭证错误",
        "data": None,
    }
    assert reply.headers["Set-Cookie"] == "fastgpt_token=; Path=/; Max-Age=0"


def test_a_token_from_before_a_restart_names_a_member_that_is_gone(fastgpt):
    headers = user_token(fastgpt.url)
    call("POST", f"{fastgpt.url}/__standin__/reset")

    reply = call("GET", f"{fastgpt.url}/api/support/user/account/tokenLogin", headers=headers)

    assert reply.status == 500 and reply.json()["message"] == "member not exist"


# --- OpenAPI keys ------------------------------------------------------------------------------


def test_an_account_key_is_created_listed_masked_and_deleted(fastgpt):
    headers = user_token(fastgpt.url)

    key = create_key(fastgpt.url, headers)
    listed = data_of(call("GET", f"{fastgpt.url}/api/support/openapi/list", headers=headers))
    deleted = call(
        "DELETE", f"{fastgpt.url}/api/support/openapi/delete?id={listed[0]['_id']}", headers=headers
    )

    assert re.fullmatch(r"fastgpt-[a-z][A-Za-z0-9]{51,64}", key)
    assert [k["apiKey"] for k in listed] == ["******" + key[-4:]]
    assert listed[0]["name"] == "panel" and "appId" not in listed[0]
    assert data_of(deleted) == {}
    assert data_of(call("GET", f"{fastgpt.url}/api/support/openapi/list", headers=headers)) == []


def test_keys_are_managed_with_the_user_token_only(fastgpt):
    key = create_key(fastgpt.url, user_token(fastgpt.url))

    reply = post(
        fastgpt.url,
        "/api/support/openapi/create",
        {"name": "x"},
        {"Authorization": f"Bearer {key}"},
    )

    assert reply.status == 200 and reply.json()["statusText"] == "unAuthorization"


def test_a_member_has_at_most_ten_account_keys(fastgpt):
    headers = user_token(fastgpt.url)
    for _ in range(10):
        create_key(fastgpt.url, headers)

    reply = post(fastgpt.url, "/api/support/openapi/create", {"name": "eleventh"}, headers)

    assert reply.status == 200
    assert reply.json() == {
        "code": 506002,
        "statusText": "openapiExceedLimit",
        "message": "最多 10 组 API 密钥",
        "data": None,
    }


def test_the_account_key_list_leaves_out_app_keys(fastgpt):
    headers = user_token(fastgpt.url)
    app_id = create_app(fastgpt.url, headers)
    account_key = create_key(fastgpt.url, headers)
    app_key = create_key(fastgpt.url, headers, appId=app_id)
    url = f"{fastgpt.url}/api/support/openapi/list"

    account_list = data_of(call("GET", url, headers=headers))
    app_list = data_of(call("GET", f"{url}?appId={app_id}", headers=headers))

    assert [k["apiKey"] for k in account_list] == ["******" + account_key[-4:]]
    assert [k["apiKey"] for k in app_list] == ["******" + app_key[-4:]]
    assert app_list[0]["appId"] == app_id


def test_account_keys_and_each_apps_keys_count_to_ten_apart(fastgpt):
    headers = user_token(fastgpt.url)
    first_app, second_app = create_app(fastgpt.url, headers), create_app(fastgpt.url, headers)
    for _ in range(10):
        create_key(fastgpt.url, headers, appId=first_app)

    eleventh = post(
        fastgpt.url, "/api/support/openapi/create", {"name": "x", "appId": first_app}, headers
    )
    account_key = create_key(fastgpt.url, headers)
    other_app_key = create_key(fastgpt.url, headers, appId=second_app)

    assert eleventh.json()["statusText"] == "openapiExceedLimit"
    assert account_key.startswith("fastgpt-") and other_app_key.startswith("fastgpt-")


def test_an_unknown_bearer_key_is_unauth_api_key(fastgpt):
    reply = post(
        fastgpt.url,
        "/api/core/dataset/list",
        {},
        {"Authorization": "Bearer fastgpt-doesnotexist"},
    )

    assert reply.status == 200
    assert reply.json()["code"] == 514 and reply.json()["statusText"] == "unAuthApiKey"


def test_dataset_endpoints_take_a_bearer_key_and_app_endpoints_do_not(fastgpt):
    key_headers = {"Authorization": f"Bearer {create_key(fastgpt.url, user_token(fastgpt.url))}"}

    dataset_id = create_dataset(fastgpt.url, key_headers)
    app_reply = post(
        fastgpt.url,
        "/api/core/app/create",
        {"name": "a", "type": "simple", "modules": []},
        key_headers,
    )

    assert re.fullmatch(r"[0-9a-f]{24}", dataset_id)
    assert app_reply.json()["statusText"] == "unAuthorization"


# --- Datasets -----------------------------------------------------------------------------------


def test_intro_is_ignored_on_create_and_set_by_update(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers, intro="Product manuals")
    url = f"{fastgpt.url}/api/core/dataset/detail?id={dataset_id}"

    before = data_of(call("GET", url, headers=headers))
    updated = call(
        "PUT",
        f"{fastgpt.url}/api/core/dataset/update",
        json={"id": dataset_id, "intro": "Product manuals"},
        headers=headers,
    )
    after = data_of(call("GET", url, headers=headers))

    assert before["intro"] == ""
    assert data_of(updated) is None
    assert after["intro"] == "Product manuals"


def test_dataset_detail_carries_the_model_objects_from_config(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    detail = data_of(
        call("GET", f"{fastgpt.url}/api/core/dataset/detail?id={dataset_id}", headers=headers)
    )

    assert detail["vectorModel"] == CONFIG["vectorModels"][0]
    assert detail["agentModel"] == CONFIG["llmModels"][0]
    assert detail["type"] == "dataset" and detail["permission"]["hasWritePer"] is True


def test_an_unknown_model_name_is_stored_as_given(fastgpt):
    headers = user_token(fastgpt.url)

    dataset_id = create_dataset(fastgpt.url, headers, vectorModel="no-such-model")

    listed = data_of(post(fastgpt.url, "/api/core/dataset/list", {}, headers))
    assert listed[0]["_id"] == dataset_id
    assert listed[0]["vectorModel"]["model"] == "m3e-base"


def test_datasets_are_listed_and_deleted(fastgpt):
    headers = user_token(fastgpt.url)
    first = create_dataset(fastgpt.url, headers, name="first")
    second = create_dataset(fastgpt.url, headers, name="second")

    listed = data_of(post(fastgpt.url, "/api/core/dataset/list", {"parentId": None}, headers))
    deleted = call("DELETE", f"{fastgpt.url}/api/core/dataset/delete?id={first}", headers=headers)
    after = data_of(post(fastgpt.url, "/api/core/dataset/list", {}, headers))

    assert {d["_id"] for d in listed} == {first, second}
    assert data_of(deleted) is None
    assert [d["_id"] for d in after] == [second]


def test_dataset_lookups_fail_with_the_v488_errors(fastgpt):
    headers = user_token(fastgpt.url)
    detail = f"{fastgpt.url}/api/core/dataset/detail"

    missing = call("GET", detail, headers=headers)
    unknown = call("GET", f"{detail}?id={'a' * 24}", headers=headers)
    malformed = call("GET", f"{detail}?id=nope", headers=headers)

    assert (missing.status, missing.json()["statusText"]) == (200, "missingParams")
    assert missing.json()["code"] == 507002
    assert (unknown.status, unknown.json()["code"]) == (200, 501000)
    assert unknown.json()["message"] == "core.dataset.error.unExistDataset"
    assert malformed.status == 500
    assert malformed.json()["message"].startswith('Cast to ObjectId failed for value "nope"')


# --- Collections and training -----------------------------------------------------------------


def test_a_text_collection_trains_down_to_zero_over_time(config_path):
    env = base_env(config_path, STANDIN_TRAINING_SECONDS="3")
    with RunningStandin(FastGPT(env)) as fastgpt:
        headers = user_token(fastgpt.url)
        dataset_id = create_dataset(fastgpt.url, headers)

        created = add_text(fastgpt.url, headers, dataset_id)
        first = collections(fastgpt.url, headers, dataset_id)["data"][0]
        queue = data_of(
            call(
                "GET",
                f"{fastgpt.url}/api/core/dataset/training/getDatasetTrainingQueue"
                f"?datasetId={dataset_id}",
                headers=headers,
            )
        )
        wait_trained(fastgpt.url, headers, dataset_id)
        done = collections(fastgpt.url, headers, dataset_id)["data"][0]

    assert created["results"] == {"insertLen": 3, "overToken": [], "repeat": [], "error": []}
    assert first["_id"] == created["collectionId"] and first["type"] == "virtual"
    assert first["trainingAmount"] > 0 and queue["trainingCount"] > 0
    assert (done["trainingAmount"], done["dataAmount"]) == (0, 3)


def test_repeated_chunks_are_dropped(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    created = add_text(fastgpt.url, headers, dataset_id, text="same\n\nsame", chunkSize=4)

    assert created["results"]["insertLen"] == 1
    # The chunk object after simpleText, which adds the empty answer.
    assert created["results"]["repeat"] == [{"q": "same", "chunkIndex": 1, "a": ""}]


def test_collection_list_has_the_paging_shape_and_caps_page_size_at_30(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    for index in range(3):
        add_text(fastgpt.url, headers, dataset_id, text=f"text {index}", name=f"c{index}")

    page = collections(fastgpt.url, headers, dataset_id, pageNum=2, pageSize=2)
    capped = collections(fastgpt.url, headers, dataset_id, pageSize=100)

    assert set(page) == {"pageNum", "pageSize", "data", "total"}
    assert (page["pageNum"], page["pageSize"], page["total"]) == (2, 2, 3)
    assert [c["name"] for c in page["data"]] == ["c0"]
    assert capped["pageSize"] == 30


def test_a_url_encoded_file_name_is_decoded(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    name = "产品手册 v2.md"

    reply = upload(
        fastgpt.url,
        headers,
        dataset_id,
        f'filename="{quote(name)}"'.encode(),
        FACTS.encode(),
        chunkSize=80,
    )

    collection_id = data_of(reply)["collectionId"]
    detail = data_of(
        call(
            "GET",
            f"{fastgpt.url}/api/core/dataset/collection/detail?id={collection_id}",
            headers=headers,
        )
    )
    assert detail["name"] == name and detail["type"] == "file"
    assert detail["file"]["filename"] == name
    assert detail["datasetId"]["_id"] == dataset_id
    assert data_of(reply)["results"]["insertLen"] == 3


def test_a_raw_utf8_file_name_comes_out_garbled(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    name = "产品手册.txt"

    upload(fastgpt.url, headers, dataset_id, f'filename="{name}"'.encode(), b"text")

    listed = collections(fastgpt.url, headers, dataset_id)["data"]
    assert listed[0]["name"] == name.encode().decode("latin-1")


def test_a_malformed_percent_escape_in_the_file_name_is_never_answered(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    with pytest.raises(TimeoutError):
        upload(fastgpt.url, headers, dataset_id, b'filename="100%.txt"', b"text", timeout=1)
    # The hung request holds no lock: the server answers the next one at once.
    listed = collections(fastgpt.url, headers, dataset_id)

    assert listed["total"] == 0


def test_an_upload_without_a_file_part_is_never_answered(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    body, content_type = form_body([("data", None, json.dumps({"datasetId": dataset_id}))])

    with pytest.raises(TimeoutError):
        post_form(fastgpt.url, headers, body, content_type, timeout=1)

    assert collections(fastgpt.url, headers, dataset_id)["total"] == 0


def test_a_file_under_another_field_name_is_an_unexpected_field(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    body, content_type = form_body(
        [
            ("data", None, json.dumps({"datasetId": dataset_id})),
            ("document", "notes.txt", "text"),
        ]
    )

    reply = post_form(fastgpt.url, headers, body, content_type)

    assert reply.status == 500
    assert reply.json()["message"] == "Unexpected field"


def test_a_data_field_that_is_not_json_is_read_as_empty(fastgpt):
    headers = user_token(fastgpt.url)
    body, content_type = form_body([("data", None, "{not json"), ("file", "notes.txt", "text")])

    reply = post_form(fastgpt.url, headers, body, content_type)

    # An empty `data` names no dataset.
    assert reply.status == 200 and reply.json()["statusText"] == "unExistDataset"


def test_an_unsupported_file_type_is_refused(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    reply = upload(fastgpt.url, headers, dataset_id, b'filename="slides.key"', b"binary")

    assert reply.status == 500
    assert reply.json()["message"] == (
        "Only support .txt, .md, .html, .pdf, .docx, pptx, .csv, .xlsx"
    )


def test_deleting_a_collection_removes_its_chunks(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    collection_id = add_text(fastgpt.url, headers, dataset_id)["collectionId"]

    reply = call(
        "DELETE",
        f"{fastgpt.url}/api/core/dataset/collection/delete?id={collection_id}",
        headers=headers,
    )

    assert data_of(reply) is None
    assert collections(fastgpt.url, headers, dataset_id)["total"] == 0


def test_a_local_file_keeps_collection_metadata_and_drops_metadata(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    created = data_of(
        upload_file(
            fastgpt.url,
            headers,
            dataset_id,
            "notes.txt",
            b"Backups run at midnight.",
            metadata={"dropped": True},
            collectionMetadata={"source": "panel"},
            fileMetadata={"uploadedBy": "panel"},
        )
    )

    detail = collection_detail(fastgpt.url, headers, created["collectionId"])
    assert set(detail["metadata"]) == {"source", "relatedImgId"}
    assert detail["metadata"]["source"] == "panel"
    assert re.fullmatch(r"[a-z][A-Za-z0-9]{11}", detail["metadata"]["relatedImgId"])
    stored = detail["file"]["metadata"]
    assert stored["uploadedBy"] == "panel" and stored["encoding"] == "ascii"
    assert {"teamId", "tmbId"} <= set(stored) and "source" not in stored


def test_a_text_collection_keeps_its_metadata(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    created = add_text(fastgpt.url, headers, dataset_id, metadata={"source": "panel"})

    detail = collection_detail(fastgpt.url, headers, created["collectionId"])
    assert detail["metadata"] == {"source": "panel"}


LONG_PARAGRAPH = " ".join(["backup"] * 100)  # 699 characters
SHORT_PARAGRAPH = "Restores take ten minutes."


def test_chunks_over_the_vector_models_limit_are_over_token_and_never_trained(tmp_path):
    # m3e-base takes 512 tokens (665.6 characters with V488's 1.3); bge-m3 takes 8000.
    big = {**CONFIG["vectorModels"][0], "model": "bge-m3", "name": "BGE", "maxToken": 8000}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**CONFIG, "vectorModels": [*CONFIG["vectorModels"], big]}))
    text = f"{LONG_PARAGRAPH}\n-----\n{SHORT_PARAGRAPH}"
    with RunningStandin(FastGPT(base_env(path))) as fastgpt:
        headers = user_token(fastgpt.url)
        unknown = create_dataset(fastgpt.url, headers, name="a", vectorModel="no-such-model")
        roomy = create_dataset(fastgpt.url, headers, name="b", vectorModel="bge-m3")
        body = {"chunkSize": 1000, "chunkSplitter": "-----"}

        refused = add_text(fastgpt.url, headers, unknown, text=text, **body)
        accepted = add_text(fastgpt.url, headers, roomy, text=text, **body)
        as_qa = add_text(fastgpt.url, headers, unknown, text=text, trainingType="qa", **body)
        wait_trained(fastgpt.url, headers, unknown)
        counts = collections(fastgpt.url, headers, unknown)["data"]

    # An unknown model falls back to the first one, m3e-base.
    assert refused["results"] == {
        "insertLen": 1,
        "overToken": [{"q": LONG_PARAGRAPH, "chunkIndex": 0, "a": ""}],
        "repeat": [],
        "error": [],
    }
    assert accepted["results"]["insertLen"] == 2 and accepted["results"]["overToken"] == []
    # QA rows are measured against the LLM's maxContext * 0.8 instead.
    assert as_qa["results"]["insertLen"] == 2
    by_id = {c["_id"]: c for c in counts}
    trained = by_id[refused["collectionId"]]
    assert (trained["dataAmount"], trained["trainingAmount"]) == (1, 0)


def test_pushed_items_come_back_formatted_in_error_and_repeat(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    body = {"datasetId": dataset_id, "name": "manual", "type": "virtual"}
    collection_id = data_of(post(fastgpt.url, "/api/core/dataset/collection/create", body, headers))
    items = [
        {"q": "  Where are backups?  ", "a": "On the server."},
        {"q": "", "a": "No question"},
        {"q": "Where are backups?", "a": "On the server.", "indexes": None},
    ]

    reply = post(
        fastgpt.url,
        "/api/core/dataset/data/pushData",
        {"collectionId": collection_id, "data": items},
        headers,
    )

    assert data_of(reply) == {
        "insertLen": 1,
        "overToken": [],
        "repeat": [{"q": "Where are backups?", "a": "On the server."}],
        "error": [{"q": "", "a": "No question"}],
    }


def test_an_unknown_training_mode_creates_no_collection(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    reply = post(
        fastgpt.url,
        "/api/core/dataset/collection/create/text",
        {"datasetId": dataset_id, "name": "x", "text": "hello", "trainingType": "auto-index"},
        headers,
    )

    assert reply.status == 500
    assert reply.json()["message"] == 'Training mode "auto-index" is inValid'
    assert collections(fastgpt.url, headers, dataset_id)["total"] == 0


HANDBOOK_PAGE = b"""<!doctype html><html><head><title>Panel handbook</title>
<script>var inHead = "head script";</script></head>
<body><h1>Handbook</h1>
<p>The panel restarts FastGPT after every config change.</p>
<script>var tracker = "tracking code";</script>
<p>Icons such as <i>icon-gear</i> are dropped with their text.</p>
</body></html>"""


def add_link(url, headers, dataset_id, link, **body):
    return post(
        url,
        "/api/core/dataset/collection/create/link",
        {"datasetId": dataset_id, "link": link, "trainingType": "chunk", "chunkSize": 512, **body},
        headers,
    )


def test_a_link_is_fetched_at_once_named_after_its_title_and_trained(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    html_page = (200, {"Content-Type": "text/html; charset=utf-8"}, HANDBOOK_PAGE)
    with FakeUpstream(lambda path, count: html_page) as site:
        link = f"{site.url}/handbook"
        created = data_of(add_link(fastgpt.url, headers, dataset_id, link, metadata={"a": 1}))
        fetched = site.requests

    detail = collection_detail(fastgpt.url, headers, created["collectionId"])
    wait_trained(fastgpt.url, headers, dataset_id)
    found = search(fastgpt.url, headers, dataset_id, "restarts FastGPT config change")

    assert created == {"collectionId": created["collectionId"], "results": {"insertLen": 1}}
    assert [r["path"] for r in fetched] == ["/handbook"]
    assert fetched[0]["headers"]["User-Agent"].startswith("axios/")
    assert (detail["type"], detail["rawLink"], detail["name"]) == ("link", link, "Panel handbook")
    assert detail["metadata"] == {"a": 1}
    assert "The panel restarts FastGPT after every config change." in found[0]["q"]
    assert "tracking code" not in found[0]["q"] and "icon-gear" not in found[0]["q"]
    assert "Handbook" in found[0]["q"] and found[0]["sourceId"] == link


@pytest.mark.parametrize("failure", ["closed port", "404"])
def test_a_link_that_cannot_be_fetched_is_an_empty_collection_named_after_it(fastgpt, failure):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    missing = (404, {"Content-Type": "text/html"}, b"<title>Not found</title>")
    with FakeUpstream(lambda path, count: missing) as site:
        link = f"http://127.0.0.1:{free_port()}/gone" if failure == "closed port" else site.url
        created = data_of(add_link(fastgpt.url, headers, dataset_id, link))

    listed = collections(fastgpt.url, headers, dataset_id)["data"]
    assert created["results"] == {"insertLen": 0}
    assert [(c["name"], c["dataAmount"], c["trainingAmount"]) for c in listed] == [(link, 0, 0)]


def test_a_link_that_is_not_http_creates_no_collection(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    reply = add_link(fastgpt.url, headers, dataset_id, "ftp://files.example/handbook.txt")

    assert reply.status == 500
    assert reply.json()["message"].startswith('The "data" argument must be of type string')
    assert collections(fastgpt.url, headers, dataset_id)["total"] == 0


# --- Real documents: PDF, docx, xlsx, csv ------------------------------------------------------


def make_pdf(*lines, header=None, footer=None):
    """An A4 page with each line at its own height; a header near the top edge and a footer
    near the bottom edge, inside the bands V488's PDF reader leaves out."""
    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    if header:
        pdf.set_xy(10, 4)
        pdf.cell(text=header)
    for index, line in enumerate(lines):
        pdf.set_xy(10, 40 + 8 * index)
        pdf.cell(text=line)
    if footer:
        pdf.set_xy(10, 290)
        pdf.cell(text=footer)
    return bytes(pdf.output())


def upload_and_find(fastgpt, name, content, question, **data):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    created = data_of(
        upload_file(fastgpt.url, headers, dataset_id, name, content, chunkSize=2000, **data)
    )
    wait_trained(fastgpt.url, headers, dataset_id)
    return created, search(fastgpt.url, headers, dataset_id, question)


def test_the_text_of_a_real_pdf_is_trained_and_found(fastgpt):
    sentence = "The panel backs up FastGPT every night at two."
    content = make_pdf(sentence)

    created, found = upload_and_find(fastgpt, "guide.pdf", content, "When does the panel back up?")

    assert created["results"]["insertLen"] == 1
    assert found[0]["q"] == sentence


def test_a_pdf_reads_as_v488_reads_it(fastgpt):
    content = make_pdf(
        "Backups run at",
        "midnight every day.",
        "Restores take ten minutes.",
        header="CONFIDENTIAL DRAFT",
        footer="Page 1 of 1",
    )

    _, found = upload_and_find(fastgpt, "policy.pdf", content, "Restores take ten minutes")

    # Header and footer bands dropped; a line that ends no sentence runs into the next one.
    assert found[0]["q"] == "Backups run atmidnight every day.\nRestores take ten minutes."


def test_the_text_of_a_real_docx_is_trained_and_found(fastgpt):
    document = docx.Document()
    document.add_heading("Backup policy", level=1)
    document.add_paragraph("The panel keeps thirty daily snapshots.")
    document.add_paragraph("")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("Kind", "Keep"), ("daily", "30")], strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    buffer = io.BytesIO()
    document.save(buffer)

    _, found = upload_and_find(fastgpt, "policy.docx", buffer.getvalue(), "daily snapshots")

    assert found[0]["q"] == (
        "# Backup policy\n\nThe panel keeps thirty daily snapshots.\n\n"
        "| Kind | Keep |\n| --- | --- |\n| daily | 30 |"
    )


def test_an_xlsx_is_read_as_one_markdown_table_per_sheet(fastgpt):
    workbook = openpyxl.Workbook()
    models = workbook.active
    models.title = "Models"
    for row in [("model", "dim"), ("m3e-base", 768), ("bge-m3", 1024.0)]:
        models.append(row)
    notes = workbook.create_sheet("Notes")
    for row in [("note",), ("needs a GPU",)]:
        notes.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)

    created, found = upload_and_find(fastgpt, "models.xlsx", buffer.getvalue(), "m3e-base dim")

    assert created["results"]["insertLen"] == 2
    # V488's template leaves its indentation in the table.
    assert found[0]["q"] == (
        "| model | dim |\n      | --- | --- |\n      | m3e-base | 768 |\n| bge-m3 | 1024 |"
    )


def test_a_csv_is_read_as_a_markdown_table(fastgpt):
    content = b"name,size\nm3e-base,768\n"

    _, found = upload_and_find(fastgpt, "models.csv", content, "m3e-base size")

    assert found[0]["q"] == "| name | size |\n| --- | --- |\n| m3e-base | 768 |\n|  |"


@pytest.mark.parametrize(
    ("name", "module", "package"),
    [("guide.pdf", "pypdf", "pypdf"), ("guide.docx", "docx", "python-docx")],
)
def test_a_document_whose_library_is_missing_fails_loudly(
    fastgpt, monkeypatch, name, module, package
):
    monkeypatch.setattr(readers, module, None)
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    reply = upload_file(fastgpt.url, headers, dataset_id, name, b"not read")

    assert reply.status == 500
    assert f"{package} is not installed" in reply.json()["message"]
    assert collections(fastgpt.url, headers, dataset_id)["total"] == 0


# --- Training through the embedding model (OPENAI_BASE_URL set, as in a deployed stack) ------

NO_CHANNEL = {
    "error": {
        "message": "当前分组 default 下对于模型 m3e-base 无可用渠道 (request id: 20241205130649)",
        "type": "one_api_error",
    }
}
EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
    "model": "m3e-base",
    "usage": {"prompt_tokens": 6, "total_tokens": 6},
}
NO_CHANNEL_LOG_LINE = re.compile(
    r"^\[Error\] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d 503 当前分组 default 下对于模型 m3e-base "
    r"无可用渠道 \(request id: 20241205130649\) $",
    re.MULTILINE,
)


def trained_counts(url, headers, dataset_id):
    row = collections(url, headers, dataset_id)["data"][0]
    return row["dataAmount"], row["trainingAmount"]


def test_training_calls_the_embedding_model_and_retries_a_failed_row(config_path, capsys):
    # One API answers 503 to the SDK's first try and its two retries, then embeds.
    def one_api(path, count):
        return json_answer(503, NO_CHANNEL) if count < 3 else json_answer(200, EMBEDDINGS)

    with FakeUpstream(one_api) as oneapi:
        env = base_env(
            config_path,
            OPENAI_BASE_URL=f"{oneapi.url}/v1",
            STANDIN_TRAINING_RETRY_SECONDS="2",
        )
        with RunningStandin(FastGPT(env)) as fastgpt:
            headers = user_token(fastgpt.url)
            dataset_id = create_dataset(fastgpt.url, headers)
            add_text(fastgpt.url, headers, dataset_id, text="Backups run at midnight.")
            wait_until(lambda: len(oneapi.requests) >= 3, timeout=10, what="three failed tries")
            while_failing = trained_counts(fastgpt.url, headers, dataset_id)
            unsearchable = search(fastgpt.url, headers, dataset_id, "When do backups run?")
            wait_until(
                lambda: trained_counts(fastgpt.url, headers, dataset_id) == (1, 0),
                timeout=15,
                what="training after the retry",
            )
            found = search(fastgpt.url, headers, dataset_id, "When do backups run?")
        sent = oneapi.requests

    assert while_failing == (0, 1) and unsearchable == []
    assert found[0]["q"] == "Backups run at midnight."
    assert len(sent) == 4
    assert {r["path"] for r in sent} == {"/v1/embeddings"}
    assert {r["headers"]["Authorization"] for r in sent} == {"Bearer sk-fastgpt"}
    assert json.loads(sent[0]["body"]) == {
        "model": "m3e-base",
        "input": ["Backups run at midnight."],
    }
    # The row stays locked for the lock time after the try began.
    assert sent[3]["time"] - sent[0]["time"] >= 2
    assert len(NO_CHANNEL_LOG_LINE.findall(capsys.readouterr().out)) == 1


def test_an_invalid_request_error_locks_the_row_for_good(config_path, capsys):
    refusal = {"error": {"message": "input too long", "type": "invalid_request_error"}}
    with FakeUpstream(lambda path, count: json_answer(400, refusal)) as oneapi:
        env = base_env(
            config_path,
            OPENAI_BASE_URL=f"{oneapi.url}/v1",
            STANDIN_TRAINING_RETRY_SECONDS="0.5",
        )
        with RunningStandin(FastGPT(env)) as fastgpt:
            headers = user_token(fastgpt.url)
            dataset_id = create_dataset(fastgpt.url, headers)
            add_text(fastgpt.url, headers, dataset_id, text="Backups run at midnight.")
            wait_until(lambda: oneapi.requests, timeout=10, what="the first try")
            time.sleep(2)
            counts = trained_counts(fastgpt.url, headers, dataset_id)
        tries = len(oneapi.requests)

    out = capsys.readouterr().out
    assert tries == 1 and counts == (0, 1)
    assert re.search(r"^\[Error\] [\d: -]+ 400 input too long $", out, re.MULTILINE)
    assert re.search(r"^\[Info\] [\d: -]+ Lock training data $", out, re.MULTILINE)


def test_qa_rows_are_trained_over_time_without_a_model_call(config_path):
    with FakeUpstream(lambda path, count: json_answer(503, NO_CHANNEL)) as oneapi:
        env = base_env(config_path, OPENAI_BASE_URL=f"{oneapi.url}/v1")
        with RunningStandin(FastGPT(env)) as fastgpt:
            headers = user_token(fastgpt.url)
            dataset_id = create_dataset(fastgpt.url, headers)
            add_text(fastgpt.url, headers, dataset_id, trainingType="qa")
            wait_trained(fastgpt.url, headers, dataset_id)
            counts = trained_counts(fastgpt.url, headers, dataset_id)

    assert counts == (3, 0) and oneapi.requests == []


# --- Apps, versions and chat ---------------------------------------------------------------------


def test_creating_an_app_without_modules_is_the_misleading_permission_error(fastgpt):
    reply = post(fastgpt.url, "/api/core/app/create", {"name": "a", "type": "simple"}, {})

    assert reply.status == 200
    assert reply.json() == {
        "code": 507003,
        "statusText": "inheritPermissionError",
        "message": "error.inheritPermissionError",
        "data": None,
    }


def test_a_new_app_answers_at_once_from_its_dataset(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    add_text(fastgpt.url, headers, dataset_id)
    wait_trained(fastgpt.url, headers, dataset_id)
    app_key = create_key(fastgpt.url, headers, appId=create_app(fastgpt.url, headers, dataset_id))

    reply = ask(
        fastgpt.url,
        "Which embedding model does Xinference serve?",
        {"Authorization": f"Bearer {app_key}"},
    )

    assert answer_of(reply) == "Xinference serves the embedding model m3e-base and the chat model."
    assert reply.json()["id"] == "" and reply.json()["model"] == ""
    assert reply.json()["usage"] == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 1}


def test_chunks_still_training_are_not_searched(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    app_key = create_key(fastgpt.url, headers, appId=create_app(fastgpt.url, headers, dataset_id))
    add_text(fastgpt.url, headers, dataset_id, text="Backups run at midnight")

    reply = ask(fastgpt.url, "When do backups run?", {"Authorization": f"Bearer {app_key}"})

    assert answer_of(reply) == NO_MATCH_ANSWER


def test_chat_needs_an_app_key_not_an_account_key(fastgpt):
    headers = user_token(fastgpt.url)
    account_key = create_key(fastgpt.url, headers)

    reply = ask(fastgpt.url, "hello", {"Authorization": f"Bearer {account_key}"})

    assert reply.status == 500
    assert reply.json()["message"] == (
        "Key is error. You need to use the app key rather than the account key."
    )


def test_chat_with_the_user_token_names_the_app_in_the_body(fastgpt):
    headers = user_token(fastgpt.url)
    app_id = create_app(fastgpt.url, headers)

    without = ask(fastgpt.url, "hello", headers)
    with_app = ask(fastgpt.url, "hello", headers, appId=app_id)

    assert without.json()["message"] == "appId is empty"
    assert answer_of(with_app) == NO_MATCH_ANSWER


def test_an_update_changes_the_draft_and_chat_follows_only_after_publish(fastgpt):
    headers = user_token(fastgpt.url)
    old = create_dataset(fastgpt.url, headers, name="old")
    new = create_dataset(fastgpt.url, headers, name="new")
    add_text(fastgpt.url, headers, old, text="The old answer about deploys.")
    add_text(fastgpt.url, headers, new, text="The new answer about deploys.")
    wait_trained(fastgpt.url, headers, old)
    wait_trained(fastgpt.url, headers, new)
    app_id = create_app(fastgpt.url, headers, old)
    key_headers = {"Authorization": f"Bearer {create_key(fastgpt.url, headers, appId=app_id)}"}

    updated = call(
        "PUT",
        f"{fastgpt.url}/api/core/app/update?appId={app_id}",
        json={"nodes": app_modules(new), "edges": []},
        headers=headers,
    )
    after_update = answer_of(ask(fastgpt.url, "deploys?", key_headers))
    published = post(
        fastgpt.url,
        f"/api/core/app/version/publish?appId={app_id}",
        {
            "nodes": app_modules(new),
            "edges": [],
            "chatConfig": {"welcomeText": "Hi"},
            "type": "simple",
        },
        headers,
    )
    after_publish = answer_of(ask(fastgpt.url, "deploys?", key_headers))

    assert data_of(updated)["modules"] == app_modules(old)
    assert after_update == "The old answer about deploys."
    assert data_of(published) == {}
    assert after_publish == "The new answer about deploys."


def test_versions_are_listed_newest_first_a_page_at_a_time_without_auth(fastgpt):
    headers = user_token(fastgpt.url)
    app_id = create_app(fastgpt.url, headers)
    for welcome in ("first", "second"):
        body = {
            "nodes": app_modules(),
            "edges": [],
            "chatConfig": {"welcomeText": welcome},
            "type": "simple",
        }
        data_of(post(fastgpt.url, f"/api/core/app/version/publish?appId={app_id}", body, headers))
    url = "/api/core/app/version/list"

    first_page = data_of(post(fastgpt.url, url, {"appId": app_id, "current": 1, "pageSize": 2}, {}))
    last_page = data_of(post(fastgpt.url, url, {"appId": app_id, "current": 2, "pageSize": 2}, {}))

    assert first_page["total"] == 3
    assert [v.get("chatConfig") for v in first_page["list"]] == [
        {"welcomeText": "second"},
        {"welcomeText": "first"},
    ]
    # The version written by create has no chatConfig.
    assert [v.get("chatConfig") for v in last_page["list"]] == [None]


def test_a_streamed_answer_ends_with_done(fastgpt):
    headers = user_token(fastgpt.url)
    app_id = create_app(fastgpt.url, headers)

    reply = ask(fastgpt.url, "hello", headers, appId=app_id, stream=True)

    assert reply.headers["Content-Type"] == "text/event-stream;charset=utf-8"
    events = [e for e in reply.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    finish = json.loads(events[-2][6:])
    assert finish["choices"][0] == {"delta": {}, "index": 0, "finish_reason": "stop"}
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == NO_MATCH_ANSWER


def test_an_empty_message_list_is_an_error(fastgpt):
    headers = user_token(fastgpt.url)
    app_id = create_app(fastgpt.url, headers)

    reply = post(
        fastgpt.url, "/api/v1/chat/completions", {"appId": app_id, "messages": []}, headers
    )

    assert reply.status == 500 and reply.json()["message"] == "messages is empty"


# --- Share links ---------------------------------------------------------------------------------


def test_a_share_link_is_created_listed_used_and_deleted_by_its_id(fastgpt):
    headers = user_token(fastgpt.url)
    app_id = create_app(fastgpt.url, headers)
    body = {
        "appId": app_id,
        "type": "share",
        "name": "public",
        "responseDetail": False,
        "limit": {"QPM": 100, "maxUsagePoints": -1},
    }

    share_id = data_of(post(fastgpt.url, "/api/support/outLink/create", body, headers))
    listed = data_of(
        call(
            "GET",
            f"{fastgpt.url}/api/support/outLink/list?appId={app_id}&type=share",
            headers=headers,
        )
    )
    chat = ask(fastgpt.url, "hello", {}, shareId=share_id, outLinkUid="visitor-1")
    init = data_of(
        call(
            "GET",
            f"{fastgpt.url}/api/core/chat/outLink/init?shareId={share_id}&outLinkUid=visitor-1",
        )
    )
    by_share_id = call(
        "DELETE", f"{fastgpt.url}/api/support/outLink/delete?id={share_id}", headers=headers
    )
    by_id = call(
        "DELETE", f"{fastgpt.url}/api/support/outLink/delete?id={listed[0]['_id']}", headers=headers
    )

    assert re.fullmatch(r"[a-z0-9]{24}", share_id)
    assert listed[0]["shareId"] == share_id
    assert listed[0]["limit"] == {"maxUsagePoints": -1, "QPM": 100}
    assert answer_of(chat) == NO_MATCH_ANSWER
    assert init["appId"] == app_id and init["app"]["name"] == "helpdesk"
    assert by_share_id.status == 500
    assert data_of(by_id) == {}


def test_share_links_listed_without_a_type_are_none(fastgpt):
    headers = user_token(fastgpt.url)
    app_id = create_app(fastgpt.url, headers)
    body = {"appId": app_id, "type": "share", "name": "public"}
    data_of(post(fastgpt.url, "/api/support/outLink/create", body, headers))
    url = f"{fastgpt.url}/api/support/outLink/list?appId={app_id}"

    without_type = data_of(call("GET", url, headers=headers))
    with_type = data_of(call("GET", f"{url}&type=share", headers=headers))

    assert without_type == []
    assert [link["name"] for link in with_type] == ["public"]


def test_an_unknown_share_link_is_link_un_invalid(fastgpt):
    reply = ask(fastgpt.url, "hello", {}, shareId="nope", outLinkUid="visitor")

    assert reply.status == 200
    assert reply.json()["code"] == 501 and reply.json()["statusText"] == "linkUnInvalid"


def test_share_links_need_the_user_token(fastgpt):
    headers = user_token(fastgpt.url)
    app_id = create_app(fastgpt.url, headers)
    app_key = create_key(fastgpt.url, headers, appId=app_id)

    reply = post(
        fastgpt.url,
        "/api/support/outLink/create",
        {"appId": app_id, "type": "share", "name": "x"},
        {"Authorization": f"Bearer {app_key}"},
    )

    assert reply.json()["statusText"] == "unAuthorization"


# --- Root key, unknown paths, the stand-in's own endpoints, a bare start -------------------------


def test_admin_migration_takes_the_root_key(fastgpt):
    url = f"{fastgpt.url}/api/admin/initv488"

    good = call("POST", url, headers={"rootkey": "root-key-for-tests"})
    bad = call("POST", url, headers={"rootkey": "wrong"})

    assert good.json() == {"code": 200, "statusText": "", "message": "success", "data": None}
    assert bad.json()["statusText"] == "unAuthorization"


def test_an_unknown_api_path_is_a_404_page(fastgpt):
    reply = call("GET", f"{fastgpt.url}/api/core/nothing")

    assert reply.status == 404
    assert reply.headers["Content-Type"].startswith("text/html")


def test_requests_are_recorded_with_their_auth_headers(fastgpt):
    headers = user_token(fastgpt.url)
    create_dataset(fastgpt.url, headers)

    recorded = call("GET", f"{fastgpt.url}/__standin__/requests").json()["requests"]

    assert recorded[-1]["path"] == "/api/core/dataset/create"
    sent = {name.lower(): value for name, value in recorded[-1]["headers"].items()}
    assert sent["token"] == headers["token"]
    assert json.loads(recorded[-1]["body"]) == {"name": "docs"}


def _bare_python():
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    return [python, "-S", "-E"]


def test_runs_as_a_module_on_a_bare_python(config_path):
    port = free_port()
    env = {"PATH": os.environ["PATH"], **base_env(config_path)}
    process = subprocess.Popen(
        [
            *_bare_python(),
            "-m",
            "testkit.standins.fastgpt",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        reply = wait_until(
            lambda: _init_data_or_none(f"http://127.0.0.1:{port}"),
            timeout=10,
            what="the stand-in to listen",
        )
        assert reply["data"]["systemVersion"] == "4.8.8"
        assert login(f"http://127.0.0.1:{port}").json()["code"] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0


def _init_data_or_none(url):
    try:
        return call("GET", f"{url}/api/common/system/getInitData", timeout=1).json()
    except OSError:
        return None


def test_the_process_exits_1_when_config_json_cannot_be_read(tmp_path):
    port = free_port()
    env = {"PATH": os.environ["PATH"], **base_env(tmp_path / "absent.json")}
    process = subprocess.Popen(
        [
            *_bare_python(),
            "-m",
            "testkit.standins.fastgpt",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: (
                _init_data_or_none(f"http://127.0.0.1:{port}") is None
                and process.poll() is not None
            ),
            timeout=10,
            what="the process to exit",
        )
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate(timeout=10)[0].decode()
    assert process.returncode == 1
    assert "init error" in output


def non_loopback_address():
    """An IPv4 address of this machine other than loopback: its hostname if that resolves to
    one, else the address it would send from (connecting a UDP socket sends nothing)."""
    hostname = socket.gethostname()
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(hostname, None, socket.AF_INET)}
    except OSError:
        resolved = set()
    if any(not address.startswith("127.") for address in resolved):
        return hostname
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    unspecified = "0.0.0.0"  # noqa: S104 - compared, not bound
    return None if address.startswith("127.") or address == unspecified else address


def start_without_host(config_path, port, hostname):
    """The stand-in as the image starts it: no --host, HOSTNAME from the environment."""
    env = {"PATH": os.environ["PATH"], "PORT": str(port), **base_env(config_path)}
    if hostname is not None:
        env["HOSTNAME"] = hostname
    return subprocess.Popen(
        [*_bare_python(), "-m", "testkit.standins.fastgpt"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def refuses(host, port):
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def test_without_host_it_listens_on_hostname_only_as_next_does(config_path):
    hostname = non_loopback_address()
    if hostname is None:
        pytest.skip("this machine has no address but loopback")
    port = free_port()
    process = start_without_host(config_path, port, hostname)
    try:
        reply = wait_until(
            lambda: _init_data_or_none(f"http://{hostname}:{port}"),
            timeout=10,
            what="the stand-in to listen on HOSTNAME",
        )
        loopback_refused = refuses("127.0.0.1", port)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)

    assert reply["data"]["systemVersion"] == "4.8.8"
    assert loopback_refused


@pytest.mark.parametrize("hostname", ["0.0.0.0", None])  # noqa: S104 - what the stack sets
def test_hostname_0000_or_none_listens_on_loopback_too(config_path, hostname):
    port = free_port()
    process = start_without_host(config_path, port, hostname)
    try:
        reply = wait_until(
            lambda: _init_data_or_none(f"http://127.0.0.1:{port}"),
            timeout=10,
            what="the stand-in to listen on 127.0.0.1",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)

    assert reply["data"]["systemVersion"] == "4.8.8"
