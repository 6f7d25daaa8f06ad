"""The relay (/v1/*) and the channel test: real HTTP to the channel's base_url with urllib.

Only OpenAI-protocol channels are modelled (type 1 OpenAI, 8 Custom and the other types that
use the OpenAI adaptor): the URL is base_url + the request path, the key goes upstream as
`Authorization: Bearer <channel key>`, and without a model mapping the body is sent unchanged.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from testkit.standins.oneapi import golang
from testkit.standins.oneapi.model import (
    CHANNEL_ENABLED,
    ROLE_ADMIN,
    TOKEN_ENABLED,
    TOKEN_EXHAUSTED,
    TOKEN_EXPIRED,
    USER_ENABLED,
)
from testkit.standins.server import Request, Response, dump_json, json_response

if TYPE_CHECKING:
    from testkit.standins.oneapi.app import OneAPI

GO_USER_AGENT = "Go-http-client/1.1"
# Types with adaptors of their own upstream (Azure, Anthropic, Baidu, Gemini, Ollama...).
NON_OPENAI_TYPES = {3, 11, 14, 15, 16, 17, 18, 21, 23, 24, 27, 30, 33, 34, 35, 37, 38, 40}
DEFAULT_BASE_URLS = {1: "https://api.openai.com"}
# The OpenAI adaptor's first built-in model: what the channel test tries first.
OPENAI_FIRST_MODEL = "gpt-3.5-turbo"
RELAYED = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
NOT_IMPLEMENTED = (
    "/v1/edits",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/audio/speech",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
)
# relay/model.GeneralOpenAIRequest: what survives re-encoding when a model mapping applies.
OPENAI_REQUEST_FIELDS = frozenset(
    [
        "messages",
        "model",
        "frequency_penalty",
        "max_tokens",
        "n",
        "presence_penalty",
        "response_format",
        "seed",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "function_call",
        "functions",
        "user",
        "prompt",
        "input",
        "encoding_format",
        "dimensions",
        "instruction",
        "size",
    ]
)


def with_request_id(message: str, request_id: str) -> str:
    return f"{message} (request id: {request_id})"


def abort_with_message(status: int, message: str, request_id: str) -> Response:
    """middleware.abortWithMessage: the token and channel checks in front of the relay."""
    error = {"message": with_request_id(message, request_id), "type": "one_api_error"}
    return json_response({"error": error}, status)


def wrapped_error(status: int, message: str, request_id: str, code: str) -> Response:
    """openai.ErrorWrapper, as the relay controller finally writes it."""
    error = {
        "message": with_request_id(message, request_id),
        "type": "one_api_error",
        "param": "",
        "code": code,
    }
    return json_response({"error": error}, status)


def not_found(request: Request) -> Response:
    error = {
        "message": f"Invalid URL ({request.method} {request.path})",
        "type": "invalid_request_error",
        "param": "",
        "code": "",
    }
    return json_response({"error": error}, 404)


def model_mapping(channel: Mapping[str, Any]) -> dict[str, str]:
    raw = channel.get("model_mapping") or ""
    if raw in ("", "{}"):
        return {}
    try:
        mapping = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(mapping, dict):
        return {}
    return {k: v for k, v in mapping.items() if isinstance(v, str)}


def base_url(channel: Mapping[str, Any]) -> str:
    return channel.get("base_url") or DEFAULT_BASE_URLS.get(channel["type"], "")


def _error_struct(error: Mapping[str, Any]) -> dict[str, Any]:
    param = error.get("param")
    return {
        "message": str(error.get("message") or ""),
        "type": str(error.get("type") or ""),
        "param": param if isinstance(param, str) else "",
        "code": error.get("code"),
    }


def upstream_error(status: int, raw: bytes) -> dict[str, Any]:
    """relay/controller.RelayErrorHandler: the upstream's own error where it has one."""
    result = {
        "message": "",
        "type": "upstream_error",
        "param": str(status),
        "code": "bad_response_status_code",
    }
    try:
        body = json.loads(raw)
    except ValueError:
        return result
    if not isinstance(body, dict):
        return result
    error = body.get("error")
    if error is not None and not isinstance(error, dict):
        return result  # Go cannot decode it into its struct and gives up.
    if isinstance(error, dict) and error.get("message"):
        return _error_struct(error)
    header = body.get("header") if isinstance(body.get("header"), dict) else {}
    response = body.get("response") if isinstance(body.get("response"), dict) else {}
    nested = response.get("error") if isinstance(response.get("error"), dict) else {}
    candidates = ("message", "msg", "err", "error_msg")
    for candidate in [
        *(body.get(k) for k in candidates),
        header.get("message"),
        nested.get("message"),
    ]:
        if isinstance(candidate, str) and candidate:
            result["message"] = candidate
            break
    else:
        result["message"] = f"bad response status code {status}"
    return result


