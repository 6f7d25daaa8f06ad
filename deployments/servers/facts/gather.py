"""The commands run on the server, and gather_facts, which turns their outputs into the facts.

`gather_facts` runs the probes through an SSH client and turns a probe that fails into an
entry that says why, so one missing tool never hides the rest; so does a command that
outlives its timeout (a hung nvidia-smi or Docker engine). Transport failures of the client
(SSHError) propagate.
"""

from __future__ import annotations

import contextlib
import shlex
from dataclasses import dataclass
from typing import Any, Protocol

from .docker import (
    explain_docker_failure,
    parse_compose_version,
    parse_docker_info,
    parse_docker_version,
    parse_toolkit_version,
)
from .nvidia import (
    NVIDIA_QUERY_FIELDS,
    explain_nvidia_smi_failure,
    parse_nvidia_smi_csv,
    parse_nvidia_smi_table,
)
from .output import FactsError, _first_line, _not_found, _text
from .system import parse_cpu, parse_df_bytes, parse_meminfo, parse_os_release

PROBE_TIMEOUT = 30


class _Result(Protocol):
    exit_status: int
    stdout: str
    stderr: str


class _Client(Protocol):
    def run(self, argv: list[str], *, check: bool = ..., timeout: float = ..., **kwargs): ...


@dataclass
class _ProbeResult:
    argv: list[str]
    exit_status: int
    stdout: str
    stderr: str


def _run(client: _Client, argv: list[str], timeout: float, sudo: bool = False) -> _Result:
    """client.run without raising for the command; a command past its timeout is a result.

    The client reports a command that outlived its timeout as an error of kind "timeout"
    saying it "did not finish within" the time: that is the probe's failure (exit status
    124, as coreutils' timeout gives), not the connection's. Anything else propagates.
    """
    kwargs = {"sudo": True} if sudo else {}
    try:
        return client.run(argv, check=False, timeout=timeout, **kwargs)
    except Exception as error:
        if getattr(error, "kind", None) == "timeout" and "did not finish within" in str(error):
            return _ProbeResult(list(argv), 124, "", str(error))
        raise


def _output(result: _Result) -> str:
    return "\n".join(part for part in (_text(result.stdout), _text(result.stderr)) if part)


def _ok(result: _Result) -> bool:
    return result.exit_status == 0


def _failure(result: _Result, argv: list[str]) -> str:
    output = _output(result)
    command = argv[0]
    if _not_found(result.exit_status, output):
        return f"{command} is not installed (command not found)."
    line = _first_line(output)
    detail = f": {line}" if line else " and printed nothing"
    return f"`{shlex.join(argv)}` failed with exit status {result.exit_status}{detail}"


def _probe(client, argv, parse, timeout, sudo=False):
    """(parsed value, None) or (None, reason)."""
    result = _run(client, argv, timeout, sudo)
    if not _ok(result):
        return None, _failure(result, argv)
    try:
        return parse(_text(result.stdout)), None
    except FactsError as error:
        return None, str(error)


def _gather_cpu(client, timeout):
    nproc = _run(client, ["nproc"], timeout)
    if not _ok(nproc):
        return None, _failure(nproc, ["nproc"])
    described = _run(client, ["env", "LC_ALL=C", "lscpu"], timeout)
    if not _ok(described):
        described = _run(client, ["cat", "/proc/cpuinfo"], timeout)
    model_text = _text(described.stdout) if _ok(described) else ""
    try:
        return parse_cpu(_text(nproc.stdout), model_text), None
    except FactsError as error:
        return None, str(error)


def _has_json_line(text: str) -> bool:
    return any(line.lstrip().startswith("{") for line in text.splitlines())


def _gather_docker(client, timeout, sudo):
    version_argv = ["docker", "version", "--format", "{{json .}}"]
    version = _run(client, version_argv, timeout, sudo)
    output = _output(version)
    if not _ok(version) and not _has_json_line(output):
        return {"error": explain_docker_failure(version.exit_status, output)}
    client_version = None
    with contextlib.suppress(FactsError):
        client_version = parse_docker_version(output)["client_version"]
    info_argv = ["docker", "info", "--format", "{{json .}}"]
    info = _run(client, info_argv, timeout, sudo)
    try:
        if not _ok(info) and not _has_json_line(_output(info)):
            raise FactsError(explain_docker_failure(info.exit_status, _output(info)))
        parsed = parse_docker_info(_output(info))
    except FactsError as error:
        return {"error": str(error), "client_version": client_version}
    return {"client_version": client_version, **parsed}


