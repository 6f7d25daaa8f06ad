"""The FastGPT client against the V488 stand-in: login by token header, knowledge bases and their
documents, training, search, apps and their versions, chat with quotes, share links, errors."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from deployments.clients.fastgpt import (
    AppGraph,
    DatasetLimitReached,
    FastGPTClient,
    FastGPTError,
    share_url,
    simple_dataset_chat,
    uri_component,
)
from deployments.clients.fastgpt.client import UPLOAD_READ_BYTES
from testkit.sshd import free_port
from testkit.standins.client import call
from testkit.standins.fastgpt import FastGPT
from testkit.standins.server import RunningStandin
from testkit.workers import wait_until

REPO = Path(__file__).resolve().parent.parent
ROOT_PASSWORD = "panel-secret"
CHAT_MODEL = "qwen2.5-instruct"
EMBEDDING_MODEL = "m3e-base"
EMBEDDING_MAX_TOKEN = 512
CONFIG = {
    "feConfigs": {},
    "systemEnv": {"vectorMaxProcess": 15, "qaMaxProcess": 15, "pgHNSWEfSearch": 100},
    "llmModels": [
        {
            "model": "first-llm",
            "name": "First LLM",
            "maxContext": 8000,
            "maxResponse": 2000,
            "quoteMaxToken": 4000,
            "maxTemperature": 1,
            "charsPointsPrice": 0,
            "functionCall": False,
            "toolChoice": False,
            "customCQPrompt": "",
            "customExtractPrompt": "",
        },
        {
            "model": CHAT_MODEL,
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
        },
    ],
    "vectorModels": [
        {
            "model": EMBEDDING_MODEL,
            "name": "M3E",
            "defaultToken": 512,
            "maxToken": EMBEDDING_MAX_TOKEN,
            "weight": 100,
            "charsPointsPrice": 0,
        }
    ],
    "reRankModels": [],
}
FACTS = (
    "The control panel deploys FastGPT on a rented GPU server.\n\n"
    "Xinference serves the embedding model and the chat model.\n\n"
    "Share links are published for every chat app."
)
QUESTION = "Which server does the control panel deploy FastGPT on?"
UNKNOWN_ID = "0" * 24
FAKE_TOKEN = "eyJhbGciOiJIUzI1NiJ9.e30.not-a-signature"


def standin_env(config_path, **extra):
    return {
        "DEFAULT_ROOT_PSW": ROOT_PASSWORD,
        "TOKEN_KEY": "token-key-for-tests",
        "ROOT_KEY": "root-key-for-tests",
        "MONGODB_URI": "mongodb://user:pass@mongo:27017/fastgpt?authSource=admin",
        "PG_URL": "postgresql://username:password@pg:5432/postgres",
        "STANDIN_FASTGPT_CONFIG": str(config_path),
        "STANDIN_TRAINING_SECONDS": "0.3",
        **extra,
    }


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("fastgpt") / "config.json"
    path.write_text(json.dumps(CONFIG))
    return path


@pytest.fixture(scope="module")
def running_fastgpt(config_path):
    with RunningStandin(FastGPT(standin_env(config_path))) as running:
        yield running


@pytest.fixture
def fastgpt(running_fastgpt):
    call("POST", f"{running_fastgpt.url}/__standin__/reset")
    return running_fastgpt


@pytest.fixture
def client(fastgpt):
    with FastGPTClient(fastgpt.url) as client:
        client.login(ROOT_PASSWORD)
        yield client


def recorded(server, path_start=""):
    requests = call("GET", f"{server.url}/__standin__/requests").json()["requests"]
    return [r for r in requests if r["path"].startswith(path_start)]


def header(request, name):
    """A recorded request's header, whatever its case; None when it was not sent."""
    return next((v for k, v in request["headers"].items() if k.lower() == name.lower()), None)


def new_dataset(client, name="docs", **kwargs):
    return client.create_dataset(
        name, vector_model=EMBEDDING_MODEL, agent_model=CHAT_MODEL, **kwargs
    )


def trained_dataset(client, text=FACTS):
    dataset_id = new_dataset(client)
    client.create_text(dataset_id, "facts", text, chunk_size=80)
    wait_until(lambda: client.training_queue(dataset_id) == 0, timeout=10, what="training")
    return dataset_id


