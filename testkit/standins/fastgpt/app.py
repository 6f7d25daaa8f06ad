"""FastGPT V488 itself: lazy start-up on the first request, routing, auth, the root user and
OpenAPI keys. Datasets and training are in knowledge.py; apps, share links and chat in chat.py."""

from __future__ import annotations

import json
import os
import random
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from testkit.standins.fastgpt.chat import Chat
from testkit.standins.fastgpt.common import (
    SYSTEM_VERSION,
    TOKEN_COOKIE,
    AddLog,
    Reject,
    cast_error,
    create_jwt,
    error_res,
    get_nanoid,
    is_object_id,
    json_res,
    now_iso,
    object_id,
    permission,
    sha256_hex,
    verify_jwt,
)
from testkit.standins.fastgpt.knowledge import Knowledge
from testkit.standins.fastgpt.training import VectorTrainer
from testkit.standins.server import Fatal, Request, Response, Unanswered, run_main

DEFAULT_CONFIG_PATH = "/app/data/config.json"
PRICE_SCALE = 100000
MB = 1024 * 1024
# The code defaults that initSystemConfig lays over config.json's feConfigs.
DEFAULT_FE_CONFIGS = {
    "show_emptyChat": True,
    "show_git": True,
    "docUrl": "https://doc.fastgpt.in",
    "openAPIDocUrl": "https://doc.fastgpt.in/docs/development/openapi",
    "systemPluginCourseUrl": "https://fael3z0zfze.feishu.cn/wiki/ERZnw9R26iRRG0kXZRec6WL9nwh",
    "systemTitle": "FastGPT",
    "concatMd": (
        "项目开源地址: [FastGPT GitHub](https://github.com/labring/FastGPT)\n"
        "交流群: ![](https://oss.laf.run/htr4n1-images/fastgpt-qr-code.jpg)"
    ),
    "limit": {"exportDatasetLimitMinutes": 0, "websiteSyncLimitMinuted": 0},
    "scripts": [],
    "favicon": "/favicon.ico",
    "uploadFileMaxSize": 500,
}
PAGES = {"/", "/login", "/chat", "/chat/share", "/app/list", "/dataset/list"}
# generateVector takes rows whose lockTime is over a minute old: a failed row waits that long.
DEFAULT_RETRY_SECONDS = 60
OPENAPI_KEYS_PER_MEMBER = 10


@dataclass
class Cert:
    """parseHeaderCert's answer: who is asking, and how."""

    user_id: str
    team_id: str
    tmb_id: str
    app_id: str
    auth_type: str
    apikey: str


Handler = Callable[[Request, dict[str, Any]], Any]