def _gather_compose(client, timeout, sudo):
    plugin = _run(client, ["docker", "compose", "version"], timeout, sudo)
    if _ok(plugin):
        try:
            return {"variant": "plugin", **parse_compose_version(_text(plugin.stdout))}
        except FactsError:
            pass
    standalone = _run(client, ["docker-compose", "version", "--short"], timeout, sudo)
    if _ok(standalone):
        try:
            parsed = parse_compose_version(_text(standalone.stdout))
        except FactsError as error:
            return {"error": str(error)}
        variant = "v1" if parsed["version"].startswith("1.") else "standalone"
        return {"variant": variant, **parsed}
    return {
        "error": "Docker Compose is not installed: neither `docker compose` (the plugin) nor "
        "`docker-compose` works on this server."
    }


def _gather_toolkit(client, timeout, docker: dict):
    version = None
    for argv in (["nvidia-ctk", "--version"], ["nvidia-container-cli", "--version"]):
        result = _run(client, argv, timeout)
        if _ok(result):
            try:
                version = parse_toolkit_version(_output(result))
                break
            except FactsError:
                continue
    runtime = "nvidia" in (docker.get("runtimes") or [])
    return {"installed": version is not None, "version": version, "docker_runtime": runtime}


def _gather_nvidia(client, timeout):
    """(gpus, nvidia section)."""
    fields = list(NVIDIA_QUERY_FIELDS)
    argv = ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv"]
    result = _run(client, argv, timeout)
    if not _ok(result) and "is not a valid field to query" in _output(result):
        # Drivers older than the compute_cap field: ask again without it.
        fields.remove("compute_cap")
        argv = ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv"]
        result = _run(client, argv, timeout)
    if not _ok(result):
        return [], {"error": explain_nvidia_smi_failure(result.exit_status, _output(result))}
    try:
        gpus = parse_nvidia_smi_csv(_text(result.stdout), fields)
    except FactsError as error:
        return [], {"error": str(error)}
    table = _run(client, ["nvidia-smi"], timeout)
    nvidia = {"driver_version": gpus[0]["driver_version"] if gpus else None, "cuda_version": None}
    if _ok(table):
        with contextlib.suppress(FactsError):
            nvidia = parse_nvidia_smi_table(_text(table.stdout))
    return gpus, nvidia


def gather_facts(client: _Client, *, timeout: float = PROBE_TIMEOUT, sudo: bool = False) -> dict:
    """Run every probe on the server behind `client` and return the facts (see the module).

    `client.run(argv, check=False, timeout=...)` runs one command; `sudo` is passed on to the
    Docker commands, for a user that may only use Docker through sudo. A probe that fails or
    outlives its timeout becomes an entry with the reason; any other SSHError from the
    client (the connection's) propagates.
    """
    errors: dict[str, str] = {}
    facts: dict[str, Any] = {}

    def record(section, value, reason, *, scalar=False):
        if reason is not None:
            errors[section] = reason
            facts[section] = None if scalar else {"error": reason}
        else:
            facts[section] = value

    record("os", *_probe(client, ["cat", "/etc/os-release"], parse_os_release, timeout))
    arch, reason = _probe(client, ["uname", "-m"], lambda text: text.strip() or None, timeout)
    if reason is None and arch is None:
        reason = "uname -m printed nothing."
    record("arch", arch, reason, scalar=True)
    record("cpu", *_gather_cpu(client, timeout))
    record("memory", *_probe(client, ["cat", "/proc/meminfo"], parse_meminfo, timeout))

    docker = _gather_docker(client, timeout, sudo)
    facts["docker"] = docker  # on failure: the error, and the client's version where known
    if "error" in docker:
        errors["docker"] = docker["error"]

    path = docker.get("data_root") or "/"
    disk, reason = _probe(
        client, ["df", "-B1", "--output=size,avail", path], parse_df_bytes, timeout
    )
    if reason is not None and path != "/":
        path = "/"
        disk, reason = _probe(
            client, ["df", "-B1", "--output=size,avail", path], parse_df_bytes, timeout
        )
    record("disk", {"path": path, **disk} if disk else None, reason)

    gpus, nvidia = _gather_nvidia(client, timeout)
    facts["gpus"] = gpus
    record("nvidia", nvidia, nvidia.get("error"))

    compose = _gather_compose(client, timeout, sudo)
    record("compose", compose, compose.get("error"))
    facts["nvidia_container_toolkit"] = _gather_toolkit(client, timeout, docker)
    facts["errors"] = errors
    return facts
