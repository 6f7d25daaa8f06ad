"""One API v0.6.7 itself: start-up from the environment, users and sessions, channels, tokens.

The relay and the channel test are in relay.py; what Go does with input is in golang.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import ipaddress
import json
import os
import random
import string
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from testkit.standins.oneapi import golang
from testkit.standins.oneapi.model import (
    CHANNEL_AUTO_DISABLED,
    CHANNEL_ENABLED,
    CHANNEL_FIELDS,
    CHANNEL_MANUALLY_DISABLED,
    ROLE_ADMIN,
    ROLE_COMMON,
    ROLE_ROOT,
    TOKEN_ENABLED,
    TOKEN_EXHAUSTED,
    TOKEN_EXPIRED,
    TOKEN_FIELDS,
    USER_DISABLED,
    USER_ENABLED,
    USER_FIELDS,
    USER_LENGTH_RULES,
)
from testkit.standins.oneapi.relay import Relay, not_found
from testkit.standins.server import (
    Fatal,
    Request,
    Response,
    dump_json,
    json_response,
    run_main,
)

VERSION = "v0.6.7"
ITEMS_PER_PAGE = 10
ROOT_QUOTA = 500000000000000
SESSION_MAX_AGE = 86400 * 30
CRITICAL_RATE_LIMIT = (20, 20 * 60)
API_RATE_LIMIT_SECONDS = 3 * 60
REQUEST_ID_HEADER = "X-Oneapi-Request-Id"


def sys_log(message: str) -> None:
    now = datetime.now().strftime("%Y/%m/%d - %H:%M:%S")
    print(f"[SYS] {now} | {message} ", flush=True)


def sys_error(message: str) -> None:
    now = datetime.now().strftime("%Y/%m/%d - %H:%M:%S")
    print(f"[SYS] {now} | {message} ", file=sys.stderr, flush=True)


def fatal_line(message: str) -> str:
    now = datetime.now().strftime("%Y/%m/%d - %H:%M:%S")
    return f"[FATAL] {now} | [{message}] "


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """common/env.Int: unset, empty or unparsable gives the default."""
    try:
        return int(env.get(name, "") or default)
    except ValueError:
        return default


def generate_key() -> str:
    """random.GenerateKey: 16 random characters, then a UUID with every other letter upper-case."""
    alphabet = string.digits + string.ascii_lowercase + string.ascii_uppercase
    head = "".join(random.choice(alphabet) for _ in range(16))
    tail = "".join(
        ch.upper() if i % 2 == 0 and ch.isalpha() else ch for i, ch in enumerate(uuid.uuid4().hex)
    )
    return head + tail


def new_request_id() -> str:
    now = datetime.now()
    return (
        now.strftime("%Y%m%d%H%M%S")
        + str(time.time_ns() % 1_000_000_000)
        + "".join(random.choice(string.digits) for _ in range(8))
    )


def envelope(success: bool, message: str = "", **extra: Any) -> Response:
    # gin.H is a Go map: encoding/json writes its keys sorted.
    body = {"success": success, "message": message, **extra}
    return json_response(dict(sorted(body.items())))


class RateLimiter:
    """common.InMemoryRateLimiter: at most `limit` requests in `seconds` per key."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, limit: int, seconds: float) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            if len(hits) < limit:
                hits.append(now)
                return True
            if now - hits[0] >= seconds:
                hits.popleft()
                hits.append(now)
                return True
            return False


Handler = Callable[[Request, dict[str, Any], dict[str, str]], Response]


