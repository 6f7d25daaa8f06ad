"""What a server has: system, CPU, memory, disk, NVIDIA GPUs and driver, Docker, compose and
the NVIDIA container toolkit.

The parsers are pure functions of a command's output; they raise FactsError with a message
meant for people when the output is not what the command prints. `gather_facts` runs the
probes through an SSH client and turns a probe that fails into an entry that says why, so one
missing tool never hides the rest; so does a command that outlives its timeout (a hung
nvidia-smi or Docker engine). Transport failures of the client (SSHError) propagate.

Shape of the facts (JSON-serialisable, stored in Server.facts):

    {"os": {"id", "version_id", "pretty_name"},
     "arch": "x86_64",
     "cpu": {"cores", "model"},
     "memory": {"total_bytes", "available_bytes"},
     "disk": {"path", "total_bytes", "free_bytes"},
     "gpus": [{"index", "name", "uuid", "memory_total_mib", "memory_used_mib",
               "memory_free_mib", "driver_version", "compute_cap"}, ...],
     "nvidia": {"driver_version", "cuda_version"},
     "docker": {"client_version", "server_version", "data_root", "runtimes",
                "default_runtime"},
     "compose": {"variant": "plugin" | "v1" | "standalone", "version"},
     "nvidia_container_toolkit": {"installed", "version", "docker_runtime"},
     "errors": {section: reason, ...}}

A section whose probe failed is {"error": reason} instead ("arch" is None), and the reason is
also listed under "errors". "gpus" is always a list: [] when there is no usable GPU, with the
reason under "nvidia".
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import shlex
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "NVIDIA_QUERY_FIELDS",
    "FactsError",
    "check_docker_gpu",
    "compose_command",
    "explain_docker_failure",
    "explain_nvidia_smi_failure",
    "gather_facts",
    "parse_compose_version",
    "parse_cpu",
    "parse_df_bytes",
    "parse_docker_info",
    "parse_docker_version",
    "parse_meminfo",
    "parse_nvidia_smi_csv",
    "parse_nvidia_smi_list",
    "parse_nvidia_smi_table",
    "parse_os_release",
    "parse_toolkit_version",
]


class FactsError(ValueError):
    """A command's output could not be understood; the message says why, in plain words."""


class _Result(Protocol):
    exit_status: int
    stdout: str
    stderr: str


class _Client(Protocol):
    def run(self, argv: list[str], *, check: bool = ..., timeout: float = ..., **kwargs): ...


# --- small helpers ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _first_line(text: str, limit: int = 300) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def _quote(text: str, limit: int = 120) -> str:
    text = text.strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(text)


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise FactsError(f"{what} is not a whole number: {_quote(value)}") from None


# --- system -----------------------------------------------------------------------------------

