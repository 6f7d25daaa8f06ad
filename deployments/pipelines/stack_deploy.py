"""Deploy a stack: check the server, write the rendered files, pull every image with
progress, start the services, wait until each is healthy, then do One API's first-run setup.

The same pipeline deploys, upgrades (the stack's version line was changed first) and rolls
back (the settings of an earlier deployment were restored first; run param `files_from`
names it). Every step writes or reads the files `stack_files` gives for the stack as it
stands, so a deploy writes exactly what the stack page and the upgrade preview show.

Steps are idempotent: files are rewritten whole, pulls of present layers are quick, and
`compose up -d` leaves running containers as they are. A retry resumes at the failed step.
"""

import yaml
from django.conf import settings

from ..choices import DeploymentAction, PipelineKind, StackStatus
from ..clients.oneapi import OneAPIError, first_run_setup
from ..clients.ssh import SSHError
from ..models.backups import backup_settings
from ..servers.sessions import open_session
from ..stacks.compose import compose_argv, server_facts
from ..stacks.endpoints import service_url
from ..stacks.files import files_diff, stack_files
from ..stacks.render import COMPOSE_FILE, SECRET_FILES
from ..stacks.secrets import ONEAPI_ACCESS_TOKEN, save_obtained_secret, stack_secrets
from ..stacks.versions import get_line
from .pull_progress import PullProgress
from .registry import register
from .stack_backup import back_up_within
from .stack_steps import deployment_of, record_files, wait_for_health
from .steps import Pipeline, StepContext, StepFailed

# A sentence per registry, for the "pull failed" message.
OTHER_REGISTRIES = "Docker Hub, GHCR, the Aliyun mirror or a registry of your own"


def check_server(ctx: StepContext) -> str:
    stack = deployment_of(ctx).stack
    with open_session(stack.server) as client:
        facts = server_facts(client)
    compose = facts["compose"]
    return f"Docker {facts['docker']['server_version']}, compose {compose['version']}."


def render_files(ctx: StepContext) -> str:
    deployment = deployment_of(ctx)
    stack = deployment.stack
    shown = stack_files(stack).shown()
    previous = stack.rendered_files or {}
    record_files(deployment, shown, files_diff(previous, shown))
    changed = sum(1 for name in shown if shown[name] != previous.get(name))
    return f"{changed} of {len(shown)} files differ from the last deployment."


def upload_files(ctx: StepContext) -> str:
    deployment = deployment_of(ctx)
    stack = deployment.stack
    files = stack_files(stack).files
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
    images = _images(stack_files(stack).files)
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


def back_up_before_upgrade(ctx: StepContext) -> str:
    """An upgrade backs the data up first (unless the stack is set not to), while the old
    line still runs: a failed backup stops the upgrade before anything changed."""
    deployment = deployment_of(ctx)
    stack = deployment.stack
    if deployment.action != DeploymentAction.UPGRADE:
        return "Not an upgrade: nothing to back up first."
    if not backup_settings(stack).before_upgrade:
        return "The stack is set not to back up before an upgrade."
    backup = back_up_within(ctx, stack)
    return f"The data is backed up into {backup.folder}."


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
    stack = deployment.stack
    return wait_for_health(ctx, stack, stack_files(stack).compose_services())


def set_up_oneapi(ctx: StepContext) -> str:
    """Replace One API's default root password (123456) with the stack's generated one and
    keep the management access token the next steps (channels, tokens) need."""
    deployment = deployment_of(ctx)
    stack = deployment.stack
    if "oneapi" not in stack_files(stack).compose_services():
        return "This stack has no One API."
    password = stack_secrets(stack)["ONEAPI_ROOT_PASSWORD"]
    try:
        with service_url(stack, "oneapi") as url:
            token = first_run_setup(url, password)
    except (OneAPIError, SSHError) as error:
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
        kind=PipelineKind.STACK_DEPLOY,
        steps=(
            ("check server", check_server),
            ("render files", render_files),
            ("upload files", upload_files),
            ("pull images", pull_images),
            ("back up before upgrade", back_up_before_upgrade),
            ("start services", start_services),
            ("wait until healthy", wait_until_healthy),
            ("set up One API", set_up_oneapi),
            ("record", record_deployment),
        ),
    )
)
