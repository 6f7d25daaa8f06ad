"""check_docker_gpu: whether the Docker engine can start a container with the GPUs."""

from __future__ import annotations

from .docker import explain_docker_failure
from .gather import (
    PROBE_TIMEOUT,
    _Client,
    _gather_docker,
    _gather_nvidia,
    _gather_toolkit,
    _ok,
    _output,
    _run,
)
from .nvidia import parse_nvidia_smi_list
from .output import _first_line, _not_found, _text

GPU_CHECK_TIMEOUT = 600

_GPU_RUN_HINTS = (
    (
        "could not select device driver",
        "Docker cannot give GPUs to containers: the NVIDIA container toolkit is not "
        "configured for this Docker engine. Run `nvidia-ctk runtime configure "
        "--runtime=docker` and restart Docker.",
    ),
    (
        "unknown or invalid runtime name: nvidia",
        "Docker does not know the nvidia runtime: run `nvidia-ctk runtime configure "
        "--runtime=docker` and restart Docker.",
    ),
    (
        "nvidia-container-cli: initialization error",
        "The NVIDIA container toolkit cannot reach the driver from Docker "
        "(nvidia-container-cli: initialization error).",
    ),
)


def check_docker_gpu(
    client: _Client,
    image: str,
    facts: dict | None = None,
    *,
    sudo: bool = False,
    timeout: float = GPU_CHECK_TIMEOUT,
) -> dict:
    """Whether the Docker engine can start a container with the GPUs: {"ok", "reason"}.

    Runs `docker run --rm --gpus all <image> nvidia-smi -L` only where the facts (gathered
    here when not given) show an NVIDIA GPU, the container toolkit and a Docker engine;
    otherwise it says what is missing and runs nothing. On success "gpus" lists what the
    container saw ([{"index", "name", "uuid"}]).
    """
    if facts is None:
        gpus, nvidia = _gather_nvidia(client, PROBE_TIMEOUT)
        docker = _gather_docker(client, PROBE_TIMEOUT, sudo)
        facts = {
            "gpus": gpus,
            "nvidia": nvidia,
            "docker": docker,
            "nvidia_container_toolkit": _gather_toolkit(client, PROBE_TIMEOUT, docker),
        }
    if not facts.get("gpus"):
        return {"ok": False, "reason": "No NVIDIA GPU found"}
    toolkit = facts.get("nvidia_container_toolkit") or {}
    if not toolkit.get("installed"):
        return {"ok": False, "reason": "The NVIDIA container toolkit is not installed"}
    docker = facts.get("docker") or {}
    if not docker.get("server_version"):
        return {"ok": False, "reason": docker.get("error") or "Docker is not running"}
    argv = ["docker", "run", "--rm", "--gpus", "all", image, "nvidia-smi", "-L"]
    result = _run(client, argv, timeout, sudo)
    output = _output(result)
    if _ok(result):
        seen = parse_nvidia_smi_list(_text(result.stdout))
        if seen:
            return {"ok": True, "reason": "", "gpus": seen}
        return {
            "ok": False,
            "reason": f"The container started but saw no GPU: {_first_line(output) or '(nothing)'}",
        }
    for needle, reason in _GPU_RUN_HINTS:
        if needle in output:
            return {"ok": False, "reason": reason}
    if "Unable to find image" in output or "pull access denied" in output:
        return {
            "ok": False,
            "reason": f"Could not get the image {image}: {_last_error_line(output)}",
        }
    if _not_found(result.exit_status, output) and not output.startswith("docker:"):
        return {"ok": False, "reason": explain_docker_failure(result.exit_status, output)}
    return {
        "ok": False,
        "reason": f"A container with GPUs did not start (exit status {result.exit_status}): "
        f"{_last_error_line(output) or '(nothing printed)'}",
    }


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("docker: Error", "Error", "docker:")):
            return line
    return lines[-1] if lines else ""
