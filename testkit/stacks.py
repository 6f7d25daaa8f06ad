"""A stack that really deploys: an SSH target whose docker reaches this machine's engine,
images from the local registry, the Xinference environment mounted rather than copied.

    with deployable_stack(team, target, data_dir) as stack:
        ...  # deploy it; on exit its containers and volumes are removed

The target's compose runs against this machine's engine, which resolves bind mounts here: the
data directory must be the same path on both sides (see `stack_target`).
"""

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import yaml

from deployments.choices import Device, Registry
from deployments.models import Stack, Team
from deployments.stacks.compose import OVERRIDE_FILE
from deployments.stacks.render import COMPOSE_FILE, project_name
from testkit.factories import make_server, make_stack
from testkit.registry import MIRROR_PREFIX, ensure_registry
from testkit.target import SSHTarget, free_port
from testkit.xinference_env import venv_volume


@contextlib.contextmanager
def stack_target(image: str, data_dir: Path) -> Iterator[SSHTarget]:
    """An SSH target that sees `data_dir` at the same path as this machine."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with SSHTarget(image, mounts=[(str(data_dir), str(data_dir))]) as target:
        yield target


def write_override(
    data_dir: Path, *, xinference_auth: bool = False, mounts: tuple[Path, ...] = ()
) -> None:
    """The operator's override file (deploys keep it): the test image mounts its Python
    environment instead of carrying it (and MOUNTS, read-only at the same paths), and runs
    with auth off as on the 0.16 line unless XINFERENCE_AUTH (4.x's default: on)."""
    xinference: dict = {"volumes": [venv_volume(), *(f"{path}:{path}:ro" for path in mounts)]}
    if not xinference_auth:
        xinference["environment"] = {"XINFERENCE_AUTH_ADVANCED": "false"}
    override = {"services": {"xinference": xinference}}
    (data_dir / OVERRIDE_FILE).write_text(yaml.safe_dump(override))


def make_deployable_stack(team: Team, target: SSHTarget, data_dir: Path, **fields) -> Stack:
    """A server row for `target` and a stack on it using the local registry and free ports."""
    ensure_registry()
    server = make_server(
        team, host=target.host, ssh_port=target.port, ssh_private_key=target.key.private_openssh
    )
    fields.setdefault("data_dir", str(data_dir))
    fields.setdefault("registry", Registry.CUSTOM)
    fields.setdefault("registry_prefix", MIRROR_PREFIX)
    fields.setdefault("xinference_device", Device.CPU)
    for port in ("fastgpt_port", "oneapi_port", "xinference_port"):
        fields.setdefault(port, free_port())
    stack = make_stack(server, **fields)
    write_override(data_dir)
    return stack


def compose_down(stack: Stack, *, volumes: bool = True) -> None:
    """Remove the stack's containers (and volumes), from this machine: works whether or not
    the target is still there."""
    argv = [
        "docker-compose",
        "--project-name",
        project_name(stack),
        "--project-directory",
        stack.data_dir,
        "--file",
        f"{stack.data_dir}/{COMPOSE_FILE}",
        "down",
        "--timeout",
        "5",
    ]
    if volumes:
        argv.append("--volumes")
    if Path(stack.data_dir, COMPOSE_FILE).exists():
        subprocess.run(argv, capture_output=True, check=False, timeout=300)
    # Whatever compose no longer knows of (a file removed by a teardown): by its label.
    listing = subprocess.run(
        [
            "docker",
            "ps",
            "--all",
            "--quiet",
            "--filter",
            f"label=com.docker.compose.project={project_name(stack)}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    ).stdout.split()
    if listing:
        subprocess.run(
            ["docker", "rm", "--force", "--volumes", *listing],
            capture_output=True,
            check=False,
            timeout=300,
        )


def _project_listing(stack: Stack, field: str) -> list[tuple[str, str]]:
    """(compose service, `field` of the container) for each of the stack's containers on this
    engine, stopped ones included."""
    listing = subprocess.run(
        [
            "docker",
            "ps",
            "--all",
            "--filter",
            f"label=com.docker.compose.project={project_name(stack)}",
            "--format",
            '{{.Label "com.docker.compose.service"}} {{.' + field + "}}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [tuple(line.partition(" ")[::2]) for line in listing.splitlines()]


def project_containers(stack: Stack) -> dict[str, list[str]]:
    """The stack's containers on this engine, by compose service: name -> container names."""
    containers: dict[str, list[str]] = {}
    for service, name in _project_listing(stack, "Names"):
        containers.setdefault(service, []).append(name)
    return containers


def project_states(stack: Stack) -> dict[str, str]:
    """The state of each of the stack's containers on this engine: service -> "running",
    "exited", ..."""
    return dict(_project_listing(stack, "State"))


@contextlib.contextmanager
def deployable_stack(team: Team, target: SSHTarget, data_dir: Path, **fields) -> Iterator[Stack]:
    stack = make_deployable_stack(team, target, data_dir, **fields)
    try:
        yield stack
    finally:
        compose_down(stack)