class FastGPT:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.config_path = self.env.get("STANDIN_FASTGPT_CONFIG") or DEFAULT_CONFIG_PATH
        self.training_seconds = float(self.env.get("STANDIN_TRAINING_SECONDS") or 3)
        self.add_log = AddLog(self.env.get("LOG_LEVEL"))
        self.lock = threading.RLock()
        self._init_lock = threading.Lock()
        self._stop = threading.Event()
        self.knowledge = Knowledge(self)
        self.chat = Chat(self)
        self._routes = self._build_routes()
        self._fresh_state()
        self.trainer = self._vector_trainer()
        if self.trainer is not None:
            self.trainer.start()

    def _vector_trainer(self) -> VectorTrainer | None:
        """Chunks are embedded by calling the model only where an endpoint is named (a
        deployed stack); tests that serve the stand-in from a thread name none."""
        if not (self.env.get("OPENAI_BASE_URL") or self.env.get("ONEAPI_URL")):
            return None
        retry = float(self.env.get("STANDIN_TRAINING_RETRY_SECONDS") or DEFAULT_RETRY_SECONDS)
        return VectorTrainer(self, retry)

    def model_endpoint(self) -> tuple[str, str]:
        """getAIApi: config.json's systemEnv overrides ONEAPI_URL, OPENAI_BASE_URL, CHAT_API_KEY."""
        system_env = self.config.get("systemEnv") or {}
        base_url = (
            system_env.get("oneapiUrl")
            or self.env.get("ONEAPI_URL")
            or self.env.get("OPENAI_BASE_URL")
            or "https://api.openai.com/v1"
        )
        api_key = system_env.get("chatApiKey") or self.env.get("CHAT_API_KEY") or ""
        return base_url, api_key

    def _fresh_state(self) -> None:
        self.initialized = False
        self.config: dict[str, Any] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.teams: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, Any]] = {}
        self.openapis: dict[str, dict[str, Any]] = {}
        self.knowledge.clear()
        self.chat.clear()

    def reset(self) -> None:
        """As if the process restarted on an empty database: init runs again on first request."""
        with self.lock:
            self._fresh_state()

    def close(self) -> None:
        self._stop.set()
        if self.trainer is not None:
            self.trainer.stop()

    def hang(self, uncaught: str) -> NoReturn:
        """An error thrown where nothing catches it: Node prints it, the request never gets an
        answer (until the process ends)."""
        print(uncaught, file=sys.stderr, flush=True)
        self._stop.wait()
        raise Unanswered

    # Lazy init: connectToDatabase() on the first API request -----------------------------------

    def _hang(self, message: str) -> None:
        """Mongo and PG connects are retried for ever: the request never gets an answer."""
        self.add_log.error(message)
        self._stop.wait()
        raise Unanswered

    def _ensure_init(self) -> None:
        with self._init_lock:
            if self.initialized:
                return
            mongo = self.env.get("MONGODB_URI", "")
            if not mongo.startswith(("mongodb://", "mongodb+srv://")):
                self._hang(f"mongo connect error: invalid MONGODB_URI {mongo!r}, retrying")
            if not self.env.get("MILVUS_ADDRESS") and not self.env.get("PG_URL", "").startswith(
                ("postgres://", "postgresql://")
            ):
                self._hang(f"pg connect error: invalid PG_URL {self.env.get('PG_URL')!r}")
            try:
                with open(self.config_path, encoding="utf-8") as handle:
                    file_config = json.load(handle)
                if not isinstance(file_config, dict):
                    raise ValueError(f"config.json holds {type(file_config).__name__}, not object")
            except (OSError, ValueError) as error:
                raise Fatal(f"[Error] init error {error}") from None
            with self.lock:
                self._load_config(file_config)
                self._init_root_user()
                self.initialized = True

    def _load_config(self, file_config: dict[str, Any]) -> None:
        """initSystemConfig: file feConfigs under the code defaults, models from the file."""
        fe_configs = file_config.get("feConfigs") or {}
        self.config = {
            "feConfigs": {**fe_configs, **DEFAULT_FE_CONFIGS, "isPlus": False},
            "systemEnv": dict(file_config.get("systemEnv") or {}),
            "subPlans": file_config.get("subPlans"),
            "llmModels": file_config.get("llmModels") or [],
            "vectorModels": file_config.get("vectorModels") or [],
            "reRankModels": file_config.get("reRankModels") or [],
            "audioSpeechModels": file_config.get("audioSpeechModels") or [],
            "whisperModel": file_config.get("whisperModel"),
        }
        self.add_log.info(f"config loaded from {self.config_path}")

    def _init_root_user(self) -> None:
        password = self.env.get("DEFAULT_ROOT_PSW") or "123456"
        user_id, team_id, tmb_id = object_id(), object_id(), object_id()
        created = now_iso()
        self.users[user_id] = {
            "_id": user_id,
            "status": "active",
            "username": "root",
            # The schema setter hashes once more what initRootUser hashed.
            "password": sha256_hex(sha256_hex(password)),
            "createTime": created,
            "avatar": "/icon/human.svg",
            "promotionRate": 15,
            "timezone": "Asia/Shanghai",
        }
        self.teams[team_id] = {
            "_id": team_id,
            "name": "My Team",
            "ownerId": user_id,
            "avatar": "/icon/logo.svg",
            "createTime": created,
            "balance": 9999 * PRICE_SCALE,
        }
        self.members[tmb_id] = {
            "_id": tmb_id,
            "teamId": team_id,
            "userId": user_id,
            "name": "Owner",
            "role": "owner",
            "status": "active",
            "createTime": created,
            "defaultTeam": True,
        }
        print(f"root user init: {{ username: 'root', password: '{password}' }}", flush=True)

    # Models from config.json -------------------------------------------------------------------

    def llm_model(self, name: str | None) -> dict[str, Any] | None:
        models = self.config.get("llmModels") or []
        return next((m for m in models if m.get("model") == name), models[0] if models else None)

    def dataset_model(self, name: str | None) -> dict[str, Any] | None:
        models = self.config.get("llmModels") or []
        processing = [m for m in models if m.get("datasetProcess")]
        found = next((m for m in processing if m.get("model") == name), None)
        return found or (models[0] if models else None)

    def vector_model(self, name: str | None) -> dict[str, Any] | None:
        # .get: the trainer thread may ask between a reset and the next lazy init.
        models = self.config.get("vectorModels") or []
        return next((m for m in models if m.get("model") == name), models[0] if models else None)

    # Auth: parseHeaderCert and friends ----------------------------------------------------------

    def cert(
        self,
        request: Request,
        *,
        token: bool = False,
        api_key: bool = False,
        root: bool = False,
    ) -> Cert:
        authorization = request.header("Authorization")
        token_header = request.header("token")
        cookie_header = request.header("Cookie")
        rootkey = request.header("rootkey")
        if api_key and authorization:
            cert = self._cert_by_api_key(authorization)
        elif token and (token_header or cookie_header):
            jwt = token_header or request.cookies().get(TOKEN_COOKIE, "")
            claims = verify_jwt(self.env.get("TOKEN_KEY"), jwt) if jwt else None
            if not claims or not claims.get("userId"):
                raise Reject("unAuthorization")
            cert = Cert(
                str(claims["userId"]),
                str(claims.get("teamId") or ""),
                str(claims.get("tmbId") or ""),
                "",
                "token",
                "",
            )
        elif root and rootkey:
            if not self.env.get("ROOT_KEY") or rootkey != self.env["ROOT_KEY"]:
                raise Reject("unAuthorization")
            return Cert("", "", "", "", "root", "")
        else:
            raise Reject("unAuthorization")
        if not cert.team_id or not cert.tmb_id:
            raise Reject("unAuthorization")
        return cert

    def _cert_by_api_key(self, authorization: str) -> Cert:
        words = authorization.split(" ")
        if len(words) < 2 or not words[1]:
            raise Reject("unAuthorization")
        parts = words[1].split("-")
        if len(parts) == 3:
            apikey, legacy_app_id = f"{parts[0]}-{parts[1]}", parts[2]
        elif len(parts) == 2:
            apikey, legacy_app_id = words[1], ""
        else:
            raise Reject("unAuthorization")
        with self.lock:
            record = next(
                (k for k in self.openapis.values() if k["apiKey"] == apikey.strip()), None
            )
            if record is None:
                raise Reject("unAuthApiKey")
            record["lastUsedTime"] = now_iso()
        return Cert(
            "",
            record["teamId"],
            record["tmbId"],
            record.get("appId") or legacy_app_id,
            "apikey",
            apikey,
        )

    def member(self, tmb_id: str) -> dict[str, Any]:
        """getTmbInfoByTmbId: the member with its team, as the API shows it."""
        if not tmb_id:
            raise Reject("tmbId or userId is required")
        tmb = self.members.get(tmb_id) if is_object_id(tmb_id) else None
        if tmb is None:
            raise Reject("member not exist")
        team = self.teams[tmb["teamId"]]
        return {
            "userId": tmb["userId"],
            "teamId": team["_id"],
            "teamName": team["name"],
            "memberName": tmb["name"],
            "avatar": team["avatar"],
            "balance": team["balance"],
            "tmbId": tmb["_id"],
            "role": tmb["role"],
            "status": tmb["status"],
            "defaultTeam": tmb["defaultTeam"],
            "permission": permission(),
        }

    def auth_user(self, request: Request, *, api_key: bool = False) -> Cert:
        """authUserPer: the caller, who must be a member (root owns the only team)."""
        cert = self.cert(request, token=True, api_key=api_key)
        self.member(cert.tmb_id)
        return cert

    def user_detail(self, tmb_id: str) -> dict[str, Any]:
        tmb = self.member(tmb_id)
        user = self.users.get(tmb["userId"])
        if user is None:
            raise Reject("unAuthorization")
        return {
            "_id": user["_id"],
            "username": user["username"],
            "avatar": user["avatar"],
            "timezone": user["timezone"],
            "promotionRate": user["promotionRate"],
            "team": tmb,
        }

    def find(self, table: dict[str, dict[str, Any]], doc_id: Any, model: str) -> dict | None:
        """findOne({_id}) with Mongoose's cast error for an id that is not an ObjectId."""
        if doc_id is None:
            return None
        if not is_object_id(doc_id):
            raise cast_error(doc_id, model)
        return table.get(doc_id)

    # Routing ---------------------------------------------------------------------------------

    def _build_routes(self) -> dict[str, tuple[Handler, int | None]]:
        """API path -> (handler, JSON body limit in bytes, or None when the handler parses it)."""
        k, c = self.knowledge, self.chat
        one, ten = MB, 10 * MB
        return {
            "/api/common/system/getInitData": (self.get_init_data, one),
            "/api/support/user/account/loginByPassword": (self.login, one),
            "/api/support/user/account/tokenLogin": (self.token_login, one),
            "/api/support/user/account/loginout": (self.logout, one),
            "/api/support/openapi/create": (self.create_key, one),
            "/api/support/openapi/list": (self.list_keys, one),
            "/api/support/openapi/update": (self.update_key, one),
            "/api/support/openapi/delete": (self.delete_key, one),
            "/api/admin/initv488": (self.init_v488, one),
            "/api/core/dataset/create": (k.create_dataset, one),
            "/api/core/dataset/list": (k.list_datasets, one),
            "/api/core/dataset/allDataset": (k.all_datasets, one),
            "/api/core/dataset/detail": (k.dataset_detail, one),
            "/api/core/dataset/update": (k.update_dataset, one),
            "/api/core/dataset/delete": (k.delete_dataset, one),
            "/api/core/dataset/collection/create": (k.create_collection, one),
            "/api/core/dataset/collection/create/text": (k.create_text_collection, ten),
            "/api/core/dataset/collection/create/link": (k.create_link_collection, one),
            "/api/core/dataset/collection/create/localFile": (k.create_file_collection, None),
            "/api/core/dataset/collection/list": (k.list_collections, one),
            "/api/core/dataset/collection/detail": (k.collection_detail, one),
            "/api/core/dataset/collection/delete": (k.delete_collection, one),
            "/api/core/dataset/data/pushData": (k.push_data, ten),
            "/api/core/dataset/training/getDatasetTrainingQueue": (k.training_queue, one),
            "/api/core/dataset/searchTest": (k.search_test, one),
            "/api/core/app/create": (c.create_app, one),
            "/api/core/app/list": (c.list_apps, one),
            "/api/core/app/detail": (c.app_detail, one),
            "/api/core/app/update": (c.update_app, one),
            "/api/core/app/del": (c.delete_app, one),
            "/api/core/app/version/publish": (c.publish_app, one),
            "/api/core/app/version/latest": (c.latest_version, one),
            "/api/core/app/version/list": (c.list_versions, one),
            "/api/support/outLink/create": (c.create_share_link, one),
            "/api/support/outLink/list": (c.list_share_links, one),
            "/api/support/outLink/update": (c.update_share_link, one),
            "/api/support/outLink/delete": (c.delete_share_link, one),
            "/api/core/chat/outLink/init": (c.share_link_init, one),
            "/api/v1/chat/completions": (c.completions, one),
        }

    def handle(self, request: Request) -> Response:
        path = request.path
        if path != "/" and path.endswith("/"):
            # Next.js drops a trailing slash with a permanent redirect.
            return Response(308, b"", [("Location", path.rstrip("/") or "/")])
        route = self._routes.get(path)
        if route is None:
            if request.method == "GET" and path in PAGES:
                page = b"<!doctype html><title>FastGPT</title><div id=__next></div>"
                return Response(200, page, [("Content-Type", "text/html; charset=utf-8")])
            page = b"<!doctype html><title>404: This page could not be found</title>"
            return Response(404, page, [("Content-Type", "text/html; charset=utf-8")])
        handler, limit = route
        body: dict[str, Any] = {}
        if limit is not None:
            if len(request.body) > limit:
                text = f"Body exceeded {limit // MB}mb limit".encode()
                return Response(413, text, [("Content-Type", "text/plain")])
            if request.header("Content-Type").startswith("application/json") and request.body:
                try:
                    parsed = request.json()
                except (ValueError, UnicodeDecodeError):
                    return Response(400, b"Invalid JSON", [("Content-Type", "text/plain")])
                body = parsed if isinstance(parsed, dict) else {}
        self._ensure_init()
        try:
            result = handler(request, body)
        except Reject as error:
            return error_res(error)
        return result if isinstance(result, Response) else json_res(result)

    # System, login ---------------------------------------------------------------------------

    def get_init_data(self, request: Request, body: dict) -> Any:
        config = self.config
        data = {
            "feConfigs": config["feConfigs"],
            "subPlans": config["subPlans"],
            "llmModels": config["llmModels"],
            "vectorModels": config["vectorModels"],
            "reRankModels": [
                {**model, "requestUrl": "", "requestAuth": ""} for model in config["reRankModels"]
            ],
            "whisperModel": config["whisperModel"],
            "audioSpeechModels": config["audioSpeechModels"],
            "systemVersion": SYSTEM_VERSION,
        }
        return {key: value for key, value in data.items() if value is not None}

    def login(self, request: Request, body: dict) -> Any:
        username, password = body.get("username"), body.get("password")
        if not username or not password:
            raise Reject("缺少参数")
        with self.lock:
            user = next((u for u in self.users.values() if u["username"] == username), None)
            if user is None:
                raise Reject("用户未注册")
            if user["status"] == "forbidden":
                raise Reject("账号已停用，无法登录")
            if not isinstance(password, str) or sha256_hex(password) != user["password"]:
                raise Reject("密码错误")
            tmb = next(
                t for t in self.members.values() if t["userId"] == user["_id"] and t["defaultTeam"]
            )
            detail = self.user_detail(tmb["_id"])
        claims = {"userId": user["_id"], "teamId": tmb["teamId"], "tmbId": tmb["_id"]}
        token = create_jwt(self.env.get("TOKEN_KEY"), claims)
        response = json_res({"user": detail, "token": token})
        response.headers.append(
            (
                "Set-Cookie",
                f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; Max-Age=604800; Samesite=Strict;",
            )
        )
        return response

    def token_login(self, request: Request, body: dict) -> Any:
        cert = self.cert(request, token=True)
        with self.lock:
            return self.user_detail(cert.tmb_id)

    def logout(self, request: Request, body: dict) -> Any:
        response = json_res()
        response.headers.append(("Set-Cookie", f"{TOKEN_COOKIE}=; Path=/; Max-Age=0"))
        return response

    def init_v488(self, request: Request, body: dict) -> Any:
        self.cert(request, root=True)
        return json_res(None, message="success")

    # OpenAPI keys ----------------------------------------------------------------------------

    @staticmethod
    def _shown_key(record: Mapping[str, Any]) -> dict[str, Any]:
        """toObject({getters: true}): the key masked, the `id` virtual added."""
        shown = dict(record)
        shown["apiKey"] = "******" + record["apiKey"][-4:]
        shown["id"] = record["_id"]
        return shown

    def create_key(self, request: Request, body: dict) -> Any:
        app_id = body.get("appId")
        cert = self.chat.auth_app(request, app_id) if app_id else self.auth_user(request)
        with self.lock:
            # find({tmbId, appId}): an absent appId matches the account keys only.
            count = sum(
                1
                for k in self.openapis.values()
                if k["tmbId"] == cert.tmb_id and k.get("appId") == (app_id or None)
            )
            if count >= OPENAPI_KEYS_PER_MEMBER:
                raise Reject("openapiExceedLimit")
            nanoid = get_nanoid(random.randint(52, 65))  # noqa: S311 - as getNanoid sizes it
            prefix = self.config["systemEnv"].get("openapiPrefix") or "fastgpt"
            limit = body.get("limit") if isinstance(body.get("limit"), dict) else {}
            record = {
                "_id": object_id(),
                "teamId": cert.team_id,
                "tmbId": cert.tmb_id,
                "apiKey": f"{prefix}-{nanoid}",
                "createTime": now_iso(),
                **({"appId": app_id} if app_id else {}),
                "name": body.get("name", "Api Key"),
                "usagePoints": 0,
                "limit": {"maxUsagePoints": -1, **limit},
                "__v": 0,
            }
            self.openapis[record["_id"]] = record
            return record["apiKey"]

    def list_keys(self, request: Request, body: dict) -> Any:
        app_id = request.query.get("appId")
        if app_id:
            self.chat.auth_app(request, app_id)
            cert = None
        else:
            cert = self.auth_user(request)
        with self.lock:
            # Without appId: find({appId: undefined, teamId}), the account keys of the team.
            found = [
                k
                for k in self.openapis.values()
                if (
                    k.get("appId") == app_id
                    if app_id
                    else not k.get("appId") and k["teamId"] == cert.team_id
                )
            ]
            return [self._shown_key(k) for k in sorted(found, key=lambda k: k["_id"], reverse=True)]

    def _own_key(self, request: Request, key_id: Any) -> dict[str, Any]:
        """authOpenApiKeyCrud."""
        cert = self.cert(request, token=True)
        record = self.find(self.openapis, key_id, "openapi")
        if record is None or record["teamId"] != cert.team_id:
            raise Reject("openapiUnExist")
        if record.get("appId"):
            self.chat.find_app(record["appId"])
        return record

    def update_key(self, request: Request, body: dict) -> Any:
        with self.lock:
            record = self._own_key(request, body.get("_id"))
            if "name" in body:
                record["name"] = body["name"]
            if isinstance(body.get("limit"), dict):
                record["limit"] = {"maxUsagePoints": -1, **body["limit"]}
        return None

    def delete_key(self, request: Request, body: dict) -> Any:
        key_id = request.query.get("id")
        if not key_id:
            raise Reject("missingParams")
        with self.lock:
            record = self._own_key(request, key_id)
            del self.openapis[record["_id"]]
        return {}


def main(argv: list[str] | None = None) -> int:
    """Next's standalone server listens on `$HOSTNAME` (a name is resolved), else 0.0.0.0, and
    `$PORT`. Docker sets HOSTNAME to the container id, so without HOSTNAME=0.0.0.0 nothing
    listens on 127.0.0.1 in the container (K12); `--host` overrides it for tests."""
    return run_main(
        "fastgpt",
        FastGPT,
        default_host=os.environ.get("HOSTNAME") or "0.0.0.0",  # noqa: S104 - as Next.js does
        default_port=int(os.environ.get("PORT") or 3000),
        argv=argv,
    )
