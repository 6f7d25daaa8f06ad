"""A real Xinference on the CPU, in the test image, with the shared environment mounted.

Real models and no hub: MiniLM's real weights (from the environment) as a custom embedding
model, and a tiny random chat model made for the test. Authentication stays as the release has
it: the first admin is set up with the token the server logs.
"""

import time

import pytest

from deployments.clients.xinference import XinferenceClient as PanelXinferenceClient
from testkit.docker_engine import docker
from testkit.workers import wait_until
from testkit.xinference_env import XinferenceContainer, install_info, prepare
from testkit.xinference_models import (
    MINILM_DIMENSIONS,
    XinferenceClient,
    XinferenceError,
    make_tiny_chat_model,
    minilm_launch_body,
    minilm_weights_dir,
    register_minilm_embedding,
    register_tiny_chat_model,
    setup_token_from_log,
    tiny_chat_launch_body,
)

pytestmark = pytest.mark.slow

START_TIMEOUT = 240
LAUNCH_TIMEOUT = 300
HEALTHCHECK = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9997/status')"


def timed(label: str, started: float) -> None:
    print(f"[xinference] {label}: {time.monotonic() - started:.1f}s", flush=True)


@pytest.fixture(scope="module")
def tiny_chat_folder(tmp_path_factory):
    started = time.monotonic()
    folder = tmp_path_factory.mktemp("tiny-chat")
    summary = make_tiny_chat_model(folder)
    timed(f"tiny chat model made ({summary['size_bytes']} bytes)", started)
    assert summary["size_bytes"] < 2_000_000
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_chat_folder):
    """A started server with its first admin: (container, logged-in client)."""
    started = time.monotonic()
    image = prepare()
    timed("environment and image ready", started)
    home = tmp_path_factory.mktemp("xinference-home")
    with XinferenceContainer(image, home, mounts=[tiny_chat_folder]) as container:
        started = time.monotonic()
        client = XinferenceClient(container.base_url, timeout=60)
        try:
            status = client.wait_ready(timeout=START_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"Xinference did not start:\n{container.logs()[-4000:]}")
        timed("/status answers", started)
        assert "workers" in status

        if client.needs_setup():
            deadline = time.monotonic() + 60
            while (token := setup_token_from_log(container.logs())) is None:
                assert time.monotonic() < deadline, "no setup token in the server's log"
                time.sleep(1)
            with pytest.raises(XinferenceError) as refused:
                client.get("/v1/models")
            assert refused.value.status == 401
            client.set_up_admin(token, "admin", "test-admin-password")
            assert not client.needs_setup()
        yield container, client


def test_image_runs_the_mounted_environment(server):
    container, client = server
    # The rendered compose file's health check, as the engine runs it (no entrypoint).
    docker("exec", container.container_id, "python3", "-c", HEALTHCHECK)
    # The image's own python3 imports the mounted packages.
    found = docker(
        "exec",
        container.container_id,
        "/usr/bin/python3",
        "-c",
        "import torch, xinference; print(xinference.__version__, torch.__version__)",
        timeout=120,
    )
    xinference_version, torch_version = found.stdout.decode().split()
    assert xinference_version == install_info()["xinference"]
    assert torch_version.startswith("2.")
    assert client.get("/v1/cluster/version")["version"] == xinference_version


def test_minilm_embedding_from_local_weights(server):
    container, client = server
    assert minilm_weights_dir().is_dir()

    register_minilm_embedding(container.base_url, name="minilm-local", token=client.token)
    registered = client.get("/v1/model_registrations/embedding/minilm-local")
    assert registered["model_name"] == "minilm-local"

    started = time.monotonic()
    uid = client.launch(minilm_launch_body("minilm-local", "minilm"), timeout=LAUNCH_TIMEOUT)
    timed("MiniLM launched", started)
    assert uid == "minilm"
    assert "minilm" in client.running_uids()

    # The idle guard's request counter (/metrics): listing models is no use of one, an
    # embedding request is.
    panel = PanelXinferenceClient(container.base_url, token=client.token)
    before = panel.model_requests()
    assert "minilm" in client.running_uids()
    assert panel.model_requests() == before

    started = time.monotonic()
    answer = client.post("/v1/embeddings", {"model": "minilm", "input": ["hello world"]})
    timed("embedding", started)
    assert panel.model_requests() == before + 1
    panel.close()
    vector = answer["data"][0]["embedding"]
    assert len(vector) == MINILM_DIMENSIONS
    assert all(isinstance(value, float) for value in vector)
    assert any(abs(value) > 1e-6 for value in vector)

    # Real weights: related sentences lie closer than unrelated ones.
    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell today."]
    cat, kitten, stocks = (
        item["embedding"]
        for item in client.post("/v1/embeddings", {"model": "minilm", "input": texts})["data"]
    )

    def cosine(a, b):
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)

    assert cosine(cat, kitten) > cosine(cat, stocks) + 0.2

    client.terminate("minilm")
    assert "minilm" not in client.running_uids()
    with pytest.raises(XinferenceError) as gone:
        client.get("/v1/models/minilm")
    assert gone.value.status in (400, 404)


def test_tiny_chat_model_launches_and_chats(server, tiny_chat_folder):
    container, client = server
    register_tiny_chat_model(container.base_url, tiny_chat_folder, token=client.token)

    started = time.monotonic()
    body = tiny_chat_launch_body("tiny-chat", "tiny-chat")
    client.post("/v1/models?wait_ready=false", body)
    stages = []
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while True:
        progress = client.get("/v1/models/tiny-chat/progress")
        assert 0.0 <= progress["progress"] <= 1.0
        stages.append(progress.get("stage"))
        instances = client.get("/v1/models/instances?model_uid=tiny-chat")
        status = instances[0]["status"] if instances else None
        if status == "READY":
            break
        assert status != "ERROR", f"launch failed:\n{container.logs()[-4000:]}"
        assert time.monotonic() < deadline, f"not ready after {LAUNCH_TIMEOUT}s: {instances}"
        time.sleep(0.5)
    timed(f"tiny chat launched (stages seen: {sorted(set(map(str, stages)))})", started)
    # The instance can report READY a moment before the model list names it.
    wait_until(lambda: "tiny-chat" in client.running_uids(), 30, "tiny-chat in /v1/models")
    progress = client.get("/v1/models/tiny-chat/progress")
    print(f"[xinference] progress once ready: {progress}", flush=True)
    assert progress["progress"] == pytest.approx(1.0)

    started = time.monotonic()
    answer = client.post(
        "/v1/chat/completions",
        {
            "model": "tiny-chat",
            "messages": [{"role": "user", "content": "Hello!"}],
            "max_tokens": 16,
        },
        timeout=120,
    )
    timed("chat completion", started)
    assert answer["object"] == "chat.completion"
    message = answer["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert isinstance(message["content"], str)
    assert answer["usage"]["completion_tokens"] <= 16

    client.terminate("tiny-chat")
    assert "tiny-chat" not in client.running_uids()
    assert client.get("/v1/models/instances?model_uid=tiny-chat") == []
