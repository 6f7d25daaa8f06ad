"""A stack's containers as the server's Docker engine reports them, kept as Service rows."""

import json

from django.utils import timezone

from ..choices import Health, ServiceState
from ..clients.ssh import SSHClient
from ..models import Service, Stack
from ..servers.sessions import open_session
from .render import project_name


def stack_containers(client: SSHClient, stack: Stack) -> list[dict]:
    listing = client.run(
        [
            "docker",
            "ps",
            "--all",
            "--filter",
            f"label=com.docker.compose.project={project_name(stack)}",
            "--format",
            "{{.Names}}",
        ],
        sudo=True,
        timeout=60,
    ).stdout.split()
    if not listing:
        return []
    inspected = client.run(["docker", "inspect", *listing], sudo=True, timeout=60).stdout
    return json.loads(inspected)


def service_container(client: SSHClient, stack: Stack, service: str) -> str | None:
    """The name of the stack's container for a compose service, if it has one."""
    for container in stack_containers(client, stack):
        labels = container["Config"].get("Labels") or {}
        if labels.get("com.docker.compose.service") == service:
            return container["Name"].lstrip("/")
    return None


def service_log(stack: Stack, service: str, tail: int | None = None) -> str | None:
    """A service container's log (its last TAIL lines), or None without a container."""
    with open_session(stack.server) as ssh:
        name = service_container(ssh, stack, service)
        if not name:
            return None
        argv = ["docker", "logs", *(["--tail", str(tail)] if tail else []), name]
        logs = ssh.run(argv, sudo=True, check=False, timeout=60)
    return logs.stdout + logs.stderr


def record_services(stack: Stack, containers: list[dict]) -> dict[str, dict]:
    """Update the stack's Service rows from `docker inspect`; return them by service."""
    seen = {}
    now = timezone.now()
    for container in containers:
        labels = container["Config"].get("Labels") or {}
        name = labels.get("com.docker.compose.service")
        if not name:
            continue
        state = container["State"]
        health = (state.get("Health") or {}).get("Status", Health.UNKNOWN)
        # A port published on every address has a binding for IPv4 (0.0.0.0) and another for
        # IPv6 (::) with the same numbers: kept once.
        ports = sorted(
            {
                f"{binding['HostPort']}->{port}"
                for port, bindings in (container["NetworkSettings"].get("Ports") or {}).items()
                for binding in bindings or []
            }
        )
        values = {
            "container_name": container["Name"].lstrip("/"),
            "image": container["Config"]["Image"],
            "ports": ports,
            "state": state.get("Status", ServiceState.UNKNOWN),
            "health": health if health in Health.values else Health.UNKNOWN,
            "restart_count": container.get("RestartCount", 0),
            "last_seen_at": now,
        }
        Service.objects.update_or_create(stack=stack, name=name, defaults=values)
        seen[name] = values
    return seen


def refresh_services(stack: Stack) -> dict[str, dict]:
    """Read the stack's containers now and update its Service rows; services whose
    container is gone are marked so."""
    with open_session(stack.server) as client:
        seen = record_services(stack, stack_containers(client, stack))
    stack.services.exclude(name__in=seen).update(state=ServiceState.MISSING, health=Health.UNKNOWN)
    return seen