def chat_graph(dataset_id, **kwargs):
    return simple_dataset_chat(dataset_ids=[dataset_id], model=CHAT_MODEL, **kwargs)


# Login ---------------------------------------------------------------------------------------


def test_login_sends_the_sha256_of_the_password_and_returns_the_token(fastgpt):
    with FastGPTClient(fastgpt.url) as client:
        token = client.login(ROOT_PASSWORD)

    (login,) = recorded(fastgpt, "/api/support/user/account/loginByPassword")
    sent = json.loads(login["body"])
    assert sent == {
        "username": "root",
        "password": hashlib.sha256(ROOT_PASSWORD.encode()).hexdigest(),
    }
    assert token.count(".") == 2


def test_calls_after_login_carry_the_token_header_and_no_authorization_or_cookie(fastgpt):
    with FastGPTClient(fastgpt.url) as client:
        token = client.login(ROOT_PASSWORD)
        client.datasets()
        new_dataset(client)

    after_login = recorded(fastgpt, "/api/core/dataset/")
    assert len(after_login) == 2
    for request in after_login:
        assert header(request, "token") == token
        assert header(request, "Authorization") is None
        assert header(request, "Cookie") is None


def test_a_token_given_up_front_is_used_without_a_login(fastgpt):
    with FastGPTClient(fastgpt.url) as first:
        token = first.login(ROOT_PASSWORD)
    with FastGPTClient(fastgpt.url, token=token) as client:
        assert client.datasets() == []


def test_a_wrong_password_is_a_sentence_that_does_not_show_it(fastgpt):
    with FastGPTClient(fastgpt.url) as client, pytest.raises(FastGPTError) as raised:
        client.login("wrong-password-123")

    message = str(raised.value)
    assert message.startswith(f"FastGPT at {fastgpt.url} could not log in as 'root'")
    assert "wrong-password-123" not in message
    assert hashlib.sha256(b"wrong-password-123").hexdigest() not in message


# API keys ------------------------------------------------------------------------------------


def test_an_app_key_is_created_listed_and_deleted(client):
    dataset_id = new_dataset(client)
    app_id = client.create_app("helper", chat_graph(dataset_id))

    key = client.create_api_key("panel", app_id=app_id)
    listed = client.api_keys(app_id)
    client.delete_api_key(listed[0]["_id"])

    assert key.startswith("fastgpt-")
    assert [(k["name"], k["appId"], k["apiKey"][-4:]) for k in listed] == [
        ("panel", app_id, key[-4:])
    ]
    assert client.api_keys(app_id) == []


# Knowledge bases -----------------------------------------------------------------------------


def test_a_dataset_is_created_with_an_explicit_agent_model_and_its_intro(fastgpt, client):
    dataset_id = new_dataset(client, intro="What the panel knows.")

    detail = client.dataset(dataset_id)
    (create,) = recorded(fastgpt, "/api/core/dataset/create")
    sent = json.loads(create["body"])
    assert (sent["vectorModel"], sent["agentModel"]) == (EMBEDDING_MODEL, CHAT_MODEL)
    # The first llm would have been FastGPT's default; the one asked for is kept.
    assert detail["agentModel"]["model"] == CHAT_MODEL
    assert detail["vectorModel"]["model"] == EMBEDDING_MODEL
    assert detail["intro"] == "What the panel knows."


def test_datasets_are_listed_and_deleted(client):
    first, second = new_dataset(client, "first"), new_dataset(client, "second")

    listed = {d["_id"]: d["name"] for d in client.datasets()}
    client.delete_dataset(first)

    assert listed == {first: "first", second: "second"}
    assert [d["_id"] for d in client.datasets()] == [second]


def test_the_31st_dataset_is_refused_with_a_sentence_about_the_community_limit(client):
    for index in range(30):
        new_dataset(client, f"kb {index}")

    with pytest.raises(DatasetLimitReached) as raised:
        new_dataset(client, "one too many")

    error = raised.value
    assert isinstance(error, FastGPTError) and error.permanent
    assert (error.code, error.status_text) == (509000, "communityVersionNumLimit")
    assert "30 knowledge bases" in str(error) and "community edition" in str(error)
    assert str(error).endswith(".")


