"""What every FastGPT V488 route shares: the response envelope and its named errors, ids and
dates as Mongo writes them, the user JWT, and the permission object the API returns."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import random
import re
import string
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from testkit.standins.server import Response, json_response

SYSTEM_VERSION = "4.8.8"
# packages/service/common/system/log.ts: its levels, and their labels (no colours: no TTY).
LOG_LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3}
LOG_LABELS = {0: "[Debug]", 1: "[Info]", 2: "[Warn]", 3: "[Error]"}
OWNER_PERMISSION = 0xFFFFFFFF
TOKEN_COOKIE = "fastgpt_token"
JWT_SECONDS = 60 * 60 * 24 * 7


def _numbered(start: int, entries: list[tuple[str, str]]) -> dict[str, tuple[int, str]]:
    table: dict[str, tuple[int, str]] = {}
    for index, (key, message) in enumerate(entries):
        table[key] = (start + index, message)
    return table


def _dataset_errors() -> list[tuple[str, str]]:
    keys = [
        "unExistDataset",
        "unAuthDataset",
        "unAuthDatasetCollection",
        "unAuthDatasetData",
        "unAuthDatasetFile",
        "unCreateCollection",
        "unLinkCollection",
        "invalidVectorModelOrQAModel",
    ]
    return [(key, f"core.dataset.error.{key}") for key in keys]


# ERROR_RESPONSE of packages/global/common/error/errorCode.ts: later tables override earlier
# ones, in the order they are spread there.
NAMED_ERRORS: dict[str, tuple[int, str]] = {
    "unAuthorization": (403, "凭证错误"),
    "insufficientQuota": (510, "账号余额不足"),
    "unAuthModel": (511, "无权操作该模型"),
    "unAuthFile": (513, "无权阅读该文件"),
    "unAuthApiKey": (514, "Api Key 不合法"),
    **_numbered(502000, [("appUnExist", "应用不存在"), ("unAuthApp", "无权操作该应用")]),
    **_numbered(504000, [("unAuthChat", "无权操作该对话记录")]),
    **_numbered(501000, _dataset_errors()),
    **_numbered(
        506000,
        [
            ("openapiUnExist", "Api Key 不存在"),
            ("openapiUnAuth", "无权操作该 Api Key"),
            ("openapiExceedLimit", "最多 10 组 API 密钥"),
        ],
    ),
    "outlinkUnExist": (505000, "分享链接不存在"),
    "unAuthLink": (505001, "分享链接无效"),
    "linkUnInvalid": (501, "分享链接无效"),
    **_numbered(
        500000,
        [
            ("teamOverSize", "error.team.overSize"),
            ("unAuthTeam", "无权操作该团队"),
            ("aiPointsNotEnough", ""),
            ("datasetSizeNotEnough", "知识库容量不足，请先扩容~"),
            ("datasetAmountNotEnough", "知识库数量已达上限~"),
            ("appAmountNotEnough", "应用数量已达上限~"),
            ("pluginAmountNotEnough", "插件数量已达上限~"),
            ("websiteSyncNotEnough", "无权使用Web站点同步~"),
            ("reRankNotEnough", "无权使用检索重排~"),
        ],
    ),
    "unAuthUser": (503000, "找不到该用户"),
    "binVisitor": (503002, "您当前身份为游客，无权操作"),
    "balanceNotEnough": (503003, "账号余额不足~"),
    **_numbered(508000, [("pluginUnExist", "插件不存在"), ("pluginUnAuth", "无权操作该插件")]),
    **_numbered(
        507000,
        [
            ("fileNotFound", "error.fileNotFound"),
            ("unAuthFile", "error.unAuthFile"),
            ("missingParams", "error.missingParams"),
            ("inheritPermissionError", "error.inheritPermissionError"),
        ],
    ),
    "communityVersionNumLimit": (509000, "超出开源版数量限制，请升级商业版: https://fastgpt.in"),
}


class Reject(Exception):
    """A rejected promise in a handler: a named error key, or any other message."""


def json_res(data: Any = None, code: int = 200, message: str = "") -> Response:
    body = {"code": code, "statusText": "", "message": message, "data": data}
    return json_response(body, code)


def error_res(error: Exception | str) -> Response:
    """jsonRes with an error: named errors keep HTTP 200 (the V488 quirk), others are 500."""
    key = error if isinstance(error, str) else str(error)
    if key in NAMED_ERRORS:
        code, message = NAMED_ERRORS[key]
        body = {"code": code, "statusText": key, "message": message, "data": None}
        headers = []
        if key == "unAuthorization":
            headers.append(("Set-Cookie", f"{TOKEN_COOKIE}=; Path=/; Max-Age=0"))
        return json_response(body, 200, headers)
    return json_res(None, 500, key or "请求错误")


_counter = int.from_bytes(os.urandom(3), "big")
_counter_lock = threading.Lock()
_process_bytes = os.urandom(5)


def object_id() -> str:
    """A Mongo ObjectId: seconds, 5 random bytes per process, a counter."""
    global _counter
    with _counter_lock:
        _counter = (_counter + 1) % 0xFFFFFF
        count = _counter
    return (int(time.time()).to_bytes(4, "big") + _process_bytes + count.to_bytes(3, "big")).hex()


def is_object_id(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{24}", value) is not None


def cast_error(value: Any, model: str, path: str = "_id") -> Reject:
    shown = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    kind = type(value).__name__ if not isinstance(value, str) else "string"
    return Reject(
        f"Cast to ObjectId failed for value {shown} (type {kind}) at path "
        f'"{path}" for model "{model}"'
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def newest_first(doc: dict[str, Any]) -> tuple[str, str]:
    """Sort key for `.sort({updateTime: -1})` with reverse=True: ties go newest id first."""
    return doc["updateTime"], doc["_id"]


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def permission(value: int = OWNER_PERMISSION, is_owner: bool = True) -> dict[str, Any]:
    """A Permission instance as JSON (the owner of everything, in this single-user stand-in)."""
    if is_owner:
        value = OWNER_PERMISSION

    def has(wanted: int) -> bool:
        return (value & wanted) == wanted

    manage = has(0b111)
    return {
        "value": value,
        "isOwner": is_owner,
        "hasManagePer": manage,
        "hasWritePer": manage or has(0b110),
        "hasReadPer": manage or has(0b100),
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def create_jwt(key: str | None, claims: dict[str, Any]) -> str:
    """jsonwebtoken's sign with HS256; it refuses an empty secret."""
    if not key:
        raise Reject("secretOrPrivateKey must have a value")
    now = int(time.time())
    payload = {**claims, "exp": now + JWT_SECONDS, "iat": now}
    head = _b64(b'{"alg":"HS256","typ":"JWT"}')
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def verify_jwt(key: str | None, token: str) -> dict[str, Any] | None:
    try:
        head, body, signature = token.split(".")
        if not key or json.loads(_unb64(head)).get("alg") != "HS256":
            return None
        expected = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_unb64(signature), expected):
            return None
        payload = json.loads(_unb64(body))
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("exp", 0) <= time.time():
        return None
    return payload


