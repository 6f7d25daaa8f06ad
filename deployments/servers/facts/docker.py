"""Parsers for Docker, compose and the NVIDIA container toolkit; the compose command to use."""

from __future__ import annotations

import json
import re

from .output import FactsError, _first_line, _not_found, _quote, _text, _timed_out


def _json_object(text: str, what: str) -> tuple[dict, str]:
    """The JSON object on its own line in `text`, and the other lines (error messages)."""
    found = None
    others = []
    for line in _text(text).splitlines():
        stripped = line.strip()
        if found is None and stripped.startswith("{"):
            try:
                found = json.loads(stripped)
            except ValueError:
                raise FactsError(f"{what} printed broken JSON: {_quote(stripped)}") from None
        elif stripped:
            others.append(stripped)
    if not isinstance(found, dict):
        raise FactsError(f"{what} did not print JSON: {_quote(_first_line(text) or '(nothing)')}")
    return found, "\n".join(others)


def explain_docker_failure(exit_status: int, output: str) -> str:
    """A failed docker command (its exit status and what it printed) in plain words."""
    output = _text(output)
    if _timed_out(exit_status, output):
        return "Docker did not answer in time: its engine may be hung or overloaded."
    if "permission denied" in output.lower() and "docker" in output.lower():
        return (
            "This user may not use Docker (permission denied on the Docker socket): add it "
            "to the docker group, or use sudo or root."
        )
    if "Cannot connect to the Docker daemon" in output or "Is the docker daemon running" in output:
        return (
            "Docker is installed but its engine is not running (cannot connect to the Docker "
            "daemon). Start it, e.g. `systemctl start docker`."
        )
    if _not_found(exit_status, output):
        return "Docker is not installed (the docker command was not found)."
    line = _first_line(output)
    if line:
        return f"docker failed (exit status {exit_status}): {line}"
    return f"docker failed with exit status {exit_status} and printed nothing."


def parse_docker_version(text: str) -> dict:
    """`docker version --format '{{json .}}'` -> {"client_version", "server_version"}.

    "server_version" is None where the engine did not answer (the client still reports).
    """
    data, _ = _json_object(text, "docker version")
    client = data.get("Client") or {}
    server = data.get("Server") or {}
    if not client and not server:
        raise FactsError("docker version printed JSON without a client or a server part.")
    return {
        "client_version": client.get("Version") or None,
        "server_version": server.get("Version") or None,
    }


def parse_docker_info(text: str) -> dict:
    """`docker info --format '{{json .}}'` -> {"server_version", "data_root", "runtimes",
    "default_runtime"}.

    Raises FactsError, explained, where the engine did not answer: docker 20.10 then prints
    JSON with "ServerErrors" and exits 0; newer clients print empty fields and an error line.
    """
    data, others = _json_object(text, "docker info")
    errors = [str(error) for error in data.get("ServerErrors") or []]
    if errors or not data.get("ServerVersion"):
        reason = "\n".join(errors) or others
        if reason:
            raise FactsError(explain_docker_failure(1, reason))
        raise FactsError("docker info did not report an engine version: the engine did not answer.")
    return {
        "server_version": data["ServerVersion"],
        "data_root": data.get("DockerRootDir") or None,
        "runtimes": sorted(data.get("Runtimes") or {}),
        "default_runtime": data.get("DefaultRuntime") or None,
    }


_COMPOSE_VERSION = re.compile(
    r"^(?:Docker Compose version\s+|docker-compose version\s+)?v?(\d+\.\d+(?:\.\d+)?[\w.+~\-]*?),?"
    r"(?:\s+build\s+\S+)?$",
    re.IGNORECASE,
)


def parse_compose_version(text: str) -> dict:
    """Compose's version -> {"version": "2.24.5"}.

    Understands `docker compose version` ("Docker Compose version v2.24.5"),
    `docker compose version --short` ("2.24.5"), `docker-compose --version` and
    `docker-compose version` ("docker-compose version 1.29.2, build unknown", more lines
    after it) and `docker-compose version --short` ("1.29.2"). Which of the two commands
    answered is what tells plugin from docker-compose; gather_facts records that.
    """
    line = _first_line(_text(text))
    match = _COMPOSE_VERSION.match(line)
    if not match:
        raise FactsError(f"This is not a compose version: {_quote(line or '(nothing)')}")
    return {"version": match.group(1)}


_TOOLKIT_VERSION = re.compile(
    r"^(?:NVIDIA Container Toolkit CLI version|NVIDIA Container Runtime version|"
    r"cli-version:|version:)\s*v?(\d+\.\d+(?:\.\d+)?\S*)",
    re.IGNORECASE | re.MULTILINE,
)


def parse_toolkit_version(text: str) -> str:
    """`nvidia-ctk --version` or `nvidia-container-cli --version` -> "1.17.8"."""
    match = _TOOLKIT_VERSION.search(_text(text))
    if not match:
        raise FactsError(
            "This is not the version of the NVIDIA container toolkit: "
            f"{_quote(_first_line(_text(text)) or '(nothing)')}"
        )
    return match.group(1)


def compose_command(facts: dict) -> list[str]:
    """The argv prefix that runs compose on the server the facts describe."""
    compose = facts.get("compose") or {}
    if compose.get("variant") == "plugin":
        return ["docker", "compose"]
    if compose.get("variant") in ("v1", "standalone"):
        return ["docker-compose"]
    raise FactsError(compose.get("error") or "Docker Compose was not found on this server.")
