"""The Xinference client against a real Xinference on the CPU, with authentication as the
release ships it, MiniLM's real weights and a tiny random chat model (testkit).

One server for the module; each launch is polled with a generous deadline, never timed.
A few fast tests cover the error sentences with a fake transport or a dead port.
"""

import socket
from dataclasses import dataclass

import httpx
import pytest

from deployments.clients.xinference import (
    LAUNCHING,
    AuthState,
    XinferenceClient,
    XinferenceError,
)
from testkit.workers import wait_until
from testkit.xinference_env import XinferenceContainer, prepare
from testkit.xinference_models import (
    MINILM_DIMENSIONS,
    launch_until_ready,
    make_tiny_chat_model,
    minilm_embedding_spec,
    minilm_launch_body,
    minilm_rerank_launch_body,
    minilm_rerank_spec,
    setup_token_from_log,
    tiny_chat_launch_body,
    tiny_chat_spec,
    wait_for_launch_end,
    wait_until_answering,
)

START_TIMEOUT = 240
LAUNCH_TIMEOUT = 300
ADMIN = "admin"
PASSWORD = "admin-password-for-tests"
MINILM = "minilm-local"


# The server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory):
    """The tiny chat model's folder and summary (end_of_turn_id, ...)."""
    folder = tmp_path_factory.mktemp("tiny-chat")
    return folder, make_tiny_chat_model(folder)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_chat):
    image = prepare()
    home = tmp_path_factory.mktemp("xinference-home")
    with XinferenceContainer(image, home, mounts=[tiny_chat[0]]) as container:
        with XinferenceClient(container.base_url) as client:
            wait_until_answering(client, container, START_TIMEOUT)
        yield container


@dataclass
class FirstRun:
    before: AuthState
    refused: XinferenceError


@pytest.fixture(scope="module")
def first_run(server):
    """What the fresh server said before its first admin existed; then the admin is set up."""
    with XinferenceClient(server.base_url) as anonymous:
        before = anonymous.auth_state()
        try:
            anonymous.models()
        except XinferenceError as error:
            refused = error
        else:
            pytest.fail("A fresh server listed its models without a login")
        setup_token = wait_until(
            lambda: setup_token_from_log(server.logs()), 60, "the setup token in the log", 1
        )
        anonymous.setup_admin(setup_token, ADMIN, PASSWORD)
    return FirstRun(before, refused)


@pytest.fixture(scope="module")
def client(server, first_run):
    with XinferenceClient(server.base_url, timeout=60) as client:
        client.login(ADMIN, PASSWORD)
        yield client


@pytest.fixture(scope="module")
def minilm(client):
    """MiniLM registered as a custom embedding model; its name."""
    client.register("embedding", minilm_embedding_spec(MINILM))
    return MINILM


# Authentication -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_fresh_server_asks_for_its_first_admin_and_refuses_anonymous_calls(first_run):
    assert first_run.before == AuthState(enabled=True, needs_setup=True)
    refused = first_run.refused
    assert refused.status_code == 401
    assert "GET /v1/models" in str(refused)
    assert "not logged in" in str(refused)


@pytest.mark.slow
def test_login_keeps_the_token_for_later_calls(server, first_run):
    with XinferenceClient(server.base_url) as client:
        assert client.auth_state() == AuthState(enabled=True, needs_setup=False)

        token = client.login(ADMIN, PASSWORD)
        assert token and client.token == token
        assert isinstance(client.models(), dict)

        with pytest.raises(XinferenceError) as again:
            client.setup_admin("a-setup-token", "second-admin", PASSWORD)
        assert again.value.status_code == 403
        assert "already" in str(again.value)
        assert PASSWORD not in str(again.value) and token not in str(again.value)

    with XinferenceClient(server.base_url) as client, pytest.raises(XinferenceError) as wrong:
        client.login(ADMIN, "not-the-password")
    assert wrong.value.status_code == 401
    assert "log in as 'admin'" in str(wrong.value)
    assert "not-the-password" not in str(wrong.value)


