"""The machine's own Docker engine, through the `docker` command line (no Django here)."""

import json
import os
import socket
import subprocess
from collections.abc import Sequence

# The legacy builder: it needs no buildx plugin and builds FROM images that exist only here.
BUILD_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}


class DockerError(RuntimeError):
    """A `docker` command failed; the message carries its arguments and what it printed."""


def docker(
    *args: str,
    input: bytes | str | None = None,
    check: bool = True,
    timeout: float | None = 120,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run `docker ARGS...` (an argument vector: no shell anywhere) and capture its output."""
    if isinstance(input, str):
        input = input.encode()
    result = subprocess.run(
        ["docker", *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if check and result.returncode != 0:
        raise DockerError(
            f"`docker {' '.join(args[:3])} ...` exited with {result.returncode}: "
            f"{result.stderr.decode(errors='replace').strip()[-2000:]}"
        )
    return result


def engine_error() -> str | None:
    """None when the engine answers; otherwise why not, in words."""
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    except FileNotFoundError:
        return "The `docker` command is not installed (Debian package docker.io)."
    except subprocess.TimeoutExpired:
        return "The Docker engine did not answer `docker info` within 30 seconds."
    if result.returncode != 0 or not result.stdout.strip():
        detail = result.stderr.decode(errors="replace").strip()
        return f"The Docker engine does not answer `docker info`: {detail}"
    return None


def server_version() -> str:
    return docker("version", "--format", "{{.Server.Version}}").stdout.decode().strip()


def image_id(tag: str) -> str | None:
    """The image's id, or None when no image has that tag."""
    result = docker("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def containers_with_label(label: str) -> list[tuple[str, dict[str, str]]]:
    """Containers (running or not) carrying LABEL: (id, all their labels) each."""
    ids = docker("ps", "-aq", "--no-trunc", "--filter", f"label={label}").stdout.decode().split()
    found = []
    for container_id in ids:
        result = docker("inspect", "--format", "{{json .Config.Labels}}", container_id, check=False)
        if result.returncode == 0:  # otherwise gone meanwhile
            found.append((container_id, json.loads(result.stdout) or {}))
    return found


def remove_containers(ids: Sequence[str]) -> None:
    if ids:
        docker("rm", "-f", "-v", *ids, check=False, timeout=120)


# Which test process (on which machine) started a container, so a later session removes
# only the containers whose process has gone.
PID_LABEL = "controlpanel-test.pid"
HOST_LABEL = "controlpanel-test.hostname"


def label_arguments(label: str) -> list[str]:
    """`docker run` arguments marking a container with LABEL and this test process."""
    return [
        *("--label", label),
        *("--label", f"{PID_LABEL}={os.getpid()}"),
        *("--label", f"{HOST_LABEL}={socket.gethostname()}"),
    ]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(label: str) -> list[str]:
    """Remove containers carrying LABEL whose test process on this machine has gone; ids."""
    hostname = socket.gethostname()
    gone = []
    for container_id, labels in containers_with_label(label):
        pid = labels.get(PID_LABEL, "")
        if labels.get(HOST_LABEL) != hostname:
            continue
        if pid.isdigit() and process_alive(int(pid)):
            continue
        gone.append(container_id)
    remove_containers(gone)
    return gone
