"""The FastGPT stand-in keeps the V488 contract: lazy init from config.json, the envelope and its
HTTP-200 named errors, sha256 login, keys, datasets, training over time, apps, share links, chat."""

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest

from testkit.sshd import free_port
from testkit.standins.client import call
from testkit.standins.fastgpt import FastGPT
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
        "OPENAI_BASE_URL": "http://oneapi:3000/v1",
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


def upload(url, headers, dataset_id, filename_header, content, **data):
    body, content_type = multipart(
        {"data": json.dumps({"datasetId": dataset_id, "trainingType": "chunk", **data})},
        filename_header,
        content,
    )
    return call(
        "POST",
        f"{url}/api/core/dataset/collection/create/localFile",
        data=body,
        headers={**headers, "Content-Type": content_type},
    )


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
    assert created["results"]["repeat"] == [{"q": "same", "chunkIndex": 1}]


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


def test_a_malformed_percent_escape_in_the_file_name_fails(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    reply = upload(fastgpt.url, headers, dataset_id, b'filename="100%.txt"', b"text")

    assert reply.status == 500 and reply.json()["message"] == "URI malformed"


def test_an_unsupported_file_type_is_refused(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)

    reply = upload(fastgpt.url, headers, dataset_id, b'filename="slides.key"', b"binary")

    assert reply.status == 500
    assert reply.json()["message"] == (
        "Only support .txt, .md, .html, .pdf, .docx, pptx, .csv, .xlsx"
    )


def _pdf(text):
    stream = zlib.compress(f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode())
    return (
        b"%PDF-1.4\n1 0 obj << /Length "
        + str(len(stream)).encode()
        + b" /Filter /FlateDecode >>\nstream\n"
        + stream
        + b"\nendstream\nendobj\n%%EOF\n"
    )


def test_the_text_of_a_pdf_is_trained_and_answers_questions(fastgpt):
    headers = user_token(fastgpt.url)
    dataset_id = create_dataset(fastgpt.url, headers)
    upload(
        fastgpt.url, headers, dataset_id, b'filename="guide.pdf"', _pdf("Backups run at midnight")
    )
    wait_trained(fastgpt.url, headers, dataset_id)
    app_key = create_key(fastgpt.url, headers, appId=create_app(fastgpt.url, headers, dataset_id))

    reply = ask(fastgpt.url, "When do backups run?", {"Authorization": f"Bearer {app_key}"})

    assert answer_of(reply) == "Backups run at midnight"


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