# Documents -----------------------------------------------------------------------------------


def test_an_uploaded_file_keeps_a_non_ascii_name_with_a_percent_sign(client, tmp_path):
    dataset_id = new_dataset(client)
    name = "Relatório 100% final – 产品手册.txt"
    path = tmp_path / "upload.txt"
    path.write_text(FACTS)

    created = client.upload_file(dataset_id, path, name, chunk_size=80)

    (document,) = client.collections(dataset_id)
    assert document.id == created.collection_id
    assert (document.name, document.type) == (name, "file")
    assert created.inserted == 3


def test_an_upload_sends_an_encoded_file_name_and_collection_metadata(fastgpt, client, tmp_path):
    dataset_id = new_dataset(client)
    path = tmp_path / "notes.txt"
    path.write_text(FACTS)

    client.upload_file(dataset_id, path, "50% notes.md", metadata={"source": "panel"})

    (upload,) = recorded(fastgpt, "/api/core/dataset/collection/create/localFile")
    assert 'filename="50%25%20notes.md"' in upload["body"]
    form_data = upload["body"].split('name="data"\r\n\r\n', 1)[1].split("\r\n--", 1)[0]
    sent = json.loads(form_data)
    assert sent["datasetId"] == dataset_id
    assert sent["collectionMetadata"] == {"source": "panel"}
    assert (sent["trainingType"], sent["chunkSize"]) == ("chunk", 512)


def test_uri_component_encodes_what_encode_uri_component_does():
    assert uri_component("a b%c/d.txt") == "a%20b%25c%2Fd.txt"
    assert uri_component("手册.md") == "%E6%89%8B%E5%86%8C.md"


