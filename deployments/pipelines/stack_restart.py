"""Restart one service of a stack, or all of them, and wait until they are healthy again.

Run params: `stack_id`, and `service` (a compose service name) or none for all.
"""

from ..choices import PipelineKind, StackStatus
from ..models import Stack
from ..servers.sessions import open_session
from ..stacks.compose import compose_argv, server_facts
from ..stacks.render import RenderedStack
from .registry import register
from .stack_steps import deployment_of, record_files, wait_for_health
from .steps import Pipeline, StepContext, StepFailed


def _deployed_services(stack: Stack) -> list[str]:
    if not stack.rendered_files:
        raise StepFailed("This stack has not been deployed yet: deploy it first.")
    return RenderedStack(stack.rendered_files).compose_services()


def restart_services(ctx: StepContext) -> str:
    deployment = deployment_of(ctx)
    stack = deployment.stack
    services = _deployed_services(stack)
    service = ctx.params.get("service") or ""
    if service and service not in services:
        raise StepFailed(f"This stack has no service “{service}”: it has {', '.join(services)}.")
    # A restart writes nothing: the deployment records the files as they are.
    record_files(deployment, stack.rendered_files)
    with open_session(stack.server) as client:
        facts = server_facts(client)
        client.run(
            [*compose_argv(client, stack, facts), "restart", *([service] if service else [])],
            sudo=True,
            timeout=600,
            on_output=ctx.log,
        )
    return f"Restarted {service or 'every service'}."


def wait_until_healthy(ctx: StepContext) -> str:
    stack = deployment_of(ctx).stack
    return wait_for_health(ctx, stack, _deployed_services(stack))


def record_restart(ctx: StepContext) -> str:
    Stack.objects.filter(pk=ctx.params["stack_id"]).update(status=StackStatus.RUNNING)
    return "The stack runs."


RESTART = register(
    Pipeline(
        kind=PipelineKind.STACK_RESTART,
        steps=(
            ("restart", restart_services),
            ("wait until healthy", wait_until_healthy),
            ("record", record_restart),
        ),
    )
)
