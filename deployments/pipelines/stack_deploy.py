"""Deploy a stack: check the server, write the rendered files, pull every image with
progress, start the services and wait until each is healthy.

Steps are idempotent: files are rewritten whole, pulls of present layers are quick, and
`compose up -d` leaves running containers as they are. A retry resumes at the failed step.
"""

import difflib
import json
import time

import yaml
from django.conf import settings
from django.utils import timezone

from ..choices import Health, ServiceState, StackStatus
from ..clients.ssh import SSHClient, SSHError
from ..models import Deployment, Service, Stack
from ..servers.facts import compose_command, gather_facts
from ..servers.sessions import open_session
from ..stacks.render import COMPOSE_FILE, ENV_FILE, SECRET_FILES, project_name, render
from ..stacks.secrets import stack_secrets
from ..stacks.versions import get_line
from .registry import register
from .steps import Pipeline, StepContext, StepFailed

KIND = "stack.deploy"
LOG_LINES_ON_FAILURE = 20
OVERRIDE_FILE = "docker-compose.override.yml"
# A sentence per registry, for the "pull failed" message.
OTHER_REGISTRIES = "Docker Hub, GHCR, the Aliyun mirror or a registry of your own"


def _deployment(ctx: StepContext) -> Deployment:
    return Deployment.objects.select_related("stack__server").get(run=ctx.run)


def _compose(client: SSHClient, stack: Stack, facts: dict) -> list[str]:
    directory = stack.data_dir
    files = ["--file", f"{directory}/{COMPOSE_FILE}"]
    # An operator's own additions, kept on the server across deploys (the panel never
    # writes this file): extra volumes, limits, a proxy network.
    override = f"{directory}/{OVERRIDE_FILE}"
    if client.run(["test", "-f", override], check=False, timeout=30).exit_status == 0:
        files += ["--file", override]
    return [
        *compose_command(facts),
        "--project-name",
        project_name(stack),
        "--project-directory",
        directory,
        *files,
        "--env-file",
        f"{directory}/{ENV_FILE}",
    ]


def _facts(client: SSHClient) -> dict:
    facts = gather_facts(client, sudo=True)
    if not (facts.get("docker") or {}).get("server_version"):
        raise StepFailed(
            "The Docker engine does not answer on this server: press “Prepare server” first."
        )
    if not (facts.get("compose") or {}).get("version"):
        raise StepFailed("Compose is missing on this server: press “Prepare server” first.")
    return facts


def check_server(ctx: StepContext) -> str:
    stack = _deployment(ctx).stack
    with open_session(stack.server) as client:
        facts = _facts(client)
    compose = facts["compose"]
    return f"Docker {facts['docker']['server_version']}, compose {compose['version']}."