@pytest.fixture(scope="module")
def fastgpt_process(config_path):
    """The stand-in in its own process, so this process's memory is the client's alone."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "testkit.standins.fastgpt", "--host", "127.0.0.1"]
        + ["--port", str(port)],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], **standin_env(config_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), timeout=10, what="the stand-in to listen")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def _answers(url):
    try:
        with FastGPTClient(url, timeout=1) as client:
            return client.init_data()
    except FastGPTError:
        return None


def test_a_large_file_is_streamed_from_disk_not_read_into_memory(fastgpt_process, tmp_path):
    path = tmp_path / "large.txt"
    with path.open("w") as out:
        for index in range(50_000):
            out.write(f"Paragraph {index}: " + "panel " * 65 + "\n\n")
    size = path.stat().st_size
    assert size > 20_000_000

    with FastGPTClient(fastgpt_process) as client:
        client.login(ROOT_PASSWORD)
        dataset_id = new_dataset(client)
        tracemalloc.start()
        try:
            created = client.upload_file(dataset_id, path, "large.txt")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert created.inserted > 0
    # A few read blocks at most, where reading the whole file would take over six times that.
    assert peak < 3 * UPLOAD_READ_BYTES < size / 5


def test_a_chunk_longer_than_the_embedding_model_takes_is_counted_as_over_token(client):
    dataset_id = new_dataset(client)
    too_long = "word " * EMBEDDING_MAX_TOKEN  # 5 characters a word: far past maxToken * 1.3

    created = client.create_text(
        dataset_id, "long", f"A short first chunk.\n\n{too_long}", chunk_size=len(too_long) + 10
    )

    assert created.over_token == 1
    assert created.over_token_chunks[0]["q"].startswith("word word")
    assert created.inserted == 1


def test_a_text_document_reports_inserted_and_repeated_chunks(client):
    dataset_id = new_dataset(client)

    created = client.create_text(dataset_id, "same", "same\n\nsame\n\nother", chunk_size=5)

    assert (created.inserted, created.repeated, created.errors) == (2, 1, 0)
    assert created.collection_id == client.collections(dataset_id)[0].id


def test_collections_are_read_page_by_page_past_30(fastgpt, client):
    dataset_id = new_dataset(client)
    for index in range(35):
        client.create_text(dataset_id, f"doc {index}", f"text number {index}")

    documents = client.collections(dataset_id)

    assert sorted(d.name for d in documents) == sorted(f"doc {i}" for i in range(35))
    pages = [json.loads(r["body"]) for r in recorded(fastgpt, "/api/core/dataset/collection/list")]
    assert [(p["pageNum"], p["pageSize"], p["simple"]) for p in pages] == [
        (1, 30, False),
        (2, 30, False),
    ]


def test_training_drains_the_queue_and_leaves_every_document_trained(client):
    dataset_id = new_dataset(client)
    client.create_text(dataset_id, "facts", FACTS, chunk_size=80)
    queued = client.training_queue(dataset_id)

    wait_until(lambda: client.training_queue(dataset_id) == 0, timeout=10, what="training")

    (document,) = client.collections(dataset_id)
    assert queued > 0
    assert (document.training_amount, document.data_amount, document.trained) == (0, 3, True)


def test_a_deleted_document_is_no_longer_listed(client):
    dataset_id = new_dataset(client)
    created = client.create_text(dataset_id, "facts", FACTS)

    client.delete_collection(created.collection_id)

    assert client.collections(dataset_id) == []


def test_search_test_finds_the_trained_text(client):
    dataset_id = trained_dataset(client)

    hits = client.search_test(dataset_id, QUESTION)

    assert hits[0].q == "The control panel deploys FastGPT on a rented GPU server."
    assert hits[0].source_name == "facts"
    assert hits[0].collection_id == client.collections(dataset_id)[0].id
    assert hits[0].scores and all(isinstance(v, float) for v in hits[0].scores.values())


# Apps and chat -------------------------------------------------------------------------------


def test_a_new_app_answers_from_its_dataset_with_quotes(client):
    dataset_id = trained_dataset(client)
    app_id = client.create_app("helper", chat_graph(dataset_id))

    answer = client.chat(app_id, QUESTION)

    assert "rented GPU server" in answer.text
    assert answer.quotes[0].q == "The control panel deploys FastGPT on a rented GPU server."
    assert answer.quotes[0].source_name == "facts"


def test_chat_sends_the_app_id_with_detail_and_no_stream(fastgpt, client):
    dataset_id = trained_dataset(client)
    app_id = client.create_app("helper", chat_graph(dataset_id))

    client.chat(app_id, QUESTION, chat_id="panel-chat-1")

    (request,) = recorded(fastgpt, "/api/v1/chat/completions")
    assert json.loads(request["body"]) == {
        "appId": app_id,
        "chatId": "panel-chat-1",
        "stream": False,
        "detail": True,
        "messages": [{"role": "user", "content": QUESTION}],
    }
    assert header(request, "Authorization") is None


def test_publishing_adds_a_version_and_chat_still_answers_from_the_graph(client):
    dataset_id = trained_dataset(client)
    graph = chat_graph(dataset_id)
    app_id = client.create_app("helper", graph)
    created_versions = len(client.app_versions(app_id))

    client.publish_app(app_id, chat_graph(dataset_id, welcome_text="Ask about the panel."))

    assert len(client.app_versions(app_id)) == created_versions + 1
    answer = client.chat(app_id, QUESTION)
    assert "rented GPU server" in answer.text and answer.quotes


def test_a_publish_sends_the_whole_graph(fastgpt, client):
    dataset_id = new_dataset(client)
    graph = chat_graph(dataset_id, welcome_text="Hello.")
    app_id = client.create_app("helper", graph)

    client.publish_app(app_id, graph)

    (publish,) = recorded(fastgpt, "/api/core/app/version/publish")
    assert publish["path"] == f"/api/core/app/version/publish?appId={app_id}"
    assert json.loads(publish["body"]) == {
        "type": "simple",
        "nodes": graph.nodes,
        "edges": graph.edges,
        "chatConfig": graph.chat_config,
    }


def test_a_deleted_app_is_gone(client):
    app_id = client.create_app("helper", chat_graph(new_dataset(client)))

    client.delete_app(app_id)

    with pytest.raises(FastGPTError) as raised:
        client.chat(app_id, QUESTION)
    assert raised.value.status_text == "appUnExist"
    assert "chat app does not exist" in str(raised.value)


def test_the_graph_is_the_simple_dataset_chat_template_with_the_settings_filled_in():
    graph = simple_dataset_chat(
        dataset_ids=["a" * 24, "b" * 24],
        model=CHAT_MODEL,
        system_prompt="Answer briefly.",
        similarity=0.5,
        limit=3000,
        using_rerank=True,
        temperature=2,
        max_tokens=1000,
        welcome_text="Hi.",
    )
    nodes = {node["nodeId"]: node for node in graph.nodes}

    def inputs(node_id):
        return {item["key"]: item for item in nodes[node_id]["inputs"]}

    assert graph.type == "simple"
    assert {n: nodes[n]["flowNodeType"] for n in nodes} == {
        "userGuide": "userGuide",
        "workflowStartNodeId": "workflowStart",
        "iKBoX2vIzETU": "datasetSearchNode",
        "7BdojPlukIQw": "chatNode",
    }
    assert all(node["version"] == "481" for node in graph.nodes)
    for node in graph.nodes:
        for item in node["inputs"]:
            assert {"renderTypeList", "valueType", "label"} <= set(item), item["key"]
    search, chat = inputs("iKBoX2vIzETU"), inputs("7BdojPlukIQw")
    assert search["datasets"]["value"] == [{"datasetId": "a" * 24}, {"datasetId": "b" * 24}]
    assert search["datasets"]["renderTypeList"] == ["selectDataset", "reference"]
    assert search["datasets"]["valueType"] == "selectDataset"
    assert (search["similarity"]["value"], search["limit"]["value"]) == (0.5, 3000)
    assert (search["searchMode"]["value"], search["usingReRank"]["value"]) == ("embedding", True)
    assert search["userChatInput"]["value"] == ["workflowStartNodeId", "userChatInput"]
    assert chat["model"]["value"] == CHAT_MODEL
    assert chat["model"]["renderTypeList"] == ["settingLLMModel", "reference"]
    assert (chat["temperature"]["value"], chat["maxToken"]["value"]) == (2, 1000)
    assert chat["systemPrompt"]["value"] == "Answer briefly."
    assert chat["quoteQA"]["value"] == ["iKBoX2vIzETU", "quoteQA"]
    assert chat["quoteQA"]["valueType"] == "datasetQuote"
    assert chat["history"]["value"] == 6
    assert "value" not in chat["quoteTemplate"]
    assert inputs("userGuide")["welcomeText"]["value"] == "Hi."
    assert graph.chat_config["welcomeText"] == "Hi."
    assert [
        (e["source"], e["target"], e["sourceHandle"], e["targetHandle"]) for e in graph.edges
    ] == [
        (
            "workflowStartNodeId",
            "iKBoX2vIzETU",
            "workflowStartNodeId-source-right",
            "iKBoX2vIzETU-target-left",
        ),
        ("iKBoX2vIzETU", "7BdojPlukIQw", "iKBoX2vIzETU-source-right", "7BdojPlukIQw-target-left"),
    ]


def test_a_graph_needs_a_dataset_and_a_temperature_on_fastgpts_scale():
    with pytest.raises(ValueError, match="at least one knowledge base"):
        simple_dataset_chat(dataset_ids=[], model=CHAT_MODEL)
    with pytest.raises(ValueError, match="0 to 10"):
        simple_dataset_chat(dataset_ids=["a" * 24], model=CHAT_MODEL, temperature=11)


def test_an_answer_made_of_several_items_is_joined_and_an_empty_one_is_empty():
    bodies = iter(
        [
            {
                "choices": [
                    {
                        "message": {
                            "role": "assistant",
                            "content": [
                                {"type": "text", "text": {"content": "First part."}},
                                {"type": "tool", "tools": []},
                                {"type": "text", "text": {"content": "Second part."}},
                            ],
                        }
                    }
                ],
                "responseData": [{"moduleType": "chatNode"}],
            },
            {"choices": [{"message": {"role": "assistant", "content": ""}}]},
        ]
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=next(bodies)))

    with FastGPTClient("http://fastgpt.test", token=FAKE_TOKEN, transport=transport) as client:
        several = client.chat(UNKNOWN_ID, QUESTION)
        empty = client.chat(UNKNOWN_ID, QUESTION)

    assert several.text == "First part.\n\nSecond part." and several.quotes == []
    assert empty.text == ""


# Share links ---------------------------------------------------------------------------------


def test_a_share_link_is_created_listed_and_deleted_by_its_id(client):
    app_id = client.create_app("helper", chat_graph(new_dataset(client)))
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

    share_id = client.create_share_link(
        app_id, "public", show_references=True, qpm=20, expires_at=expires
    )
    (link,) = client.share_links(app_id)
    client.delete_share_link(link["_id"])

    assert len(share_id) == 24 and link["shareId"] == share_id
    assert (link["type"], link["name"], link["responseDetail"]) == ("share", "public", True)
    assert link["limit"] == {
        "QPM": 20,
        "maxUsagePoints": -1,
        "expiredTime": "2030-01-02T03:04:05.000Z",
    }
    assert client.share_links(app_id) == []


def test_share_links_are_listed_with_their_type(fastgpt, client):
    app_id = client.create_app("helper", chat_graph(new_dataset(client)))

    client.share_links(app_id)

    (listing,) = recorded(fastgpt, "/api/support/outLink/list")
    assert listing["path"] == f"/api/support/outLink/list?appId={app_id}&type=share"


def test_a_share_link_expiry_needs_a_time_zone(client):
    naive = datetime.now() + timedelta(days=1)  # noqa: DTZ005 - the mistake under test
    with pytest.raises(ValueError, match="time zone"):
        client.create_share_link(UNKNOWN_ID, "public", expires_at=naive)


def test_the_share_url_is_the_chat_share_page_with_the_id_quoted():
    assert (
        share_url("https://kb.example.com/", "abc123")
        == "https://kb.example.com/chat/share?shareId=abc123"
    )
    assert (
        share_url("http://10.0.0.5:3000", "a&b") == "http://10.0.0.5:3000/chat/share?shareId=a%26b"
    )


# Errors --------------------------------------------------------------------------------------


def test_a_bad_token_is_a_sentence_that_says_to_log_in_again_and_hides_the_token(fastgpt):
    token = FAKE_TOKEN
    with FastGPTClient(fastgpt.url, token=token) as client, pytest.raises(FastGPTError) as raised:
        client.datasets()

    error = raised.value
    assert (error.code, error.status_text, error.permanent) == (403, "unAuthorization", True)
    assert "log in again" in str(error)
    assert token not in str(error)


def test_an_unknown_dataset_is_a_sentence(client):
    with pytest.raises(FastGPTError) as raised:
        client.dataset(UNKNOWN_ID)

    error = raised.value
    assert error.status_text == "unExistDataset" and error.permanent
    assert str(error).startswith(
        f"FastGPT at {client.base_url} could not read knowledge base {UNKNOWN_ID}: "
        "that knowledge base (or document) does not exist"
    )


def test_an_unreachable_fastgpt_is_a_sentence_worth_retrying():
    url = f"http://127.0.0.1:{free_port()}"
    with FastGPTClient(url, timeout=2) as client, pytest.raises(FastGPTError) as raised:
        client.init_data()

    assert not raised.value.permanent
    assert str(raised.value).startswith(f"Could not reach FastGPT at {url} to report its models")


def test_an_upload_that_gets_no_answer_times_out_with_a_sentence(tmp_path):
    def hang(request):
        raise httpx.ReadTimeout("no answer", request=request)

    path = tmp_path / "notes.txt"
    path.write_text(FACTS)
    transport = httpx.MockTransport(hang)
    client = FastGPTClient(
        "http://fastgpt.test", token=FAKE_TOKEN, upload_timeout=7, transport=transport
    )
    with client, pytest.raises(FastGPTError) as raised:
        client.upload_file(UNKNOWN_ID, path, "notes.txt")

    assert not raised.value.permanent
    assert "did not answer within 7 seconds when asked to upload 'notes.txt'" in str(raised.value)


def test_an_answer_that_is_not_fastgpts_is_a_sentence():
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="Bad Gateway"))

    with (
        FastGPTClient("http://fastgpt.test", transport=transport) as client,
        pytest.raises(FastGPTError) as raised,
    ):
        client.init_data()

    assert not raised.value.permanent
    assert "HTTP 502" in str(raised.value) and raised.value.code is None


def test_an_app_graph_is_a_plain_value():
    graph = AppGraph(nodes=[], edges=[], chat_config={})
    assert graph.type == "simple"
