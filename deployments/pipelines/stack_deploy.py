"""Deploy a stack: check the server, write the rendered files, pull every image with
progress, start the services, wait until each is healthy, then do One API's first-run setup.

The same pipeline deploys, upgrades (the stack's version line was changed first) and rolls
back (run param `files_from`: the files of an earlier deployment are written again).

Steps are idempotent: files are rewritten whole, pulls of present layers are quick, and
`compose up -d` leaves running containers as they are. A retry resumes at the failed step.
"""

import difflib
import time

import yaml
from django.conf import settings

from ..choices import Health, StackStatus
from ..clients.oneapi import OneAPIError, first_run_setup
from ..clients.ssh import SSHClient, SSHError
from ..llm.wiring import launched_configs
from ..models import Deployment, Stack
from ..servers.facts import compose_command, gather_facts
from ..servers.sessions import open_session
from ..stacks.endpoints import oneapi_url
from ..stacks.render import (
    COMPOSE_FILE,
    CONFIG_FILE,
    ENV_FILE,
    SECRET_FILES,
    RenderedStack,
    env_values,
    project_name,
    render,
    render_env,
    unmask_config,
)
from ..stacks.secrets import (
    ONEAPI_ACCESS_TOKEN,
    XINFERENCE_API_KEY,
    save_obtained_secret,
    stack_secrets,
)
from ..stacks.services import record_services, stack_containers
from ..stacks.versions import get_line
from .pull_progress import PullProgress
from .registry import register
from .steps import Pipeline, StepContext, StepFailed

KIND = "stack.deploy"
LOG_LINES_ON_FAILURE = 20
OVERRIDE_FILE = "docker-compose.override.yml"
# A sentence per registry, for the "pull failed" message.
OTHER_REGISTRIES = "Docker Hub, GHCR, the Aliyun mirror or a registry of your own"


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


def deployment_files(deployment: Deployment) -> dict[str, str]:
    """The files this deployment writes, secrets included: rendered from the stack now, or,
    for a rollback, those of the earlier deployment with the stack's current secrets."""
    stack = deployment.stack
    secret_values = stack_secrets(stack)
    source_id = deployment.run.params.get("files_from")
    if source_id is None:
        return render(stack, secret_values, **launched_configs(stack)).files
    source = Deployment.objects.get(pk=source_id, stack=stack)
    files = {name: text for name, text in source.rendered_files.items() if name not in SECRET_FILES}
    files[ENV_FILE] = render_env(env_values(secret_values))
    if CONFIG_FILE in files:
        files[CONFIG_FILE] = unmask_config(
            files[CONFIG_FILE], secret_values.get(XINFERENCE_API_KEY, "")
        )
    return files


def files_diff(before: dict[str, str], after: dict[str, str]) -> str:
    """A unified diff of two sets of (shown) files, file by file."""
    lines = []
    for name in sorted(set(before) | set(after)):
        lines.extend(
            difflib.unified_diff(
                before.get(name, "").splitlines(keepends=True),
                after.get(name, "").splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )
    return "".join(lines)


def compose_argv(client: SSHClient, stack: Stack, facts: dict) -> list[str]:
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


def server_facts(client: SSHClient) -> dict:
    facts = gather_facts(client, sudo=True)
    if not (facts.get("docker") or {}).get("server_version"):
        raise StepFailed(
            "The Docker engine does not answer on this server: press “Prepare server” first."
        )
    if not (facts.get("compose") or {}).get("version"):
        raise StepFailed("Compose is missing on this server: press “Prepare server” first.")
    return facts


def check_server(ctx: StepContext) -> str:
    stack = deployment_of(ctx).stack
    with open_session(stack.server) as client:
        facts = server_facts(client)
    compose = facts["compose"]
    return f"Docker {facts['docker']['server_version']}, compose {compose['version']}."


def render_files(ctx: StepContext) -> str:
    deployment = deployment_of(ctx)
    stack = deployment.stack
    shown = RenderedStack(deployment_files(deployment)).shown()
    previous = stack.rendered_files or {}
    record_files(deployment, shown, files_diff(previous, shown))
    changed = sum(1 for name in shown if shown[name] != previous.get(name))
    return f"{changed} of {len(shown)} files differ from the last deployment."


def upload_files(ctx: StepContext) -> str:
    deployment = deployment_of(ctx)
    stack = deployment.stack
    files = deployment_files(deployment)
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


def _images(files: dict[str, str]) -> list[str]:
    document = yaml.safe_load(files[COMPOSE_FILE])
    return sorted({service["image"] for service in document["services"].values()})


def pull_images(ctx: StepContext) -> str:
    deployment = deployment_of(ctx)
    stack = deployment.stack
    images = _images(deployment_files(deployment))
    with open_session(stack.server) as client:
        for number, image in enumerate(images, start=1):
            ctx.check_cancel()
            progress = PullProgress(ctx.log, f"[{number}/{len(images)}] {image}:")
            try:
                # A terminal, so that docker reports bytes as well as layer states.
                client.run(
                    ["docker", "pull", image],
                    sudo=True,
                    timeout=settings.IMAGE_PULL_TIMEOUT,
                    on_output=progress,
                    terminal=True,
                )
            except SSHError as error:
                reason = str(error).strip().rstrip(".")
                raise StepFailed(
                    f"Pulling {image} failed: {reason}. Check that the image exists in the chosen "
                    f"registry, or choose another one for this stack ({OTHER_REGISTRIES})."
                ) from error
    return f"{len(images)} images present."


def start_services(ctx: StepContext) -> str:
    stack = deployment_of(ctx).stack
    with open_session(stack.server) as client:
        facts = server_facts(client)
        client.run(
            [*compose_argv(client, stack, facts), "up", "-d", "--remove-orphans"],
            sudo=True,
            timeout=600,
            on_output=ctx.log,
        )
    return "Services started."


def wait_until_healthy(ctx: StepContext) -> str:
    deployment = deployment_of(ctx)
    return wait_for_health(
        ctx, deployment.stack, RenderedStack(deployment_files(deployment)).compose_services()
    )


def wait_for_health(ctx: StepContext, stack: Stack, expected_services: list[str]) -> str:
    """Poll the stack's containers until every expected service is healthy; on timeout,
    fail naming the unhealthy ones with their last log lines."""
    expected = set(expected_services)
    deadline = time.monotonic() + settings.STACK_HEALTH_TIMEOUT
    reported: dict[str, str] = {}
    with open_session(stack.server) as client:
        while True:
            services = record_services(stack, stack_containers(client, stack))
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
                Stack.objects.filter(pk=stack.pk).update(status=StackStatus.DEGRADED)
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


def set_up_oneapi(ctx: StepContext) -> str:
    """Replace One API's default root password (123456) with the stack's generated one and
    keep the management access token the next steps (channels, tokens) need."""
    deployment = deployment_of(ctx)
    stack = deployment.stack
    if "oneapi" not in RenderedStack(deployment_files(deployment)).compose_services():
        return "This stack has no One API."
    password = stack_secrets(stack)["ONEAPI_ROOT_PASSWORD"]
    try:
        token = first_run_setup(oneapi_url(stack), password)
    except OneAPIError as error:
        raise StepFailed(str(error)) from error
    save_obtained_secret(stack, ONEAPI_ACCESS_TOKEN, token)
    return "One API's root user has the stack's generated password; its access token is kept."


def record_deployment(ctx: StepContext) -> str:
    deployment = deployment_of(ctx)
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
            ("set up One API", set_up_oneapi),
            ("record", record_deployment),
        ),
    )
)
