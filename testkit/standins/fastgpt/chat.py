"""Apps, their published versions, share links (outLink) and /api/v1/chat/completions.

No model is called: the answer is the dataset chunk that shares the most words with the
question, from the datasets the app's datasetSearchNode lists in its newest published version,
so a test can predict it. With no such chunk the answer is NO_MATCH_ANSWER.
"""

from __future__ import annotations

import copy
import json
import random
import re
import string
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from testkit.standins.fastgpt.common import (
    NAMED_ERRORS,
    Reject,
    newest_first,
    now_iso,
    object_id,
    permission,
)
from testkit.standins.server import Request, Response, dump_json, json_response

if TYPE_CHECKING:
    from testkit.standins.fastgpt.app import Cert, FastGPT

APP_TYPES = ("folder", "simple", "advanced", "plugin", "httpPlugin")
FOLDER_TYPES = ("folder", "httpPlugin")
APP_LIST_FIELDS = (
    "_id",
    "parentId",
    "avatar",
    "type",
    "name",
    "intro",
    "tmbId",
    "updateTime",
    "pluginData",
    "defaultPermission",
    "inheritPermission",
)
NO_MATCH_ANSWER = "The knowledge base has nothing that matches this question."
SSE_HEADERS = [
    ("Content-Type", "text/event-stream;charset=utf-8"),
    ("Access-Control-Allow-Origin", "*"),
    ("X-Accel-Buffering", "no"),
    ("Cache-Control", "no-cache, no-transform"),
]


def required_error(model: str, missing: list[str]) -> Reject:
    paths = ", ".join(f"{name}: Path `{name}` is required." for name in missing)
    return Reject(f"{model} validation failed: {paths}")