def get_nanoid(size: int = 12) -> str:
    """getNanoid: a lowercase letter, then letters and digits."""
    alphabet = string.ascii_letters + string.digits
    rest = "".join(random.choice(alphabet) for _ in range(size - 1))  # noqa: S311 - an id
    return random.choice(string.ascii_lowercase) + rest  # noqa: S311


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value: empty arrays and objects are true."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    return True


def dump_js(value: Any) -> str:
    """JSON.stringify."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def js_inspect(value: Any) -> str:
    """Roughly what console.log prints for a JSON value: strings in single quotes."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if value is None:
        return "undefined"
    if isinstance(value, dict):
        inner = ", ".join(f"{key}: {js_inspect(item)}" for key, item in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list):
        return "[ " + ", ".join(js_inspect(item) for item in value) + " ]" if value else "[]"
    return dump_js(value)


class AddLog:
    """addLog: `[Level] YYYY-MM-DD HH:mm:ss msg obj` on stdout, below LOG_LEVEL left out; an
    error line carries no object, which console.error then prints on stderr."""

    def __init__(self, log_level: str | None) -> None:
        self.threshold = LOG_LEVELS.get((log_level or "info").lower(), LOG_LEVELS["info"])

    def info(self, message: str, obj: dict[str, Any] | None = None) -> None:
        self._log(LOG_LEVELS["info"], message, obj or {})

    def warn(self, message: str, obj: dict[str, Any] | None = None) -> None:
        self._log(LOG_LEVELS["warn"], message, obj or {})

    def error(self, message: str, error: dict[str, Any] | None = None) -> None:
        if self._log(LOG_LEVELS["error"], message, {}):
            print(js_inspect(error or {}), file=sys.stderr, flush=True)

    def _log(self, level: int, message: str, obj: dict[str, Any]) -> bool:
        if level < self.threshold:
            return False
        now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        shown = dump_js(obj) if level != LOG_LEVELS["error"] and obj else ""
        print(f"{LOG_LABELS[level]} {now} {message} {shown}", flush=True)
        return True
