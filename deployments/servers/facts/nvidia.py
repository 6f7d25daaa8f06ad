"""Parsers for nvidia-smi (its CSV query, its table, `-L`) and its failures in plain words."""

from __future__ import annotations

import csv
import re
from typing import Any

from .output import FactsError, _first_line, _not_found, _quote, _text, _timed_out

# A GPU's identity and memory: the columns of a CSV without a header, unless named otherwise.
NVIDIA_GPU_FIELDS = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "memory.used",
    "memory.free",
    "driver_version",
    "compute_cap",
)
# The fields gather_facts asks nvidia-smi for, in this order: those and the utilisation.
NVIDIA_QUERY_FIELDS = (*NVIDIA_GPU_FIELDS, "utilization.gpu")
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
    "utilization.gpu": ("utilization_percent", "percent"),
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
    "utilization_percent",
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
    if kind == "percent":
        value = re.sub(r"\s*%$", "", value)
    try:
        return int(value)
    except ValueError:
        raise FactsError(
            f"nvidia-smi CSV line {line_no}: {field} should be a number, got {_quote(raw)}"
        ) from None


def parse_nvidia_smi_csv(text: str, fields: tuple[str, ...] | list[str] | None = None) -> list:
    """`nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]` -> a list of GPU dicts.

    With a header line the columns are named by it (units such as "[MiB]" are allowed);
    without one, `fields` names them (default: NVIDIA_GPU_FIELDS). Each GPU dict has every
    key of a GPU ("index", "name", "uuid", "memory_total_mib", "memory_used_mib",
    "memory_free_mib", "driver_version", "compute_cap", "utilization_percent"); a field that
    was not asked for, or that nvidia-smi reports as "[N/A]", is None. Other fields are
    ignored.
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
        columns, body = list(fields or NVIDIA_GPU_FIELDS), rows
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