_OS_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_os_release(text: str) -> dict:
    """/etc/os-release -> {"id", "version_id", "pretty_name"} (id lower-case, as written)."""
    fields: dict[str, str] = {}
    for line in _text(text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _OS_LINE.match(line)
        if not match:
            continue
        key, raw = match.groups()
        try:
            parts = shlex.split(raw) if raw else [""]
        except ValueError:
            parts = [raw.strip("\"'")]
        fields[key] = " ".join(parts)
    if not {"ID", "NAME", "PRETTY_NAME"} & fields.keys():
        raise FactsError(
            "This does not look like /etc/os-release (no ID, NAME or PRETTY_NAME): "
            f"{_quote(_first_line(text) or '(nothing)')}"
        )
    return {
        "id": fields.get("ID", "linux"),
        "version_id": fields.get("VERSION_ID"),
        "pretty_name": fields.get("PRETTY_NAME") or fields.get("NAME") or "Linux",
    }


def parse_meminfo(text: str) -> dict:
    """/proc/meminfo -> {"total_bytes", "available_bytes"}.

    Kernels older than 3.14 have no MemAvailable; MemFree + Buffers + Cached stands in.
    """
    values: dict[str, int] = {}
    for line in _text(text).splitlines():
        match = re.match(r"^([\w()]+):\s+(\d+)(?:\s+kB)?\s*$", line.strip())
        if match:
            values[match.group(1)] = int(match.group(2)) * 1024
    if "MemTotal" not in values:
        raise FactsError(
            f"This does not look like /proc/meminfo (no MemTotal): {_quote(_first_line(text))}"
        )
    available = values.get("MemAvailable")
    if available is None:
        available = sum(values.get(key, 0) for key in ("MemFree", "Buffers", "Cached"))
    return {"total_bytes": values["MemTotal"], "available_bytes": available}


def parse_cpu(nproc_text: str, lscpu_or_cpuinfo_text: str | None = None) -> dict:
    """`nproc`, plus `lscpu` or /proc/cpuinfo for the model -> {"cores", "model"}.

    "cores" is what nproc counts (processing units this process may use). The model is None
    where neither text names one (e.g. /proc/cpuinfo on many ARM machines).
    """
    raw = _text(nproc_text).strip()
    cores = _int(raw, "nproc's output")
    if cores < 1:
        raise FactsError(f"nproc printed {cores}: a machine has at least one processor.")
    model = None
    for line in _text(lscpu_or_cpuinfo_text).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "model name" and value.strip():
            model = value.strip()
            break
    return {"cores": cores, "model": model}


def parse_df_bytes(text: str) -> dict:
    """`df -B1 --output=size,avail <path>` -> {"total_bytes", "free_bytes"}."""
    lines = [line.split() for line in _text(text).splitlines() if line.strip()]
    if lines and len(lines[-1]) == 2 and all(part.isdigit() for part in lines[-1]):
        total, free = lines[-1]
        return {"total_bytes": int(total), "free_bytes": int(free)}
    raise FactsError(
        "df did not print a size and a free space in bytes: "
        f"{_quote(_first_line(text) or '(nothing)')}"
    )


# --- NVIDIA -----------------------------------------------------------------------------------

# The fields gather_facts asks nvidia-smi for, in this order.
NVIDIA_QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "memory.used",
    "memory.free",
    "driver_version",
    "compute_cap",
)
# nvidia-smi field -> (key in a GPU dict, kind of value).
_GPU_FIELDS = {
    "index": ("index", "int"),
    "name": ("name", "str"),
    "gpu_name": ("name", "str"),
    "uuid": ("uuid", "str"),
    "gpu_uuid": ("uuid", "str"),
    "memory.total": ("memory_total_mib", "mib"),
    "memory.used": ("memory_used_mib", "mib"),
    "memory.free": ("memory_free_mib", "mib"),
    "driver_version": ("driver_version", "str"),
    "compute_cap": ("compute_cap", "str"),
}
_GPU_KEYS = (
    "index",
    "name",
    "uuid",
    "memory_total_mib",
    "memory_used_mib",
    "memory_free_mib",
    "driver_version",
    "compute_cap",
)


def _field_name(header_cell: str) -> str:
    """The field named by a header cell: "memory.total [MiB]" -> "memory.total"."""
    return re.sub(r"\s*\[[^\]]*\]\s*$", "", header_cell.strip()).strip()


def _gpu_value(raw: str, kind: str, field: str, line_no: int):
    value = raw.strip()
    # "[N/A]", "N/A", "[Not Supported]", "[Insufficient Permissions]": nothing to report.
    if not value or value.startswith("[") or value.upper() == "N/A":
        return None
    if kind == "str":
        return value
    if kind == "mib":
        value = re.sub(r"\s*MiB$", "", value)
    try:
        return int(value)
    except ValueError:
        raise FactsError(
            f"nvidia-smi CSV line {line_no}: {field} should be a number, got {_quote(raw)}"
        ) from None


def parse_nvidia_smi_csv(text: str, fields: tuple[str, ...] | list[str] | None = None) -> list:
    """`nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]` -> a list of GPU dicts.

    With a header line the columns are named by it (units such as "[MiB]" are allowed);
    without one, `fields` names them (default: NVIDIA_QUERY_FIELDS). Each GPU dict has every
    key of a GPU ("index", "name", "uuid", "memory_total_mib", "memory_used_mib",
    "memory_free_mib", "driver_version", "compute_cap"); a field that was not asked for, or
    that nvidia-smi reports as "[N/A]", is None. Other fields are ignored.
    """
    rows = [
        (number, row)
        for number, row in enumerate(
            csv.reader(_text(text).splitlines(), skipinitialspace=True), start=1
        )
        if row and any(cell.strip() for cell in row)
    ]
    if not rows:
        return []
    first = [_field_name(cell) for cell in rows[0][1]]
    if any(name in _GPU_FIELDS for name in first):
        columns, body = first, rows[1:]
    else:
        columns, body = list(fields or NVIDIA_QUERY_FIELDS), rows
    if "index" not in columns and "name" not in columns and "uuid" not in columns:
        raise FactsError(
            "nvidia-smi CSV has neither an index, a name nor a UUID column: "
            f"{_quote(', '.join(columns))}"
        )
    gpus = []
    for line_no, row in body:
        if len(row) != len(columns):
            raise FactsError(
                f"nvidia-smi CSV line {line_no} has {len(row)} fields where {len(columns)} "
                f"were expected: {_quote(', '.join(row))}"
            )
        gpu: dict[str, Any] = dict.fromkeys(_GPU_KEYS)
        for column, raw in zip(columns, row, strict=True):
            if column in _GPU_FIELDS:
                key, kind = _GPU_FIELDS[column]
                gpu[key] = _gpu_value(raw, kind, column, line_no)
        gpus.append(gpu)
    return gpus


