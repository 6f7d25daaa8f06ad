"""A running stack whose FastGPT is the stand-in, served from a thread on loopback, for tests
of knowledge bases, imports, chat apps and the one-click chatbot."""

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from deployments.models import PipelineRun, Stack
from deployments.pipelines import runner
from deployments.stacks.secrets import stack_secrets
from testkit.standins.client import call
from testkit.standins.fastgpt import FastGPT
from testkit.standins.server import RunningStandin

EMBEDDING = "m3e-base"
CHAT = "qwen2.5-instruct"
PLAIN_CHAT = "plain-chat"


def _llm(model: str, name: str, **extra) -> dict:
    return {
        "model": model,
        "name": name,
        "maxContext": 16000,
        "maxResponse": 2000,
        "quoteMaxToken": 8000,
        "maxTemperature": 1,
        "charsPointsPrice": 0,
        "functionCall": False,
        "toolChoice": False,
        "customCQPrompt": "",
        "customExtractPrompt": "",
        **extra,
    }


# Two chat models, the file-processing one second: FastGPT's default agentModel would be the
# first (K1), so tests see whether the panel sends its choice.
CONFIG = {
    "feConfigs": {},
    "systemEnv": {"vectorMaxProcess": 15, "qaMaxProcess": 15, "pgHNSWEfSearch": 100},
    "llmModels": [
        _llm(PLAIN_CHAT, "Plain chat"),
        _llm(CHAT, "Qwen 2.5", datasetProcess=True),
    ],
    "vectorModels": [
        {
            "model": EMBEDDING,
            "name": "M3E",
            "defaultToken": 512,
            "maxToken": 512,
            "weight": 100,
            "charsPointsPrice": 0,
        }
    ],
    "reRankModels": [],
}


@contextlib.contextmanager
def standin_fastgpt(stack: Stack, folder: Path, training_seconds: float = 0.3) -> Iterator:
    """The stand-in with the stack's root password, and the stack pointed at it."""
    config = folder / "config.json"
    config.write_text(json.dumps(CONFIG))
    env = {
        "DEFAULT_ROOT_PSW": stack_secrets(stack)["FASTGPT_ROOT_PASSWORD"],
        "TOKEN_KEY": "token-key-for-tests",
        "MONGODB_URI": "mongodb://user:pass@mongo:27017/fastgpt?authSource=admin",
        "PG_URL": "postgresql://username:password@pg:5432/postgres",
        "STANDIN_FASTGPT_CONFIG": str(config),
        "STANDIN_TRAINING_SECONDS": str(training_seconds),
    }
    with RunningStandin(FastGPT(env)) as running:
        stack.fastgpt_port = running.port
        stack.save()
        yield running


def run_queued(ids: list[int]) -> list[PipelineRun]:
    """Run the queued runs in this process, as a worker would, oldest first."""
    runs = []
    while ids:
        run_id = ids.pop(0)
        runner.run(run_id, "test-worker")
        runs.append(PipelineRun.objects.get(pk=run_id))
    return runs


def recorded(standin: RunningStandin, path: str) -> list[dict]:
    """The requests the stand-in received at `path`, with JSON bodies decoded."""
    requests = call("GET", f"{standin.url}/__standin__/requests").json()["requests"]
    return [
        {**request, "body": _decoded(request["body"])}
        for request in requests
        if request["path"].split("?")[0] == path
    ]


def _decoded(body):
    try:
        return json.loads(body) if body else None
    except (TypeError, ValueError):
        return body
