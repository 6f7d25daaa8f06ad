"""What the stack pipelines (deploy, restart, teardown) share: the deployment a run belongs
to, the files it records, and the wait until the stack's services are healthy."""

from django.conf import settings

from ..choices import Health, StackStatus
from ..clients.ssh import SSHClient
from ..errors import WaitTimedOut
from ..logs.redact import mask_text
from ..models import Deployment, Stack
from ..servers.sessions import open_session
from ..stacks.services import record_services, stack_containers
from ..waiting import wait_for
from .steps import StepContext

LOG_LINES_ON_FAILURE = 20


def deployment_of(ctx: StepContext) -> Deployment:
    """The deployment a stack pipeline's run belongs to, with its stack, server and run."""
    return Deployment.objects.select_related("stack__server", "run").get(run=ctx.run)


def record_files(deployment: Deployment, shown: dict[str, str], diff: str = "") -> None:
    """Keep on the deployment the (masked) files it wrote, their diff, and the stack settings
    they come from; an action that writes nothing records the files as deployed."""
    stack = deployment.stack
    deployment.rendered_files = shown
    deployment.files_diff = diff
    deployment.version_line = stack.version_line
    deployment.stack_settings = stack.settings_snapshot()
    deployment.save(
        update_fields=["rendered_files", "files_diff", "version_line", "stack_settings"]
    )


def wait_for_health(ctx: StepContext, stack: Stack, expected_services: list[str]) -> str:
    """Poll the stack's containers until every expected service is healthy; on timeout,
    fail naming the unhealthy ones with their last log lines."""
    expected = set(expected_services)
    reported: dict[str, str] = {}
    with open_session(stack.server) as client:
        services: dict[str, dict] = {}

        def unhealthy() -> list[str]:
            return sorted(
                name for name in expected if services.get(name, {}).get("health") != Health.HEALTHY
            )

        def all_healthy() -> bool | None:
            services.clear()
            services.update(record_services(stack, stack_containers(client, stack)))
            for name, values in sorted(services.items()):
                if reported.get(name) != values["health"]:
                    reported[name] = values["health"]
                    ctx.log(f"{name}: {values['state']}, {values['health']}")
            return True if not unhealthy() else None

        try:
            wait_for(
                all_healthy,
                timeout=settings.STACK_HEALTH_TIMEOUT,
                interval=settings.STACK_HEALTH_POLL_SECONDS,
                check_cancel=ctx.check_cancel,
                on_timeout=lambda: _unhealthy_report(client, stack, unhealthy(), services),
            )
        except WaitTimedOut:
            Stack.objects.filter(pk=stack.pk).update(status=StackStatus.DEGRADED)
            raise
    return f"All {len(expected)} services are healthy."


def _unhealthy_report(client: SSHClient, stack: Stack, names: list[str], services: dict) -> str:
    parts = [
        f"Not healthy after {settings.STACK_HEALTH_TIMEOUT} s: {', '.join(names)}.",
    ]
    for name in names:
        container = services.get(name, {}).get("container_name")
        if not container:
            parts.append(f"{name}: no container was created.")
            continue
        logs = client.run(
            ["docker", "logs", "--tail", str(LOG_LINES_ON_FAILURE), container],
            sudo=True,
            check=False,
            timeout=60,
        )
        # Services print secrets (FastGPT its root password): masked as in the log viewers.
        tail = mask_text(stack.pk, (logs.stdout + logs.stderr).strip(), service=name)
        tail = tail or "(no output)"
        parts.append(f"Last lines of {name} ({services[name]['health']}):\n{tail}")
    return "\n\n".join(parts)