_TABLE_DRIVER = re.compile(r"Driver Version:\s*([0-9][\w.\-]*)")
_TABLE_CUDA = re.compile(r"CUDA Version:\s*([0-9][\w.]*|N/A)")


def parse_nvidia_smi_table(text: str) -> dict:
    """Plain `nvidia-smi` -> {"driver_version", "cuda_version"} from the table's header.

    "cuda_version" is the highest CUDA version the driver supports, None where not shown.
    """
    text = _text(text)
    driver = _TABLE_DRIVER.search(text)
    if not driver:
        raise FactsError(
            "nvidia-smi did not print its table with a driver version: "
            f"{_quote(_first_line(text) or '(nothing)')}"
        )
    cuda = _TABLE_CUDA.search(text)
    cuda_version = cuda.group(1) if cuda and cuda.group(1) != "N/A" else None
    return {"driver_version": driver.group(1), "cuda_version": cuda_version}


_LIST_LINE = re.compile(r"^GPU\s+(\d+):\s*(.*?)\s*(?:\(UUID:\s*([^)]+)\))?\s*$")


def parse_nvidia_smi_list(text: str) -> list:
    """`nvidia-smi -L` -> [{"index", "name", "uuid"}, ...] (MIG lines are skipped)."""
    gpus = []
    for line in _text(text).splitlines():
        match = _LIST_LINE.match(line.strip())
        if match:
            index, name, uuid = match.groups()
            gpus.append({"index": int(index), "name": name, "uuid": uuid})
    return gpus


def _not_found(exit_status: int, output: str) -> bool:
    """Whether the shell (or sudo, or coreutils' timeout) could not find the command."""
    return exit_status == 127 or bool(
        re.search(
            r"command not found|: not found$|failed to run command.*No such file",
            output,
            re.MULTILINE,
        )
    )


def _timed_out(exit_status: int, output: str) -> bool:
    return exit_status == 124 or "did not finish within" in output


def explain_nvidia_smi_failure(exit_status: int, output: str) -> str:
    """A failed nvidia-smi (its exit status and what it printed) in plain words."""
    output = _text(output)
    if _timed_out(exit_status, output):
        return (
            "nvidia-smi did not finish in time: the GPU or its driver may be hung (a reboot "
            "usually helps)."
        )
    if "libnvidia-ml.so" in output:
        return (
            "The NVIDIA driver is missing or broken: nvidia-smi is installed but cannot load "
            "the driver's library (libnvidia-ml.so). Install or reinstall the NVIDIA driver."
        )
    if "couldn't communicate with the NVIDIA driver" in output:
        return (
            "The NVIDIA driver is not loaded: nvidia-smi cannot talk to it. The kernel module "
            "is missing or not loaded; after installing a driver the server usually needs a "
            "reboot."
        )
    if "version mismatch" in output.lower():
        return (
            "The loaded NVIDIA kernel module and the installed driver library have different "
            "versions, usually after a driver upgrade: reboot the server."
        )
    if "No devices were found" in output:
        return "nvidia-smi runs but finds no NVIDIA GPU."
    if "GPU access blocked by the operating system" in output:
        return (
            "The operating system blocks access to the GPU: the NVIDIA device files "
            "(/dev/nvidia*) cannot be used."
        )
    if "Insufficient Permissions" in output or "Permission denied" in output:
        return "This user may not use the GPU (permission denied on the NVIDIA device files)."
    if _not_found(exit_status, output):
        return (
            "nvidia-smi is not installed (command not found): there is no NVIDIA driver on "
            "this server, or it has no NVIDIA GPU."
        )
    if "is not a valid field to query" in output:
        return (
            "This nvidia-smi does not know a field that was asked for (the driver may be "
            f"old): {_first_line(output)}"
        )
    line = _first_line(output)
    if line:
        return f"nvidia-smi failed (exit status {exit_status}): {line}"
    return f"nvidia-smi failed with exit status {exit_status} and printed nothing."


# --- Docker, compose, NVIDIA container toolkit ------------------------------------------------


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


# --- gathering --------------------------------------------------------------------------------

PROBE_TIMEOUT = 30
GPU_CHECK_TIMEOUT = 600


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


def compose_command(facts: dict) -> list[str]:
    """The argv prefix that runs compose on the server the facts describe."""
    compose = facts.get("compose") or {}
    if compose.get("variant") == "plugin":
        return ["docker", "compose"]
    if compose.get("variant") in ("v1", "standalone"):
        return ["docker-compose"]
    raise FactsError(compose.get("error") or "Docker Compose was not found on this server.")


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
