"""What Go and its libraries do with input, where One API lets it show: gin's JSON binding,
strconv.Atoi, the MySQL driver's DSN parser, SQL LIKE, net/http's dial errors."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit


class BindError(Exception):
    pass


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def syntax_error(text: str, error: json.JSONDecodeError) -> str:
    """encoding/json's words for a syntax error, near enough."""
    if error.pos >= len(text.rstrip()):
        return "unexpected EOF"
    return f"invalid character {text[error.pos]!r} looking for beginning of value"


def _convert(value: Any, go_type: str) -> tuple[bool, str]:
    kind = _json_kind(value)
    if go_type in ("int", "int64", "uint"):
        if kind != "number":
            return False, kind
        if isinstance(value, float) or (go_type == "uint" and value < 0):
            return False, f"number {value}"
        return True, ""
    wanted = {"float64": "number", "string": "string", "bool": "bool"}[go_type]
    return (True, "") if kind == wanted else (False, kind)


def bind(body: bytes, struct: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """Fill a struct the way gin's ShouldBindJSON does.

    `fields` maps JSON names to Go types ("int", "int64", "uint", "float64", "string", "bool",
    or one of those behind "*" for a pointer). Unknown keys are dropped, keys match without regard
    to case, null leaves the zero value (None for a pointer), and a wrong type is an error.
    """
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        raise BindError("EOF")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BindError(syntax_error(text, error)) from None
    if not isinstance(value, dict):
        raise BindError(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type model.{struct}"
        )
    result: dict[str, Any] = {}
    for name, go_type in fields.items():
        zero: Any = {"string": "", "bool": False}.get(go_type, 0)
        result[name] = None if go_type.startswith("*") else zero
    by_lower = {name.lower(): name for name in fields}
    first_error = ""
    for key, item in value.items():
        name = key if key in fields else by_lower.get(key.lower())
        if name is None or item is None:
            continue
        go_type = fields[name].lstrip("*")
        ok, described = _convert(item, go_type)
        if ok:
            result[name] = item
        elif not first_error:
            first_error = (
                f"json: cannot unmarshal {described} into Go struct field "
                f"{struct}.{name} of type {go_type}"
            )
    if first_error:
        raise BindError(first_error)
    return result


def atoi(text: str) -> int:
    """strconv.Atoi, with its error text."""
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')


def check_mysql_dsn(dsn: str) -> None:
    """The checks of go-sql-driver/mysql's ParseDSN and normalize() that reject a malformed DSN:
    `[user[:password]@][net[(addr)]]/dbname[?param=value&...]`."""
    slash = dsn.rfind("/")
    if slash < 0:
        raise ValueError("invalid DSN: missing the slash separating the database name")
    head = dsn[:slash]
    protocol = head[head.rfind("@") + 1 :]
    net, address = protocol, ""
    brace = protocol.find("(")
    if brace >= 0:
        if not protocol.endswith(")"):
            if ")" in protocol[brace + 1 :]:
                raise ValueError("invalid DSN: did you forget to escape a param value?")
            raise ValueError("invalid DSN: network address not terminated (missing closing brace)")
        net, address = protocol[:brace], protocol[brace + 1 : -1]
    tail = dsn[slash + 1 :]
    if "?" in tail:
        for param in tail.split("?", 1)[1].split("&"):
            value = param.split("=", 1)[1] if "=" in param else ""
            if re.search(r"%(?![0-9A-Fa-f]{2})", value):
                raise ValueError(f'invalid URL escape "{value[value.index("%") :][:3]}"')
    if not address and net not in ("", "tcp", "unix"):
        raise ValueError(f"default addr for network '{net}' unknown")


def like_prefix(value: str, keyword: str) -> bool:
    """`value LIKE 'keyword%'` as MySQL and SQLite compare ASCII: case-insensitive, % and _."""
    pattern = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in keyword)
    return re.match(pattern + ".*", value, re.IGNORECASE | re.DOTALL) is not None


def dial_error(method: str, url: str, error: OSError) -> str:
    """How Go's http client reports an upstream it could not reach."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if isinstance(error, ConnectionRefusedError):
        reason = f"dial tcp {host}:{port}: connect: connection refused"
    elif isinstance(error, socket.gaierror):
        reason = f"dial tcp: lookup {host}: no such host"
    elif isinstance(error, TimeoutError):
        reason = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    else:
        reason = str(error)
    return f'{method.capitalize()} "{url}": {reason}'