# Launching and using models ----------------------------------------------------------------


@pytest.mark.slow
def test_minilm_launches_without_blocking_and_embeds(client, minilm):
    assert minilm in {entry["model_name"] for entry in client.registrations("embedding")}

    uid = client.launch(minilm_launch_body(minilm, "minilm"))
    assert uid == "minilm"
    # The answer comes while the model still loads (or, at the latest, once it is ready).
    right_after = client.instance_status(uid)
    assert right_after.status in LAUNCHING | {"READY"}
    assert right_after.model_name == minilm

    state, progress_seen = wait_for_launch_end(client, uid, LAUNCH_TIMEOUT)
    state.raise_for_error()
    assert state.ready and state.error is None
    for value in progress_seen:
        assert value is None or 0.0 <= value <= 1.0
    assert client.progress(uid) == pytest.approx(1.0)
    wait_until(lambda: uid in client.models(), 30, "minilm in the model list", 0.5)
    assert client.models()[uid]["model_type"] == "embedding"

    vectors = client.embed(uid, ["A cat sits on the mat.", "Stock prices fell today."])
    assert len(vectors) == 2
    assert all(len(vector) == MINILM_DIMENSIONS for vector in vectors)
    assert all(isinstance(value, float) for value in vectors[0])

    with pytest.raises(XinferenceError) as taken:
        client.launch(minilm_launch_body(minilm, "minilm"))
    assert taken.value.status_code == 400
    assert "minilm" in str(taken.value)

    client.terminate(uid)
    assert uid not in client.models()
    with pytest.raises(XinferenceError) as gone:
        client.terminate(uid)
    assert gone.value.status_code == 400
    assert "stop model 'minilm'" in str(gone.value)


@pytest.mark.slow
def test_tiny_chat_model_answers_and_terminate_removes_it(client, tiny_chat):
    folder, summary = tiny_chat
    spec = tiny_chat_spec(folder, "tiny-chat", end_of_turn_id=summary["end_of_turn_id"])
    client.register("LLM", spec)
    assert "tiny-chat" in {entry["model_name"] for entry in client.registrations("LLM")}

    uid = launch_until_ready(
        client, tiny_chat_launch_body("tiny-chat", "tiny-chat"), LAUNCH_TIMEOUT
    )
    answer = client.chat(uid, [{"role": "user", "content": "Hello!"}], max_tokens=8)
    assert isinstance(answer, str)  # random weights: random text

    client.terminate(uid)
    assert uid not in client.models()
    assert client.instance_status(uid) is None
    client.unregister("LLM", "tiny-chat")
    assert "tiny-chat" not in {entry["model_name"] for entry in client.registrations("LLM")}


@pytest.mark.slow
def test_minilm_as_a_rerank_model_ranks_documents(client):
    client.register("rerank", minilm_rerank_spec(), persist=False)
    uid = launch_until_ready(client, minilm_rerank_launch_body(), LAUNCH_TIMEOUT)
    documents = ["A kitten sleeps.", "Stock prices fell.", "Dogs bark at night."]
    ranked = client.rerank(uid, "Where is the cat?", documents)
    # Its classification head is untrained: the order is random, the shape is not.
    assert sorted(index for index, _ in ranked) == [0, 1, 2]
    assert all(isinstance(score, float) for _, score in ranked)
    client.terminate(uid)
    client.unregister("rerank", "minilm-rerank")


@pytest.mark.slow
def test_cancel_stops_a_launch_in_progress(client, minilm):
    uid = client.launch(minilm_launch_body(minilm, "minilm-cancelled"))
    if client.instance_status(uid).ready:
        client.terminate(uid)
        pytest.skip("The model loaded before it could be cancelled")

    client.cancel(uid)

    # Xinference marks a cancelled launch ERROR, with no message, and never lists it.
    state, _ = wait_for_launch_end(client, uid, LAUNCH_TIMEOUT)
    assert state.failed
    assert state.error is None
    assert uid not in client.models()
    with pytest.raises(XinferenceError) as failed:
        state.raise_for_error()
    assert "'minilm-cancelled'" in str(failed.value)

    with pytest.raises(XinferenceError) as nothing_to_cancel:
        client.cancel(uid)
    assert "has not been launched" in str(nothing_to_cancel.value)
    assert "address=" not in str(nothing_to_cancel.value)