def node_input(node: dict[str, Any], key: str) -> Any:
    for item in node.get("inputs") or []:
        if isinstance(item, dict) and item.get("key") == key:
            return item.get("value")
    return None


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def message_text(message: Any) -> str:
    """The text of an OpenAI-format message: a string, or the text parts of a list."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def sse(data: str, event: str | None = None) -> bytes:
    return ((f"event: {event}\n" if event else "") + f"data: {data}\n\n").encode()


def gpt_chunk(text: str | None, finish_reason: str | None = None) -> str:
    """textAdaptGptResponse."""
    delta = {} if text is None else {"role": "assistant", "content": text}
    choice = {"delta": delta, "index": 0, "finish_reason": finish_reason}
    return json.dumps(
        {"id": "", "object": "", "created": 0, "model": "", "choices": [choice]},
        ensure_ascii=False,
        separators=(",", ":"),
    )


class Chat:
    def __init__(self, app: FastGPT) -> None:
        self.app = app
        self.clear()

    def clear(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.share_links: dict[str, dict[str, Any]] = {}

    # Lookups -----------------------------------------------------------------------------------

    def find_app(self, app_id: Any) -> dict[str, Any]:
        if not app_id:
            raise Reject("appUnExist")
        found = self.app.find(self.apps, app_id, "apps")
        if found is None:
            raise Reject("appUnExist")
        return found

    def auth_app(self, request: Request, app_id: Any) -> Cert:
        """authApp with a user token: the caller must be a member and the app must exist."""
        cert = self.app.cert(request, token=True)
        self.app.member(cert.tmb_id)
        with self.app.lock:
            self.find_app(app_id)
        return cert

    def latest(self, app: dict[str, Any]) -> dict[str, Any]:
        """getAppLatestVersion: the newest version row, else the app's own draft."""
        versions = self.versions.get(app["_id"]) or []
        if versions:
            newest = versions[-1]
            return {
                "nodes": newest["nodes"],
                "edges": newest["edges"],
                "chatConfig": newest.get("chatConfig") or app.get("chatConfig") or {},
            }
        return {
            "nodes": app["modules"],
            "edges": app["edges"],
            "chatConfig": app.get("chatConfig") or {},
        }

    # Apps --------------------------------------------------------------------------------------

    def create_app(self, request: Request, body: dict) -> Any:
        name, kind, modules = body.get("name"), body.get("type"), body.get("modules")
        if not name or not kind or not isinstance(modules, list):
            raise Reject("inheritPermissionError")
        cert = self.app.auth_user(request)
        if body.get("parentId"):
            self.auth_app(request, body["parentId"])
        if kind not in APP_TYPES:
            raise Reject(
                f"apps validation failed: type: `{kind}` is not a valid enum value for path `type`."
            )
        with self.app.lock:
            app_id = object_id()
            edges = body.get("edges") if isinstance(body.get("edges"), list) else []
            self.apps[app_id] = {
                "_id": app_id,
                "parentId": body.get("parentId") or None,
                "teamId": cert.team_id,
                "tmbId": cert.tmb_id,
                "name": name,
                "type": kind,
                "version": "v2",
                "avatar": body.get("avatar") or "/icon/logo.svg",
                "intro": "",
                "updateTime": now_iso(),
                "teamTags": [],
                "modules": modules,
                "edges": edges,
                "defaultPermission": 0,
                "inheritPermission": True,
                "__v": 0,
            }
            if kind not in FOLDER_TYPES:
                self._add_version(app_id, modules, edges, None)
            return app_id

    def _add_version(self, app_id: str, nodes: list, edges: list, chat_config: Any) -> None:
        version = {"_id": object_id(), "appId": app_id, "time": now_iso()}
        version.update(nodes=nodes, edges=edges)
        if chat_config is not None:
            version["chatConfig"] = chat_config
        version["__v"] = 0
        self.versions.setdefault(app_id, []).append(version)

    def list_apps(self, request: Request, body: dict) -> Any:
        if body.get("parentId"):
            cert = self.auth_app(request, body["parentId"])
        else:
            cert = self.app.auth_user(request)
        search = body.get("searchKey")
        kinds = body.get("type")
        with self.app.lock:
            found = []
            for item in self.apps.values():
                if item["teamId"] != cert.team_id:
                    continue
                if body.get("getRecentlyChat"):
                    if item["type"] not in ("advanced", "simple", "plugin"):
                        continue
                elif not search:
                    if kinds and item["type"] not in (
                        kinds if isinstance(kinds, list) else [kinds]
                    ):
                        continue
                    if "parentId" in body and item["parentId"] != (body["parentId"] or None):
                        continue
                if search:
                    pattern = re.compile(re.escape(str(search)), re.IGNORECASE)
                    if not (pattern.search(item["name"]) or pattern.search(item["intro"])):
                        continue
                found.append(item)
            found.sort(key=newest_first, reverse=True)
            return [
                {**{k: a[k] for k in APP_LIST_FIELDS if k in a}, "permission": permission()}
                for a in found
            ]

    def app_detail(self, request: Request, body: dict) -> Any:
        app_id = request.query.get("appId")
        self.auth_app(request, app_id)
        with self.app.lock:
            return {**self.find_app(app_id), "permission": permission()}

    def update_app(self, request: Request, body: dict) -> Any:
        app_id = request.query.get("appId")
        self.auth_app(request, app_id)
        with self.app.lock:
            app = self.find_app(app_id)
            before = copy.deepcopy(app)
            if "parentId" in body:
                app["parentId"] = body["parentId"] or None
            for name in ("name", "type", "avatar", "teamTags", "edges", "chatConfig"):
                if body.get(name):
                    app[name] = body[name]
            if "intro" in body:
                app["intro"] = body["intro"]
            if body.get("nodes"):
                app["modules"] = body["nodes"]
            # Mongoose's findByIdAndUpdate answers with the document as it was before.
            moved = "parentId" in body or body.get("defaultPermission") is not None
            return None if moved else before

    def publish_app(self, request: Request, body: dict) -> Any:
        app_id = request.query.get("appId")
        self.auth_app(request, app_id)
        nodes = body.get("nodes") or []
        edges = body.get("edges") or []
        chat_config = body.get("chatConfig")
        with self.app.lock:
            app = self.find_app(app_id)
            self._add_version(app_id, nodes, edges, chat_config)
            app.update(modules=nodes, edges=edges, updateTime=now_iso(), version="v2")
            if chat_config is not None:
                app["chatConfig"] = chat_config
            if body.get("type"):
                app["type"] = body["type"]
        return {}

    def latest_version(self, request: Request, body: dict) -> Any:
        app_id = request.query.get("appId")
        self.auth_app(request, app_id)
        with self.app.lock:
            return self.latest(self.find_app(app_id))

    def list_versions(self, request: Request, body: dict) -> Any:
        """version/list: a page of an app's versions, newest first. V488 checks no auth here."""
        current, page_size = body.get("current"), body.get("pageSize")
        with self.app.lock:
            versions = list(reversed(self.versions.get(body.get("appId"), [])))
        if _whole_number(current) and _whole_number(page_size):
            start = max(current - 1, 0) * page_size
            page = versions[start : start + page_size] if page_size > 0 else versions[start:]
        else:
            page = versions
        return {"total": len(versions), "list": page}

    def delete_app(self, request: Request, body: dict) -> Any:
        app_id = request.query.get("appId")
        if not app_id:
            raise Reject("参数错误")
        self.auth_app(request, app_id)
        with self.app.lock:
            doomed = {app_id}
            while True:
                children = {a["_id"] for a in self.apps.values() if a["parentId"] in doomed}
                if children <= doomed:
                    break
                doomed |= children
            for gone in doomed:
                self.apps.pop(gone, None)
                self.versions.pop(gone, None)
            for link_id in [x["_id"] for x in self.share_links.values() if x["appId"] in doomed]:
                del self.share_links[link_id]
        return None

    # Share links -------------------------------------------------------------------------------

    def create_share_link(self, request: Request, body: dict) -> Any:
        cert = self.auth_app(request, body.get("appId"))
        missing = [name for name in ("type", "name") if not body.get(name)]
        if missing:
            raise required_error("outlinks", missing)
        limit = body.get("limit") if isinstance(body.get("limit"), dict) else {}
        with self.app.lock:
            share_id = "".join(
                random.choice(string.ascii_lowercase + string.digits) for _ in range(24)
            )
            link = {
                "_id": object_id(),
                "shareId": share_id,
                "teamId": cert.team_id,
                "tmbId": cert.tmb_id,
                "appId": body["appId"],
                "type": body["type"],
                "name": body["name"],
                "usagePoints": 0,
                "responseDetail": bool(body.get("responseDetail", False)),
                "limit": {"maxUsagePoints": -1, "QPM": 1000, **limit},
                **{k: body[k] for k in ("immediateResponse", "defaultResponse") if k in body},
                "__v": 0,
            }
            self.share_links[link["_id"]] = link
            return share_id

    def list_share_links(self, request: Request, body: dict) -> Any:
        app_id = request.query.get("appId")
        self.auth_app(request, app_id)
        kind = request.query.get("type")
        with self.app.lock:
            # find({appId, type}): a missing type is matched as null, so nothing is listed (K9).
            found = [
                link
                for link in self.share_links.values()
                if link["appId"] == app_id and link["type"] == kind
            ]
            return sorted(found, key=lambda link: link["_id"], reverse=True)

    def _own_link(self, request: Request, link_id: Any) -> dict[str, Any]:
        """authOutLinkCrud."""
        cert = self.app.cert(request, token=True)
        link = self.app.find(self.share_links, link_id, "outlinks")
        if link is None or link["teamId"] != cert.team_id:
            raise Reject("outlinkUnExist")
        self.find_app(link["appId"])
        return link

    def update_share_link(self, request: Request, body: dict) -> Any:
        if not body.get("_id"):
            raise Reject("missingParams")
        with self.app.lock:
            link = self._own_link(request, body["_id"])
            for name in ("name", "responseDetail"):
                if name in body:
                    link[name] = body[name]
            if isinstance(body.get("limit"), dict):
                link["limit"] = {"maxUsagePoints": -1, "QPM": 1000, **body["limit"]}
        return {}

    def delete_share_link(self, request: Request, body: dict) -> Any:
        with self.app.lock:
            link = self._own_link(request, request.query.get("id"))
            del self.share_links[link["_id"]]
        return {}

    def _valid_link(self, share_id: Any) -> dict[str, Any]:
        """authOutLinkValid."""
        link = next(
            (x for x in self.share_links.values() if share_id and x["shareId"] == share_id), None
        )
        if link is None:
            raise Reject("linkUnInvalid")
        return link

    def share_link_init(self, request: Request, body: dict) -> Any:
        if not request.query.get("outLinkUid"):
            raise Reject("linkUnInvalid")
        with self.app.lock:
            link = self._valid_link(request.query.get("shareId"))
            app = self.apps.get(link["appId"])
            if app is None:
                raise Reject("appUnExist")
            latest = self.latest(app)
            guide = next((n for n in latest["nodes"] if n.get("flowNodeType") == "userGuide"), {})
            chat_config = {
                "welcomeText": node_input(guide, "welcomeText") or "",
                "variables": node_input(guide, "variables") or [],
                **latest["chatConfig"],
            }
            models = [
                node_input(n, "model")
                for n in latest["nodes"]
                if n.get("flowNodeType") in ("chatNode", "tools") and node_input(n, "model")
            ]
            return {
                "chatId": request.query.get("chatId"),
                "appId": app["_id"],
                "title": "新对话",
                "userAvatar": "/icon/human.svg",
                "variables": {},
                "history": [],
                "app": {
                    "chatConfig": chat_config,
                    "chatModels": models,
                    "name": app["name"],
                    "avatar": app["avatar"],
                    "intro": app["intro"],
                    "type": app["type"],
                    "pluginInputs": [],
                },
            }

    # /api/v1/chat/completions ------------------------------------------------------------------

    def completions(self, request: Request, body: dict) -> Any:
        stream = bool(body.get("stream", False))
        try:
            return self._complete(request, body, stream)
        except Reject as error:
            if not stream:
                raise
            key = str(error)
            if key in NAMED_ERRORS:
                code, message = NAMED_ERRORS[key]
                payload = {"code": code, "statusText": key, "message": message, "data": None}
            else:
                payload = {"message": key}
            chunk = sse(json.dumps(payload, ensure_ascii=False), "error")
            return Response(200, b"", [], chunks=iter([chunk]))

    def _chat_app(self, request: Request, body: dict) -> tuple[dict[str, Any], bool]:
        """The app to run and whether a streamed `detail` answer ends with the node results
        (a share link's responseDetail; always for a key or a user token)."""
        share_id, uid = body.get("shareId"), body.get("outLinkUid")
        if share_id and uid:
            with self.app.lock:
                link = self._valid_link(share_id)
                app = self.apps.get(link["appId"])
            if app is None:
                raise Reject("app is empty")
            return app, link["responseDetail"]
        cert = self.app.cert(request, token=True, api_key=True)
        if cert.auth_type == "apikey":
            if not cert.app_id:
                raise Reject(
                    "Key is error. You need to use the app key rather than the account key."
                )
            with self.app.lock:
                app = self.app.find(self.apps, cert.app_id, "apps")
            if app is None:
                raise Reject("app is empty")
            return app, True
        if not body.get("appId"):
            raise Reject("appId is empty")
        self.auth_app(request, body["appId"])
        with self.app.lock:
            return self.find_app(body["appId"]), True

    def _complete(self, request: Request, body: dict, stream: bool) -> Any:
        messages = body.get("messages", [])
        if not isinstance(messages, list):
            raise Reject("messages is not array")
        app, show_detail = self._chat_app(request, body)
        if not messages:
            raise Reject("messages is empty")
        question = message_text(messages[-1])
        with self.app.lock:
            nodes = self.latest(app)["nodes"]
            dataset_ids = [
                entry.get("datasetId")
                for node in nodes
                if node.get("flowNodeType") == "datasetSearchNode"
                for entry in node_input(node, "datasets") or []
                if isinstance(entry, dict)
            ]
            quotes = self.app.knowledge.best_chunks(dataset_ids, question)
            chat_node = next((n for n in nodes if n.get("flowNodeType") == "chatNode"), None)
            model = self.app.llm_model(node_input(chat_node, "model") if chat_node else None)
        best = quotes[0] if quotes else None
        answer = "\n".join(filter(None, [best["q"], best["a"]])) if best else NO_MATCH_ANSWER
        detail = bool(body.get("detail", False))
        response_data = [
            {
                "moduleName": "知识库搜索",
                "moduleType": "datasetSearchNode",
                "query": question,
                "quoteList": [self.app.knowledge.quote(q) for q in quotes],
            },
            {
                "moduleName": "AI 对话",
                "moduleType": "chatNode",
                "model": (model or {}).get("name", ""),
                "query": question,
                "textOutput": answer,
            },
        ]
        if stream:
            return self._stream(answer, detail, response_data if show_detail else None)
        return json_response(
            {
                **({"responseData": response_data, "newVariables": {}} if detail else {}),
                "id": body.get("chatId") or "",
                "model": "",
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 1},
                "choices": [
                    {
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                        "index": 0,
                    }
                ],
            }
        )

    @staticmethod
    def _stream(answer: str, detail: bool, response_data: list | None) -> Response:
        event = "answer" if detail else None

        def events() -> Iterator[bytes]:
            for piece in re.findall(r"\S+\s*|\s+", answer):
                yield sse(gpt_chunk(piece), event)
            yield sse(gpt_chunk(None, "stop"), event)
            yield sse("[DONE]", event)
            if detail and response_data is not None:
                yield sse(dump_json(response_data).decode(), "flowResponses")

        return Response(200, b"", list(SSE_HEADERS), chunks=events())
