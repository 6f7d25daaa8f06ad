"""Tear a stack down: stop and remove its containers; with `delete_data`, also remove its
data directories and the files the panel wrote. The operator's override file stays.

Run params: `stack_id`, `delete_data` (bool; the action checked the typed stack name).
"""

import posixpath

import yaml

from ..choices import LaunchStatus, PipelineKind, StackStatus
from ..knowledge.bases import forget_stack
from ..models import ModelLaunch, RemoteProvider, Stack
from ..servers.sessions import open_session
from ..stacks.compose import compose_argv, server_facts
from ..stacks.render import COMPOSE_FILE, CONFIG_FILE, ENV_FILE, project_name
from ..stacks.secrets import forget_obtained_secrets
from ..stacks.services import stack_containers
from .registry import register
from .stack_steps import deployment_of, record_files
from .steps import Pipeline, StepContext


def data_paths(stack: Stack) -> list[str]:
    """The stack's own data on the server: the top folders of its relative bind mounts and
    the files the panel wrote, all inside the data directory (never the directory itself)."""
    compose = stack.rendered_files.get(COMPOSE_FILE)
    folders = set()
    if compose:
        for service in yaml.safe_load(compose)["services"].values():
            for volume in service.get("volumes", []):
                source = str(volume).split(":", 1)[0]
                if source.startswith("./"):
                    top = posixpath.normpath(source).split("/")[0]
                    if top not in ("", ".", ".."):
                        folders.add(top)
    names = sorted(folders | {COMPOSE_FILE, ENV_FILE, CONFIG_FILE})
    return [posixpath.join(stack.data_dir, name) for name in names]


def stop_services(ctx: StepContext) -> str:
    deployment = deployment_of(ctx)
    stack = deployment.stack
    record_files(deployment, stack.rendered_files)
    with open_session(stack.server) as client:
        compose_file = posixpath.join(stack.data_dir, COMPOSE_FILE)
        if client.run(["test", "-f", compose_file], check=False, timeout=30).exit_status == 0:
            facts = server_facts(client)
            client.run(
                [*compose_argv(client, stack, facts), "down", "--remove-orphans"],
                sudo=True,
                timeout=600,
                on_output=ctx.log,
            )
        # Containers compose no longer knows of (its file gone): by the project's label.
        left = [c["Name"].lstrip("/") for c in stack_containers(client, stack)]
        if left:
            client.run(["docker", "rm", "--force", *left], sudo=True, timeout=300)
            ctx.log(f"removed {', '.join(left)}")
        client.run(
            [
                "docker",
                "network",
                "prune",
                "--force",
                "--filter",
                f"label=com.docker.compose.project={project_name(stack)}",
            ],
            sudo=True,
            check=False,
            timeout=120,
        )
    stack.services.all().delete()
    return "Every container of the stack is removed."


def remove_data(ctx: StepContext) -> str:
    stack = deployment_of(ctx).stack
    if not ctx.params.get("delete_data"):
        return f"Data kept in {stack.data_dir}."
    paths = data_paths(stack)
    with open_session(stack.server) as client:
        client.run(["rm", "-rf", "--one-file-system", "--", *paths], sudo=True, timeout=1800)
    for path in paths:
        ctx.log(f"removed {path}")
    return f"Removed the stack's data and files from {stack.data_dir}."


def record_teardown(ctx: StepContext) -> str:
    stack = deployment_of(ctx).stack
    fields = {"status": StackStatus.TORN_DOWN}
    if ctx.params.get("delete_data"):
        # Nothing is deployed any more: the next deploy starts from empty files, and what
        # One API and Xinference gave the panel went with their databases.
        fields["rendered_files"] = {}
        forget_obtained_secrets(stack)
        # FastGPT's databases went too: what the panel knew of them names nothing now.
        bases, apps = forget_stack(stack)
        if bases or apps:
            ctx.log(f"{bases} knowledge base(s) and {apps} chat app(s) forgotten with the data.")
        # One API's channels went with its database; the providers stay, to be added again.
        RemoteProvider.objects.filter(stack=stack).update(
            oneapi_channel_id=None, last_test_ok=None, last_test_message="", last_tested_at=None
        )
    Stack.objects.filter(pk=stack.pk).update(**fields)
    # Xinference went with its container: no model of the stack runs any more.
    ended = ModelLaunch.objects.filter(
        stack=stack,
        status__in=[LaunchStatus.PENDING, LaunchStatus.LAUNCHING, LaunchStatus.READY],
    ).update(status=LaunchStatus.TERMINATED, stage="stack torn down", progress=0.0)
    if ended:
        ctx.log(f"{ended} model launch(es) marked terminated.")
    return "The stack is torn down."


TEARDOWN = register(
    Pipeline(
        kind=PipelineKind.STACK_TEARDOWN,
        steps=(
            ("stop services", stop_services),
            ("remove data", remove_data),
            ("record", record_teardown),
        ),
    )
)