# Errors -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_unknown_model_is_accepted_then_fails_naming_the_model(client):
    uid = client.launch({"model_name": "no-such-model", "model_type": "embedding"})
    state, _ = wait_for_launch_end(client, uid, LAUNCH_TIMEOUT)
    assert state.failed
    assert "no-such-model" in state.error
    with pytest.raises(XinferenceError) as failed:
        state.raise_for_error()
    message = str(failed.value)
    assert message.startswith("Xinference could not launch model 'no-such-model'")
    assert "no-such-model not found" in message


@pytest.mark.slow
def test_requests_xinference_refuses_outright_raise_with_its_detail(client):
    with pytest.raises(XinferenceError) as no_engine:
        client.launch({"model_name": "no-such-llm", "model_type": "LLM"})
    assert no_engine.value.status_code == 400
    assert "launch model 'no-such-llm'" in str(no_engine.value)
    assert "model_engine" in str(no_engine.value)

    with pytest.raises(XinferenceError) as unknown:
        client.rerank("no-such-uid", "query", ["a document"])
    assert unknown.value.status_code == 404
    assert "rerank documents with model 'no-such-uid'" in str(unknown.value)
    assert "POST /v1/rerank" in str(unknown.value)

    with pytest.raises(XinferenceError) as bad_type:
        client.registrations("no-such-type")
    assert "Unsupported model type: no-such-type" in str(bad_type.value)

    assert client.instance_status("no-such-uid") is None
    assert client.progress("no-such-uid") == 0.0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_server_gives_a_clear_sentence():
    port = _closed_port()
    client = XinferenceClient(f"http://127.0.0.1:{port}", timeout=5)
    with client, pytest.raises(XinferenceError) as unreachable:
        client.models()
    message = str(unreachable.value)
    assert message.startswith(f"Could not reach Xinference at http://127.0.0.1:{port}")
    assert "list running models (GET /v1/models)" in message
    assert unreachable.value.status_code is None
    assert unreachable.value.permanent is False


def test_a_server_that_never_answers_times_out_with_a_clear_sentence():
    with socket.socket() as silent:  # listens, so connecting works, but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        client = XinferenceClient(f"http://user:secret@127.0.0.1:{port}", timeout=0.5)
        with client, pytest.raises(XinferenceError) as late:
            client.status()
    message = str(late.value)
    assert f"Xinference at http://127.0.0.1:{port} did not answer in time" in message
    assert "secret" not in message
    assert late.value.permanent is False


def test_error_sentences_drop_secrets_echoed_by_the_server():
    def echo(request: httpx.Request) -> httpx.Response:
        # A server that quotes what it was sent, as request validation errors can.
        body = request.content.decode()
        return httpx.Response(422, json={"detail": [{"loc": ["body"], "msg": body}]})

    transport = httpx.MockTransport(echo)
    client = XinferenceClient("http://xinference:9997", transport=transport)
    with client, pytest.raises(XinferenceError) as refused:
        client.setup_admin("the-setup-token", "admin", "the-password")
    message = str(refused.value)
    assert "the-setup-token" not in message and "the-password" not in message
    assert "create the admin account 'admin'" in message
    assert refused.value.status_code == 422


def test_progress_is_none_where_the_server_has_no_such_endpoint():
    def old_server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Not Found"})

    with XinferenceClient("http://xinference:9997", transport=httpx.MockTransport(old_server)) as c:
        assert c.progress("minilm") is None
        with pytest.raises(XinferenceError) as no_cancel:
            c.cancel("minilm")
    assert "no such endpoint" in str(no_cancel.value)