class OneAPI:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        dsn = self.env.get("SQL_DSN", "")
        if dsn.startswith("postgres://"):
            sys_log("using PostgreSQL as database")
        elif dsn:
            sys_log("using MySQL as database")
            try:
                golang.check_mysql_dsn(dsn)
            except ValueError as error:
                raise Fatal(fatal_line(f"failed to initialize database: {error}")) from None
        else:
            sys_log("SQL_DSN not set, using SQLite as database")
        self.memory_cache = self.env.get("MEMORY_CACHE_ENABLED", "").lower() == "true" or bool(
            self.env.get("REDIS_CONN_STRING")
        )
        self.sync_frequency = env_int(self.env, "SYNC_FREQUENCY", 600)
        self.api_rate_limit = env_int(self.env, "GLOBAL_API_RATE_LIMIT", 240)
        self.relay_timeout = env_int(self.env, "RELAY_TIMEOUT", 0) or None
        self.lock = threading.RLock()
        self.relay = Relay(self)
        self._stop = threading.Event()
        self._sync_thread: threading.Thread | None = None
        self._routes = self._build_routes()
        self._start()

    # Start, reset, close ------------------------------------------------------------------------

    def _start(self) -> None:
        sys_log(f"One API {VERSION} started")
        secret = self.env.get("SESSION_SECRET", "")
        if secret == "random_string":
            sys_error(
                "SESSION_SECRET is set to an example value, please change it to a random string."
            )
        self.session_secret = (
            secret if secret and secret != "random_string" else str(uuid.uuid4())
        ).encode()
        self.start_time = int(time.time())
        self.limiter = RateLimiter()
        self.users: dict[int, dict[str, Any]] = {}
        self.tokens: dict[int, dict[str, Any]] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.next_channel_id = 1
        self.next_token_id = 1
        sys_log(
            "no user exists, creating a root user for you: username is root, password is 123456"
        )
        root = {name: "" for name, go_type in USER_FIELDS.items() if go_type == "string"}
        root.update(
            id=1,
            username="root",
            password=self._hash_password("123456"),
            display_name="Root User",
            role=ROLE_ROOT,
            status=USER_ENABLED,
            access_token=uuid.uuid4().hex,
            quota=ROOT_QUOTA,
            used_quota=0,
            request_count=0,
            group="default",
            inviter_id=0,
        )
        self.users[1] = {name: root[name] for name in USER_FIELDS}
        initial_token = self.env.get("INITIAL_ROOT_TOKEN", "")
        if initial_token:
            sys_log("creating initial root token as requested")
            now = int(time.time())
            self.tokens[1] = {
                "id": 1,
                "user_id": 1,
                "key": initial_token,
                "status": TOKEN_ENABLED,
                "name": "Initial Root Token",
                "created_time": now,
                "accessed_time": now,
                "expired_time": -1,
                "remain_quota": ROOT_QUOTA,
                "unlimited_quota": True,
                "used_quota": 0,
                "models": "",
                "subnet": "",
            }
            self.next_token_id = 2
        self.cache: dict[str, dict[str, list[dict[str, Any]]]] = {}
        if self.memory_cache:
            sys_log("memory cache enabled")
            sys_log(f"sync frequency: {self.sync_frequency} seconds")
            self._sync_cache()
            self._stop = threading.Event()
            self._sync_thread = threading.Thread(
                target=self._sync_loop, args=(self._stop,), daemon=True
            )
            self._sync_thread.start()
        sys_log(f"server started on http://localhost:{self.env.get('PORT') or 3000}")

    def reset(self) -> None:
        """A fresh start: empty database, new root access token, cache timer from zero."""
        self.close()
        with self.lock:
            self._start()

    def close(self) -> None:
        self._stop.set()
        if self._sync_thread is not None:
            self._sync_thread.join(timeout=5)
            self._sync_thread = None

    # The channel cache (MEMORY_CACHE_ENABLED): rebuilt every SYNC_FREQUENCY seconds only ----------

    def _sync_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.sync_frequency):
            sys_log("syncing channels from database")
            self._sync_cache()

    def _sync_cache(self) -> None:
        with self.lock:
            cache: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for channel in self.channels.values():
                if channel["status"] != CHANNEL_ENABLED:
                    continue
                snapshot = copy.deepcopy(channel)
                for group in channel["group"].split(","):
                    for model in channel["models"].split(","):
                        cache.setdefault(group, {}).setdefault(model, []).append(snapshot)
            for models in cache.values():
                for channels in models.values():
                    channels.sort(key=lambda c: -(c["priority"] or 0))
            self.cache = cache
        sys_log("channels synced from database")

    def pick_channel(self, group: str, model: str) -> dict[str, Any] | None:
        with self.lock:
            if self.memory_cache:
                candidates = self.cache.get(group, {}).get(model, [])
                if not candidates:
                    return None
                end = len(candidates)
                top = candidates[0]["priority"] or 0
                if top > 0:
                    end = next(
                        (i for i, c in enumerate(candidates) if (c["priority"] or 0) != top), end
                    )
                return random.choice(candidates[:end])
            candidates = [
                channel
                for channel in self.channels.values()
                if channel["status"] == CHANNEL_ENABLED
                and model in channel["models"].split(",")
                and group in channel["group"].split(",")
            ]
            if not candidates:
                return None
            top = max(channel["priority"] or 0 for channel in candidates)
            chosen = random.choice([c for c in candidates if (c["priority"] or 0) == top])
            return copy.deepcopy(chosen)

    # Sessions and auth ----------------------------------------------------------------------------

    @staticmethod
    def _hash_password(password: str) -> str:
        return hashlib.sha256(password.encode()).hexdigest()

    def _session_cookie(self, user: Mapping[str, Any]) -> str:
        payload = {k: user[k] for k in ("id", "username", "role", "status")}
        payload["expires"] = int(time.time()) + SESSION_MAX_AGE
        raw = base64.urlsafe_b64encode(dump_json(payload)).decode()
        signature = hmac.new(self.session_secret, raw.encode(), hashlib.sha256).hexdigest()
        expires = datetime.now(UTC) + timedelta(seconds=SESSION_MAX_AGE)
        return (
            f"session={raw}.{signature}; Path=/; "
            f"Expires={expires.strftime('%a, %d %b %Y %H:%M:%S GMT')}; Max-Age={SESSION_MAX_AGE}"
        )

    def _session(self, request: Request) -> dict[str, Any] | None:
        value = request.cookies().get("session", "")
        raw, _, signature = value.rpartition(".")
        expected = hmac.new(self.session_secret, raw.encode(), hashlib.sha256).hexdigest()
        if not raw or not hmac.compare_digest(signature, expected):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(raw.encode()))
        except ValueError:
            return None
        if payload.get("expires", 0) < time.time() or "username" not in payload:
            return None
        return payload

    def _auth(
        self, request: Request, min_role: int
    ) -> tuple[dict[str, Any] | None, Response | None]:
        """middleware.authHelper: a session cookie, else `Authorization: [Bearer ]<token>`."""
        session = self._session(request)
        if session is not None:
            identity = session
        else:
            header = request.header("Authorization")
            if not header:
                return None, json_response(
                    {
                        "message": "无权进行此操作，未登录且未提供 access token",
                        "success": False,
                    },
                    401,
                )
            token = header.replace("Bearer ", "", 1)
            identity = next(
                (u for u in self.users.values() if token and u["access_token"] == token), None
            )
            if identity is None:
                return None, envelope(False, "无权进行此操作，access token 无效")
        if identity["status"] == USER_DISABLED:
            return None, envelope(False, "用户已被封禁")
        if identity["role"] < min_role:
            return None, envelope(False, "无权进行此操作，权限不足")
        return {"id": identity["id"], "role": identity["role"]}, None

    # Routing -----------------------------------------------------------------------------------

    def _build_routes(self) -> list[tuple[str, str, Handler, int | None, bool]]:
        """(method, path pattern, handler, minimum role or None, critical rate limit)."""
        user, admin = ROLE_COMMON, ROLE_ADMIN
        return [
            ("GET", "/api/status", self.get_status, None, False),
            ("POST", "/api/user/login", self.login, None, True),
            ("GET", "/api/user/logout", self.logout, None, False),
            ("GET", "/api/user/self", self.get_self, user, False),
            ("PUT", "/api/user/self", self.update_self, user, False),
            ("GET", "/api/user/token", self.generate_access_token, user, False),
            ("GET", "/api/channel/", self.list_channels, admin, False),
            ("GET", "/api/channel/search", self.search_channels, admin, False),
            ("GET", "/api/channel/models", self.not_modelled, admin, False),
            ("GET", "/api/channel/test", self.test_all_channels, admin, False),
            ("GET", "/api/channel/test/:id", self.test_channel, admin, False),
            ("GET", "/api/channel/update_balance", self.not_modelled, admin, False),
            ("GET", "/api/channel/update_balance/:id", self.not_modelled, admin, False),
            ("GET", "/api/channel/:id", self.get_channel, admin, False),
            ("POST", "/api/channel/", self.add_channel, admin, False),
            ("PUT", "/api/channel/", self.update_channel, admin, False),
            ("DELETE", "/api/channel/disabled", self.delete_disabled_channels, admin, False),
            ("DELETE", "/api/channel/:id", self.delete_channel, admin, False),
            ("GET", "/api/token/", self.list_tokens, user, False),
            ("GET", "/api/token/search", self.search_tokens, user, False),
            ("GET", "/api/token/:id", self.get_token, user, False),
            ("POST", "/api/token/", self.add_token, user, False),
            ("PUT", "/api/token/", self.update_token, user, False),
            ("DELETE", "/api/token/:id", self.delete_token, user, False),
        ]

    @staticmethod
    def _match(pattern: str, path: str) -> dict[str, str] | None:
        want, got = pattern.split("/"), path.split("/")
        if len(want) != len(got):
            return None
        params = {}
        for w, g in zip(want, got, strict=True):
            if w.startswith(":") and g:
                params[w[1:]] = unquote(g)
            elif w != g:
                return None
        return params

    def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        response = self._dispatch(request, request_id)
        response.headers.append((REQUEST_ID_HEADER, request_id))
        return response

    def _dispatch(self, request: Request, request_id: str) -> Response:
        path = request.path
        if path.startswith("/v1/") or path == "/v1":
            return self.relay.route(request, request_id)
        if not path.startswith("/api"):
            page = b"<!doctype html><title>One API</title><div id=root></div>"
            return Response(200, page, [("Content-Type", "text/html; charset=utf-8")])
        for method, pattern, handler, min_role, critical in self._routes:
            params = self._match(pattern, path)
            if method != request.method or params is None:
                continue
            if not self.limiter.allow(
                "GA" + request.client_ip, self.api_rate_limit, API_RATE_LIMIT_SECONDS
            ):
                return Response(429)
            if critical and not self.limiter.allow("CT" + request.client_ip, *CRITICAL_RATE_LIMIT):
                return Response(429)
            identity: dict[str, Any] = {}
            if min_role is not None:
                found, refusal = self._auth(request, min_role)
                if refusal is not None:
                    return refusal
                identity = found or {}
            if handler == self.test_channel:
                return handler(request, identity, params)  # it talks to the upstream unlocked
            with self.lock:
                return handler(request, identity, params)
        # gin redirects to the route that differs by a trailing slash.
        other = path[:-1] if path.endswith("/") else path + "/"
        for method, pattern, *_ in self._routes:
            if method == request.method and self._match(pattern, other) is not None:
                status = 301 if request.method == "GET" else 307
                return Response(status, b"", [("Location", other)])
        return not_found(request)

    def not_modelled(self, request: Request, identity: dict, params: dict) -> Response:
        return envelope(False, f"{request.path} is not modelled by the One API stand-in")

    # Status, login, self ------------------------------------------------------------------------

    def get_status(self, request: Request, identity: dict, params: dict) -> Response:
        data = {
            "version": VERSION,
            "start_time": self.start_time,
            "email_verification": False,
            "github_oauth": False,
            "github_client_id": "",
            "lark_client_id": "",
            "system_name": "One API",
            "logo": "",
            "footer_html": "",
            "wechat_qrcode": "",
            "wechat_login": False,
            "server_address": "http://localhost:3000",
            "turnstile_check": False,
            "turnstile_site_key": "",
            "top_up_link": "",
            "chat_link": "",
            "quota_per_unit": 500000,
            "display_in_currency": True,
        }
        return envelope(True, data=dict(sorted(data.items())))

    def login(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            body = request.json()
            username, password = body.get("username", ""), body.get("password", "")
            if not isinstance(username, str) or not isinstance(password, str):
                raise ValueError
        except (ValueError, AttributeError):
            return envelope(False, "无效的参数")
        if not username or not password:
            return envelope(False, "无效的参数")
        user = next((u for u in self.users.values() if u["username"] == username), None) or next(
            (u for u in self.users.values() if u["email"] and u["email"] == username), None
        )
        if (
            user is None
            or not hmac.compare_digest(user["password"], self._hash_password(password))
            or user["status"] != USER_ENABLED
        ):
            return envelope(False, "用户名或密码错误，或用户已被封禁")
        shown = ("id", "username", "display_name", "role", "status")
        response = envelope(True, data=self._public_user({k: user[k] for k in shown}))
        response.headers.append(("Set-Cookie", self._session_cookie(user)))
        return response

    def logout(self, request: Request, identity: dict, params: dict) -> Response:
        response = envelope(True)
        response.headers.append(("Set-Cookie", "session=; Path=/; Max-Age=0"))
        return response

    @staticmethod
    def _public_user(user: Mapping[str, Any]) -> dict[str, Any]:
        """A User as JSON: every field, the password always empty."""
        out = {}
        for name, go_type in USER_FIELDS.items():
            value = user.get(name)
            out[name] = value if value is not None else ("" if go_type == "string" else 0)
        out["password"] = ""
        return out

    def get_self(self, request: Request, identity: dict, params: dict) -> Response:
        user = self.users.get(identity["id"])
        if user is None:
            return envelope(False, "record not found")
        return envelope(True, data=self._public_user(user))

    def update_self(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            body = golang.bind(request.body, "User", USER_FIELDS)
        except golang.BindError:
            return envelope(False, "无效的参数")
        password = body["password"] or "$I_LOVE_U"
        problems = []
        for field, name, low, high in USER_LENGTH_RULES:
            value = password if name == "password" else body[name]
            if low is not None and len(value) < low:
                tag = "min"
            elif high is not None and len(value) > high:
                tag = "max"
            else:
                continue
            problems.append(
                f"Key: 'User.{field}' Error:Field validation for '{field}' "
                f"failed on the '{tag}' tag"
            )
        if problems:
            return envelope(False, "输入不合法 " + "\n".join(problems))
        user = self.users[identity["id"]]
        # gorm Updates(struct): empty strings are left as they were.
        if body["username"]:
            user["username"] = body["username"]
        if body["display_name"]:
            user["display_name"] = body["display_name"]
        if body["password"]:
            user["password"] = self._hash_password(body["password"])
        return envelope(True)

    def generate_access_token(self, request: Request, identity: dict, params: dict) -> Response:
        user = self.users[identity["id"]]
        user["access_token"] = uuid.uuid4().hex
        return envelope(True, data=user["access_token"])

    # Channels ----------------------------------------------------------------------------------

    @staticmethod
    def _channel_json(channel: Mapping[str, Any], with_key: bool) -> dict[str, Any]:
        out = {name: channel[name] for name in CHANNEL_FIELDS}
        if not with_key:
            out["key"] = ""
        return out

    def list_channels(self, request: Request, identity: dict, params: dict) -> Response:
        page = max(self._page(request), 0)
        ordered = sorted(self.channels.values(), key=lambda c: -c["id"])
        chosen = ordered[page * ITEMS_PER_PAGE : (page + 1) * ITEMS_PER_PAGE]
        return envelope(True, data=[self._channel_json(c, with_key=False) for c in chosen])

    @staticmethod
    def _page(request: Request) -> int:
        try:
            return golang.atoi(request.query.get("p", "0"))
        except ValueError:
            return 0

    def search_channels(self, request: Request, identity: dict, params: dict) -> Response:
        keyword = request.query.get("keyword", "")
        try:
            wanted_id = golang.atoi(keyword)
        except ValueError:
            wanted_id = 0
        found = [
            self._channel_json(c, with_key=False)
            for c in sorted(self.channels.values(), key=lambda c: c["id"])
            if c["id"] == wanted_id or golang.like_prefix(c["name"], keyword)
        ]
        return envelope(True, data=found)

    def get_channel(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            channel_id = golang.atoi(params["id"])
        except ValueError as error:
            return envelope(False, str(error))
        channel = self.channels.get(channel_id)
        if channel is None:
            return envelope(False, "record not found")
        return envelope(True, data=self._channel_json(channel, with_key=False))

    def add_channel(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            body = golang.bind(request.body, "Channel", CHANNEL_FIELDS)
        except golang.BindError as error:
            return envelope(False, str(error))
        body["created_time"] = int(time.time())
        keys = [key for key in body["key"].split("\n") if key]
        if not keys:
            return envelope(False, "empty slice found")
        for key in keys:
            channel = dict(body, key=key, id=self.next_channel_id)
            self.next_channel_id += 1
            # Column defaults that gorm writes for zero values.
            channel["status"] = channel["status"] or CHANNEL_ENABLED
            channel["group"] = channel["group"] or "default"
            for name in ("weight", "priority"):
                channel[name] = 0 if channel[name] is None else channel[name]
            for name in ("base_url", "model_mapping"):
                channel[name] = "" if channel[name] is None else channel[name]
            self.channels[channel["id"]] = channel
        return envelope(True)

    def update_channel(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            body = golang.bind(request.body, "Channel", CHANNEL_FIELDS)
        except golang.BindError as error:
            return envelope(False, str(error))
        if not body["id"]:
            return envelope(False, "WHERE conditions required")
        channel = self.channels.get(body["id"])
        if channel is None:
            # gorm updates no row and reports no error; the handler echoes what it was sent.
            return envelope(True, data=body)
        for name, go_type in CHANNEL_FIELDS.items():
            value = body[name]
            # gorm Updates(struct) skips zero values of plain fields and nil pointers.
            if go_type.startswith("*"):
                if value is not None:
                    channel[name] = value
            elif value not in (0, "", False, 0.0):
                channel[name] = value
        return envelope(True, data=self._channel_json(channel, with_key=True))

    def delete_channel(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            channel_id = golang.atoi(params["id"])
        except ValueError:
            channel_id = 0
        if not channel_id:
            return envelope(False, "WHERE conditions required")
        self.channels.pop(channel_id, None)
        return envelope(True)

    def delete_disabled_channels(self, request: Request, identity: dict, params: dict) -> Response:
        stopped = (CHANNEL_MANUALLY_DISABLED, CHANNEL_AUTO_DISABLED)
        disabled = [cid for cid, c in self.channels.items() if c["status"] in stopped]
        for cid in disabled:
            del self.channels[cid]
        return envelope(True, data=len(disabled))

    def test_channel(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            channel_id = golang.atoi(params["id"])
        except ValueError as error:
            return envelope(False, str(error))
        with self.lock:
            channel = copy.deepcopy(self.channels.get(channel_id))
        if channel is None:
            return envelope(False, "record not found")
        error, milliseconds = self._timed_test(channel)
        # Go writes a whole float64 without a fraction: 0, not 0.0.
        seconds = milliseconds // 1000 if milliseconds % 1000 == 0 else milliseconds / 1000
        if error:
            return envelope(False, error, time=seconds)
        return envelope(True, time=seconds)

    def test_all_channels(self, request: Request, identity: dict, params: dict) -> Response:
        channels = [copy.deepcopy(c) for c in self.channels.values()]

        def run() -> None:
            for channel in channels:
                self._timed_test(channel)

        threading.Thread(target=run, daemon=True).start()
        return envelope(True)

    def _timed_test(self, channel: Mapping[str, Any]) -> tuple[str, int]:
        """Test a channel and record test_time and response_time: (error or '', milliseconds)."""
        started = time.monotonic()
        error = self.relay.test_channel(channel)
        milliseconds = int((time.monotonic() - started) * 1000)
        with self.lock:
            if channel["id"] in self.channels:
                self.channels[channel["id"]]["response_time"] = milliseconds
                self.channels[channel["id"]]["test_time"] = int(time.time())
        return error, milliseconds

    # Tokens ------------------------------------------------------------------------------------

    def list_tokens(self, request: Request, identity: dict, params: dict) -> Response:
        page = max(self._page(request), 0)
        mine = [t for t in self.tokens.values() if t["user_id"] == identity["id"]]
        order = request.query.get("order", "")
        if order == "remain_quota":
            mine.sort(key=lambda t: (not t["unlimited_quota"], -t["remain_quota"]))
        elif order == "used_quota":
            mine.sort(key=lambda t: -t["used_quota"])
        else:
            mine.sort(key=lambda t: -t["id"])
        chosen = mine[page * ITEMS_PER_PAGE : (page + 1) * ITEMS_PER_PAGE]
        return envelope(True, data=[dict(t) for t in chosen])

    def search_tokens(self, request: Request, identity: dict, params: dict) -> Response:
        keyword = request.query.get("keyword", "")
        found = [
            dict(t)
            for t in sorted(self.tokens.values(), key=lambda t: t["id"])
            if t["user_id"] == identity["id"] and golang.like_prefix(t["name"], keyword)
        ]
        return envelope(True, data=found)

    def _own_token(self, token_id: int, user_id: int) -> dict[str, Any]:
        if not token_id or not user_id:
            raise LookupError("id 或 userId 为空！")
        token = self.tokens.get(token_id)
        if token is None or token["user_id"] != user_id:
            raise LookupError("record not found")
        return token

    def get_token(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            token = self._own_token(golang.atoi(params["id"]), identity["id"])
        except (ValueError, LookupError) as error:
            return envelope(False, str(error.args[0]))
        return envelope(True, data=dict(token))

    @staticmethod
    def _validate_token(body: Mapping[str, Any]) -> str:
        if len(body["name"].encode()) > 30:
            return "参数错误：令牌名称过长"
        for subnet in body["subnet"].split(",") if body["subnet"] else ():
            subnet = subnet.strip()
            try:
                if "/" not in subnet:
                    raise ValueError
                ipaddress.ip_network(subnet, strict=False)
            except ValueError:
                return (
                    f"参数错误：无效的网段：failed to parse subnet: invalid CIDR address: {subnet}"
                )
        return ""

    def add_token(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            body = golang.bind(request.body, "Token", TOKEN_FIELDS)
        except golang.BindError as error:
            return envelope(False, str(error))
        problem = self._validate_token(body)
        if problem:
            return envelope(False, problem)
        now = int(time.time())
        token = {
            "id": self.next_token_id,
            "user_id": identity["id"],
            "key": generate_key(),
            # Column defaults that gorm writes for zero values.
            "status": TOKEN_ENABLED,
            "name": body["name"],
            "created_time": now,
            "accessed_time": now,
            "expired_time": body["expired_time"] or -1,
            "remain_quota": body["remain_quota"],
            "unlimited_quota": body["unlimited_quota"],
            "used_quota": 0,
            "models": body["models"] if body["models"] is not None else "",
            "subnet": body["subnet"] if body["subnet"] is not None else "",
        }
        self.next_token_id += 1
        self.tokens[token["id"]] = token
        return envelope(True, data=dict(token))

    def update_token(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            body = golang.bind(request.body, "Token", TOKEN_FIELDS)
        except golang.BindError as error:
            return envelope(False, str(error))
        problem = self._validate_token(body)
        if problem:
            return envelope(False, problem)
        try:
            token = self._own_token(body["id"], identity["id"])
        except LookupError as error:
            return envelope(False, str(error.args[0]))
        now = int(time.time())
        if body["status"] == TOKEN_ENABLED:
            if token["status"] == TOKEN_EXPIRED and -1 != token["expired_time"] <= now:
                return envelope(
                    False,
                    "令牌已过期，无法启用，请先修改令牌过期时间，或者设置为永不过期",
                )
            if (
                token["status"] == TOKEN_EXHAUSTED
                and token["remain_quota"] <= 0
                and not token["unlimited_quota"]
            ):
                return envelope(
                    False,
                    "令牌可用额度已用尽，无法启用，请先修改令牌剩余额度，或者设置为无限额度",
                )
        if request.query.get("status_only"):
            token["status"] = body["status"]
        else:
            for name in ("name", "expired_time", "remain_quota", "unlimited_quota"):
                token[name] = body[name]
            # Update() selects these columns, so they are written even when empty.
            token["models"] = body["models"]
            token["subnet"] = body["subnet"]
        return envelope(True, data=dict(token))

    def delete_token(self, request: Request, identity: dict, params: dict) -> Response:
        try:
            token_id = golang.atoi(params["id"])
        except ValueError:
            token_id = 0
        try:
            token = self._own_token(token_id, identity["id"])
        except LookupError as error:
            return envelope(False, str(error.args[0]))
        del self.tokens[token["id"]]
        return envelope(True)


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser: Any) -> None:
        parser.add_argument("--log-dir", default="./logs", help="accepted like the real binary")

    return run_main(
        "one-api",
        OneAPI,
        default_host="0.0.0.0",  # noqa: S104 - gin listens on all interfaces
        default_port=int(os.environ.get("PORT") or 3000),
        argv=argv,
        add_arguments=add_arguments,
    )
