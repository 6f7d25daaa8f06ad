"""Parsers for the system: /etc/os-release, /proc/meminfo, nproc and lscpu, df."""

from __future__ import annotations

import re
import shlex

from .output import FactsError, _first_line, _int, _quote, _text

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
