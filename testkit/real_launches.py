"""Models launched for real on a deployed stack (the real tests' shared steps): deploy a stack
whose Xinference sees a models folder, run a pipeline to its end in this process, and the model
configs those tests launch (a tiny chat model made on the spot, MiniLM for embedding and rerank).
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path

from deployments.actions.launches import do_launch_model
from deployments.actions.llm import do_create_model_config
from deployments.actions.stacks import do_deploy_stack
from deployments.choices import RunStatus
from deployments.models import ModelLaunch, Stack
from deployments.pipelines import runner
from testkit.stacks import deployable_stack, stack_target, write_override
from testkit.target import SSHTarget
from testkit.xinference_models import minilm_embedding_form, minilm_weights_dir

WORKER = "test-worker:1"
CPU = {"device": "cpu", "gpu_count": 0}


@contextlib.contextmanager
def deployed_on_target(
    ssh_target_image: str, team, operator, data_dir: Path, models_dir: Path, *, auth: bool
) -> Iterator[tuple[SSHTarget, Stack]]:
    """A deployed stack whose Xinference sees MODELS_DIR and MiniLM, with its SSH target."""
    with (
        stack_target(ssh_target_image, data_dir) as target,
        deployable_stack(team, target, data_dir) as stack,
    ):
        write_override(data_dir, xinference_auth=auth, mounts=(models_dir,))
        run_to_end(do_deploy_stack(stack, user=operator).run)
        stack.refresh_from_db()
        yield target, stack


@contextlib.contextmanager
def deployed(
    ssh_target_image: str, team, operator, data_dir: Path, models_dir: Path, *, auth: bool
) -> Iterator[Stack]:
    """A deployed stack whose Xinference sees MODELS_DIR and MiniLM."""
    with deployed_on_target(ssh_target_image, team, operator, data_dir, models_dir, auth=auth) as (
        _target,
        stack,
    ):
        yield stack


def run_to_end(run, expect=RunStatus.SUCCEEDED):
    runner.run(run.pk, WORKER)
    run.refresh_from_db()
    assert run.status == expect, run.error
    return run


def launched(config, stack, operator, expect=RunStatus.SUCCEEDED) -> ModelLaunch:
    launch = do_launch_model(config, stack=stack, user=operator)
    run_to_end(launch.run, expect)
    launch.refresh_from_db()
    return launch


def output_of(run) -> str:
    return "\n".join(step.output + step.error for step in run.steps.all())


def chat_config(team, operator, folder: Path):
    return do_create_model_config(
        "llm",
        team=team,
        user=operator,
        data={
            "model": "tiny-chat",
            "display_name": "Tiny chat",
            "xinference_model_name": "qwen2.5-instruct",
            "model_engine": "transformers",
            "model_format": "pytorch",
            "model_size_in_billions": "0_001",
            "quantization": "none",
            "local_path": str(folder),
            "max_context": 512,
            "max_response": 128,
            "quote_max_token": 256,
            **CPU,
        },
    )


def embedding_config(team, operator):
    return do_create_model_config(
        "embedding", team=team, user=operator, data=minilm_embedding_form("minilm")
    )


def rerank_config(team, operator):
    return do_create_model_config(
        "rerank",
        team=team,
        user=operator,
        data={
            "model": "minilm-rerank",
            "display_name": "MiniLM rerank",
            "xinference_model_name": "minilm-rerank",
            "model_engine": "sentence_transformers",
            "local_path": str(minilm_weights_dir()),
            **CPU,
        },
    )