def error_in_body(parsed: Any) -> dict[str, Any] | None:
    """A 200 answer whose `error.type` is set is an error all the same (openai.Handler)."""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and error.get("type"):
        return _error_struct(error)
    return None


def _stream(upstream: Any, path: str) -> Response:
    """openai.StreamHandler: pass on `data:` lines, drop chat chunks without choices."""

    def lines() -> Iterator[bytes]:
        with upstream:
            for raw in upstream:
                line = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
                if len(line) < 6 or line[:6] not in ("data: ", "[DONE]"):
                    continue
                if line[6:].startswith("[DONE]"):
                    yield (line[:12] + "\n\n").encode()
                    continue
                if path == "/v1/chat/completions":
                    try:
                        chunk = json.loads(line[6:])
                    except ValueError:
                        chunk = None
                    if isinstance(chunk, dict) and not chunk.get("choices"):
                        continue
                yield (line + "\n\n").encode()

    headers = [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
    ]
    return Response(200, b"", headers, chunks=lines())


class Relay:
    def __init__(self, app: OneAPI) -> None:
        self.app = app
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def route(self, request: Request, request_id: str) -> Response:
        path, method = request.path, request.method
        if method == "GET" and path == "/v1/models":
            return self._with_token(request, request_id, self._list_models)
        if method == "GET" and path.startswith("/v1/models/") and path.count("/") == 3:
            return self._with_token(request, request_id, self._get_model)
        engine = path.startswith("/v1/engines/") and path.endswith("/embeddings")
        if method == "POST" and (path in RELAYED or (engine and path.count("/") == 4)):
            return self._with_token(request, request_id, self._relay)
        if method == "POST" and path in NOT_IMPLEMENTED:
            error = {
                "message": "API not implemented",
                "type": "one_api_error",
                "param": "",
                "code": "api_not_implemented",
            }
            return json_response({"error": error}, 501)
        return not_found(request)

    # middleware.TokenAuth ----------------------------------------------------------------------

    def _with_token(
        self, request: Request, request_id: str, handler: Callable[..., Response]
    ) -> Response:
        def refuse(status: int, message: str) -> Response:
            return abort_with_message(status, message, request_id)

        key = request.header("Authorization").removeprefix("Bearer ").removeprefix("sk-")
        key, *forced = key.split("-")
        app = self.app
        with app.lock:
            if not key:
                return refuse(401, "未提供令牌")
            token = next((t for t in app.tokens.values() if t["key"] == key), None)
            if token is None:
                return refuse(401, "无效的令牌")
            if token["status"] == TOKEN_EXHAUSTED:
                return refuse(401, f"令牌 {token['name']}（#{token['id']}）额度已用尽")
            if token["status"] == TOKEN_EXPIRED:
                return refuse(401, "该令牌已过期")
            if token["status"] != TOKEN_ENABLED:
                return refuse(401, "该令牌状态不可用")
            if token["expired_time"] != -1 and token["expired_time"] < time.time():
                token["status"] = TOKEN_EXPIRED
                return refuse(401, "该令牌已过期")
            if not token["unlimited_quota"] and token["remain_quota"] <= 0:
                token["status"] = TOKEN_EXHAUSTED
                return refuse(401, "该令牌额度已用尽")
            if token["subnet"] and not _ip_in_subnets(request.client_ip, token["subnet"]):
                message = (
                    f"该令牌只能在指定网段使用：{token['subnet']}，当前 ip：{request.client_ip}"
                )
                return refuse(403, message)
            user = app.users.get(token["user_id"])
            if user is None or user["status"] != USER_ENABLED:
                return refuse(403, "用户已被封禁")
            token, user = dict(token), dict(user)
        model = ""
        if request.header("Content-Type").startswith("application/json"):
            text = request.body.decode("utf-8", errors="replace")
            try:
                body = json.loads(text)
            except json.JSONDecodeError as error:
                body = None
                if request.path in ("/v1/chat/completions", "/v1/completions"):
                    reason = (
                        golang.syntax_error(text, error)
                        if text.strip()
                        else ("unexpected end of JSON input")
                    )
                    return refuse(400, f"common.UnmarshalBodyReusable failed: {reason}")
            if isinstance(body, dict) and isinstance(body.get("model"), str):
                model = body["model"]
        if not model and request.path.startswith("/v1/engines/"):
            model = unquote(request.path.split("/")[3])
        if token["models"] and model and model not in token["models"].split(","):
            return refuse(403, f"该令牌无权使用模型：{model}")
        if forced and user["role"] < ROLE_ADMIN:
            return refuse(403, "普通用户不支持指定渠道")
        return handler(request, request_id, token, user, model, forced[0] if forced else None)

    # /v1/models --------------------------------------------------------------------------------

    def _list_models(
        self, request: Request, request_id: str, token, user, model, forced
    ) -> Response:
        if token["models"]:
            available = token["models"].split(",")
        else:
            with self.app.lock:
                available = sorted(
                    {
                        name
                        for c in self.app.channels.values()
                        if c["status"] == CHANNEL_ENABLED and user["group"] in c["group"].split(",")
                        for name in c["models"].split(",")
                    }
                )
        data = [
            {
                "id": name,
                "object": "model",
                "created": 1626777600,
                "owned_by": "custom",
                "permission": None,
                "root": name,
                "parent": None,
            }
            for name in dict.fromkeys(available)
        ]
        return json_response({"object": "list", "data": data})

    def _get_model(self, request: Request, request_id: str, token, user, model, forced) -> Response:
        name = unquote(request.path.rsplit("/", 1)[1])
        error = {
            "message": f"The model '{name}' does not exist",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
        return json_response({"error": error})

    # middleware.Distribute, then relay/controller.RelayTextHelper --------------------------------

    def _choose_channel(
        self, user: Mapping[str, Any], model: str, forced: str | None, request_id: str
    ) -> dict[str, Any] | Response:
        app = self.app
        with app.lock:
            if forced is None:
                channel = app.pick_channel(user["group"], model)
                if channel is None:
                    message = f"当前分组 {user['group']} 下对于模型 {model} 无可用渠道"
                    return abort_with_message(503, message, request_id)
                return channel
            try:
                channel = copy.deepcopy(app.channels[golang.atoi(forced)])
            except (ValueError, KeyError):
                return abort_with_message(400, "无效的渠道 Id", request_id)
            if channel["status"] != CHANNEL_ENABLED:
                return abort_with_message(403, "该渠道已被禁用", request_id)
            return channel

    def _relay(self, request: Request, request_id: str, token, user, model, forced) -> Response:
        channel = self._choose_channel(user, model, forced, request_id)
        if isinstance(channel, Response):
            return channel
        if channel["type"] in NON_OPENAI_TYPES:
            message = f"channel type {channel['type']} is not modelled by the One API stand-in"
            return wrapped_error(400, message, request_id, "invalid_api_type")
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError) as error:
            return wrapped_error(400, str(error), request_id, "invalid_text_request")
        if not isinstance(body, dict):
            body = {}
        problem = _validate_text_request(request.path, body, model)
        if problem:
            return wrapped_error(400, problem, request_id, "invalid_text_request")
        payload = request.body
        mapping = model_mapping(channel)
        if mapping.get(model):
            # Re-encoded from one-api's struct: unknown fields and empty values go.
            body = {k: v for k, v in body.items() if k in OPENAI_REQUEST_FIELDS and v}
            body["model"] = mapping[model]
            payload = dump_json(body)
        stream = bool(body.get("stream"))
        url = base_url(channel) + request.target
        headers = {
            "Content-Type": request.header("Content-Type"),
            "Accept": request.header("Accept") or ("text/event-stream" if stream else ""),
        }
        try:
            status, response_headers, upstream = self.send(channel, url, payload, headers)
        except OSError as error:
            message = f"do request failed: {golang.dial_error('POST', url, error)}"
            return wrapped_error(500, message, request_id, "do_request_failed")
        content_type = response_headers.get("Content-Type", "")
        if status != 200 or (stream and content_type.startswith("application/json")):
            with upstream:
                error = upstream_error(status, upstream.read())
            if status == 429:
                error["message"] = "当前分组上游负载已饱和，请稍后再试"
            error["message"] = with_request_id(error["message"], request_id)
            return json_response({"error": error}, status)
        if stream:
            return _stream(upstream, request.path)
        with upstream:
            raw = upstream.read()
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as error:
            message = golang.syntax_error(raw.decode("utf-8", errors="replace"), error)
            return wrapped_error(500, message, request_id, "unmarshal_response_body_failed")
        in_body = error_in_body(parsed)
        if in_body is not None:
            in_body["message"] = with_request_id(in_body["message"], request_id)
            return json_response({"error": in_body}, status)
        hop_by_hop = {"content-length", "transfer-encoding", "connection"}
        copied = [(k, v) for k, v in response_headers.items() if k.lower() not in hop_by_hop]
        return Response(status, raw, copied)

    # The channel test ---------------------------------------------------------------------------

    def test_channel(self, channel: Mapping[str, Any]) -> str:
        """controller.testChannel: a two-token chat completion; '' when it passed."""
        if channel["type"] in NON_OPENAI_TYPES:
            return f"channel type {channel['type']} is not modelled by the One API stand-in"
        model = OPENAI_FIRST_MODEL
        if model not in channel["models"]:
            model = channel["models"].split(",")[0]
            model = model_mapping(channel).get(model) or model
        body = dump_json(
            {"messages": [{"role": "user", "content": "hi"}], "model": model, "max_tokens": 2}
        )
        url = base_url(channel) + "/v1/chat/completions"
        headers = {"Content-Type": "application/json", "Accept": ""}
        try:
            status, _, upstream = self.send(channel, url, body, headers)
        except OSError as error:
            return f"do request failed: {golang.dial_error('POST', url, error)}"
        with upstream:
            raw = upstream.read()
        if status != 200:
            return f"status code {status}: {upstream_error(status, raw)['message']}"
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as error:
            return golang.syntax_error(raw.decode("utf-8", errors="replace"), error)
        in_body = error_in_body(parsed)
        return in_body["message"] if in_body is not None else ""

    def send(
        self, channel: Mapping[str, Any], url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Any, Any]:
        """POST upstream: (status, headers, open response); OSError when it cannot be reached."""
        if not url.startswith(("http://", "https://")):
            raise OSError(f"unsupported protocol scheme {url.split(':', 1)[0]!r}")
        outgoing = urllib.request.Request(url, data=body, method="POST")  # noqa: S310
        for name, value in headers.items():
            outgoing.add_header(name, value)
        outgoing.add_header("Authorization", f"Bearer {channel['key']}")
        outgoing.add_header("User-Agent", GO_USER_AGENT)
        try:
            upstream = self._opener.open(outgoing, timeout=self.app.relay_timeout)
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error
        except urllib.error.URLError as error:
            reason = error.reason
            raise (reason if isinstance(reason, OSError) else OSError(str(reason))) from None
        return upstream.status, upstream.headers, upstream


def _validate_text_request(path: str, body: Mapping[str, Any], model: str) -> str:
    max_tokens = body.get("max_tokens", 0)
    if isinstance(max_tokens, int) and not 0 <= max_tokens <= (2**31 - 1) // 2:
        return "max_tokens is invalid"
    if not model:
        return "model is required"
    if path == "/v1/completions" and not body.get("prompt"):
        return "field prompt is required"
    if path == "/v1/chat/completions" and not body.get("messages"):
        return "field messages is required"
    return ""


def _ip_in_subnets(ip: str, subnets: str) -> bool:
    for subnet in subnets.split(","):
        try:
            if ipaddress.ip_address(ip) in ipaddress.ip_network(subnet.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False