def render_files(ctx: StepContext) -> str:
    deployment = _deployment(ctx)
    stack = deployment.stack
    shown = render(stack, stack_secrets(stack)).shown()
    previous = stack.rendered_files or {}
    diff = []
    for name in sorted(set(shown) | set(previous)):
        diff.extend(
            difflib.unified_diff(
                previous.get(name, "").splitlines(keepends=True),
                shown.get(name, "").splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )
    deployment.rendered_files = shown
    deployment.files_diff = "".join(diff)
    deployment.save(update_fields=["rendered_files", "files_diff"])
    changed = sum(1 for name in shown if shown[name] != previous.get(name))
    return f"{changed} of {len(shown)} files differ from the last deployment."


def upload_files(ctx: StepContext) -> str:
    stack = _deployment(ctx).stack
    files = render(stack, stack_secrets(stack)).files
    with open_session(stack.server) as client:
        client.run(["mkdir", "-p", stack.data_dir], sudo=True, timeout=60)
        user = client.run(["id", "-un"], timeout=30).stdout.strip()
        if user != "root":
            client.run(["chown", user, stack.data_dir], sudo=True, timeout=60)
        for name, text in files.items():
            mode = 0o600 if name in SECRET_FILES else 0o644
            client.upload(text, f"{stack.data_dir}/{name}", mode=mode)
            ctx.log(f"wrote {stack.data_dir}/{name}")
    return f"{len(files)} files written to {stack.data_dir}."


def _images(stack: Stack) -> list[str]:
    document = yaml.safe_load(render(stack, stack_secrets(stack)).files[COMPOSE_FILE])
    return sorted({service["image"] for service in document["services"].values()})


class _PullProgress:
    """Turns `docker pull` output into a line per layer event and a running count."""

    def __init__(self, ctx: StepContext, image: str, number: int, total: int) -> None:
        self.ctx, self.image, self.number, self.total = ctx, image, number, total
        self.layers: dict[str, str] = {}

    def __call__(self, line: str) -> None:
        layer, sep, state = line.partition(": ")
        if sep and len(layer) == 12 and all(c in "0123456789abcdef" for c in layer):
            self.layers[layer] = state.strip()
            done = sum(1 for s in self.layers.values() if s in ("Pull complete", "Already exists"))
            self.ctx.log(
                f"[{self.number}/{self.total}] {self.image}: layer {layer} {state.strip()} "
                f"({done}/{len(self.layers)} layers done)"
            )
        elif line.strip():
            self.ctx.log(f"[{self.number}/{self.total}] {line.strip()}")


def pull_images(ctx: StepContext) -> str:
    stack = _deployment(ctx).stack
    images = _images(stack)
    with open_session(stack.server) as client:
        for number, image in enumerate(images, start=1):
            ctx.check_cancel()
            progress = _PullProgress(ctx, image, number, len(images))
            try:
                client.run(
                    ["docker", "pull", image],
                    sudo=True,
                    timeout=settings.IMAGE_PULL_TIMEOUT,
                    on_output=progress,
                )
            except SSHError as error:
                reason = str(error).strip().rstrip(".")
                raise StepFailed(
                    f"Pulling {image} failed: {reason}. Check that the image exists in the chosen "
                    f"registry, or choose another one for this stack ({OTHER_REGISTRIES})."
                ) from error
    return f"{len(images)} images present."


def start_services(ctx: StepContext) -> str:
    stack = _deployment(ctx).stack
    with open_session(stack.server) as client:
        facts = _facts(client)
        client.run(
            [*_compose(client, stack, facts), "up", "-d", "--remove-orphans"],
            sudo=True,
            timeout=600,
            on_output=ctx.log,
        )
    return "Services started."


def _containers(client: SSHClient, stack: Stack) -> list[dict]:
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


def _record_services(stack: Stack, containers: list[dict]) -> dict[str, dict]:
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
        ports = sorted(
            f"{binding['HostPort']}->{port}"
            for port, bindings in (container["NetworkSettings"].get("Ports") or {}).items()
            for binding in bindings or []
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


def wait_until_healthy(ctx: StepContext) -> str:
    stack = _deployment(ctx).stack
    expected = set(render(stack, stack_secrets(stack)).compose_services())
    deadline = time.monotonic() + settings.STACK_HEALTH_TIMEOUT
    reported: dict[str, str] = {}
    with open_session(stack.server) as client:
        while True:
            services = _record_services(stack, _containers(client, stack))
            for name, values in sorted(services.items()):
                if reported.get(name) != values["health"]:
                    reported[name] = values["health"]
                    ctx.log(f"{name}: {values['state']}, {values['health']}")
            unhealthy = sorted(
                name for name in expected if services.get(name, {}).get("health") != Health.HEALTHY
            )
            if not unhealthy:
                return f"All {len(expected)} services are healthy."
            if time.monotonic() > deadline:
                raise StepFailed(_unhealthy_report(client, stack, unhealthy, services))
            ctx.check_cancel()
            time.sleep(settings.STACK_HEALTH_POLL_SECONDS)


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
        tail = (logs.stdout + logs.stderr).strip() or "(no output)"
        parts.append(f"Last lines of {name} ({services[name]['health']}):\n{tail}")
    return "\n\n".join(parts)


def record_deployment(ctx: StepContext) -> str:
    deployment = _deployment(ctx)
    stack = deployment.stack
    stack.rendered_files = deployment.rendered_files
    stack.status = StackStatus.RUNNING
    stack.save(update_fields=["rendered_files", "status", "updated_at"])
    line = get_line(stack.version_line)
    return f"{stack.name} runs {line.label}."


DEPLOY = register(
    Pipeline(
        kind=KIND,
        label="deploy stack",
        steps=(
            ("check server", check_server),
            ("render files", render_files),
            ("upload files", upload_files),
            ("pull images", pull_images),
            ("start services", start_services),
            ("wait until healthy", wait_until_healthy),
            ("record", record_deployment),
        ),
    )
)
