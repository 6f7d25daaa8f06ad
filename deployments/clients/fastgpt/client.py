"""The panel's one client for FastGPT's HTTP API (V4.8.8).

FastGPT wraps answers in `{code, statusText, message, data}` and reports named errors with
HTTP 200 and a `code` other than 200, so success is read from the body. Chat completions are
the exception: a success is the bare OpenAI-style body, an error is the envelope.

The credential is root's JWT from `login`, sent as the `token` header. The client keeps no
cookies and sends no `Authorization` header: on routes that take API keys any Authorization
wins over the token, and a refused token also clears FastGPT's cookie (K11).
"""

import hashlib
import json
import mimetypes
import pathlib
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

import httpx

from .errors import (
    DATASET_LIMIT_CODE,
    DATASET_LIMIT_STATUS,
    REASONS,
    DatasetLimitReached,
    FastGPTError,
)
from .graph import AppGraph
from .results import (
    ChatAnswer,
    Collection,
    CreateResult,
    SearchHit,
    chat_answer,
    collection,
    create_result,
    search_hit,
)

REDACTED = "***"
ROOT_USERNAME = "root"
TRAINING_TYPES = ("chunk", "qa")  # `auto` is in FastGPT's commercial build only
SEARCH_MODES = ("embedding", "fullTextRecall", "mixedRecall")
COLLECTION_PAGE_SIZE = 30  # the most collection/list gives per page
VERSION_PAGE_SIZE = 30
UPLOAD_READ_BYTES = 1024 * 1024
# Answers a proxy or a restarting FastGPT gives; asking again later may get a real one.
RETRYABLE_STATUSES = (408, 429, 502, 503, 504)


def share_url(public_base: str, share_id: str) -> str:
    """The public page of a share link: <base>/chat/share?shareId=<id>."""
    return f"{public_base.rstrip('/')}/chat/share?{urlencode({'shareId': share_id})}"


def uri_component(name: str) -> str:
    """JavaScript's encodeURIComponent, which FastGPT undoes on uploaded file names (K6)."""
    return quote(name, safe="")


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("A share link's expiry needs a time zone (an aware datetime).")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _training_fields(
    training_type: str, chunk_size: int, chunk_splitter: str, qa_prompt: str
) -> dict[str, Any]:
    """The chunking settings every collection create takes."""
    if training_type not in TRAINING_TYPES:
        raise ValueError(
            f"FastGPT's community edition trains with {' or '.join(TRAINING_TYPES)}, "
            f"not {training_type!r}."
        )
    if chunk_size <= 0:
        raise ValueError(f"A chunk size must be positive, not {chunk_size}.")
    return {
        "trainingType": training_type,
        "chunkSize": chunk_size,
        "chunkSplitter": chunk_splitter,
        "qaPrompt": qa_prompt,
    }


class _LargeReads:
    """A file whose reads are at least `block` bytes.

    httpx sends a multipart file in reads of 64 KiB; for a file of hundreds of megabytes that
    is thousands of small reads and writes, and the upload went a fifth slower than the same
    file sent by curl. The length stays known (fileno), so the body is not chunked.
    """

    def __init__(self, stream: BinaryIO, block: int) -> None:
        self._stream = stream
        self._block = block

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size if size < 0 else max(size, self._block))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def fileno(self) -> int:
        return self._stream.fileno()


def _no_cookies() -> CookieJar:
    """A jar that refuses every cookie, so FastGPT's Set-Cookie is never sent back."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class FastGPTClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30,
        upload_timeout: float = 600,
        chat_timeout: float = 300,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # Uploads and text imports are read, split and queued before FastGPT answers.
        self.upload_timeout = upload_timeout
        # An answer waits for the knowledge base search and the whole LLM reply.
        self.chat_timeout = chat_timeout
        self.token = token
        # Secrets this client has handled, kept out of every error message it raises.
        self._secrets: set[str] = {token} if token else set()
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, cookies=_no_cookies()
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "FastGPTClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Plumbing ------------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _error(self, message: str, **kwargs: Any) -> FastGPTError:
        return FastGPTError(self._redact(message), **kwargs)

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        """One request with the token header; transport failures become retryable errors."""
        headers = {"token": self.token} if self.token else {}
        where = f"{method} {path}"
        try:
            return self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            seconds = kwargs.get("timeout", self.timeout)
            raise self._error(
                f"FastGPT at {self.base_url} did not answer within {seconds} seconds when asked "
                f"to {what} ({where}).",
                permanent=False,
            ) from None
        except httpx.HTTPError as error:
            reason = str(error) or type(error).__name__
            raise self._error(
                f"Could not reach FastGPT at {self.base_url} to {what} ({where}): {reason}.",
                permanent=False,
            ) from None

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _refusal(self, response: httpx.Response, body: Any, what: str) -> FastGPTError:
        """The error for an answer that is not a success, in FastGPT's words where it has any."""
        where = f"{response.request.method} {response.request.url.path}"
        status = response.status_code
        if not isinstance(body, dict) or "code" not in body:
            snippet = response.text[:200]
            return self._error(
                f"FastGPT at {self.base_url} answered {where} with HTTP {status} and no "
                f"FastGPT answer ({snippet!r}), so the panel could not {what}.",
                permanent=status < 500 and status not in RETRYABLE_STATUSES,
            )
        code = body.get("code")
        status_text = str(body.get("statusText") or "") or None
        if status_text == DATASET_LIMIT_STATUS or code == DATASET_LIMIT_CODE:
            return DatasetLimitReached(self.base_url)
        said = str(body.get("message") or "")
        reason = REASONS.get(status_text or "")
        if reason:
            reason += f" (FastGPT said: {said!r})" if said else ""
        else:
            reason = said or status_text or "no reason given"
        return self._error(
            f"FastGPT at {self.base_url} could not {what}: {reason} "
            f"({where}, HTTP {status}, code {code}).",
            permanent=status not in RETRYABLE_STATUSES,
            code=code if isinstance(code, int) else None,
            status_text=status_text,
        )

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One request whose envelope must say `code: 200`; its `data`."""
        response = self._send(method, path, what, **kwargs)
        body = self._json(response)
        if response.is_success and isinstance(body, dict) and body.get("code") == 200:
            return body.get("data")
        raise self._refusal(response, body, what)

    # System and login ----------------------------------------------------------------------------

    def init_data(self) -> dict[str, Any]:
        """GET /api/common/system/getInitData: no login needed; the models FastGPT loaded from
        config.json (llmModels, vectorModels, reRankModels) and its systemVersion. The first
        call after a start also runs FastGPT's lazy init, so it may take a while."""
        return self._call("GET", "/api/common/system/getInitData", "report its models")

    def login(self, password: str, username: str = ROOT_USERNAME) -> str:
        """Log in with a password (sent as its sha256 hex, as FastGPT's web client does); the
        token authenticates this client's later calls and is returned."""
        hashed = hashlib.sha256(password.encode()).hexdigest()
        self._secrets.update(secret for secret in (password, hashed) if secret)
        data = self._call(
            "POST",
            "/api/support/user/account/loginByPassword",
            f"log in as {username!r}",
            json={"username": username, "password": hashed},
        )
        token = data.get("token") if isinstance(data, dict) else None
        if not token:
            raise self._error(
                f"FastGPT at {self.base_url} accepted the login as {username!r} but gave no token."
            )
        self.token = str(token)
        self._secrets.add(self.token)
        return self.token

    # API keys ------------------------------------------------------------------------------------

    def create_api_key(self, name: str, app_id: str | None = None) -> str:
        """A new account key, or an app key (the one chat completions take) with `app_id`."""
        body: dict[str, Any] = {"name": name}
        if app_id:
            body["appId"] = app_id
        key = self._call(
            "POST", "/api/support/openapi/create", f"create API key {name!r}", json=body
        )
        self._secrets.add(str(key))
        return str(key)

    def api_keys(self, app_id: str | None = None) -> list[dict[str, Any]]:
        """The account keys, or one app's keys; each key shows only its last 4 characters."""
        params = {"appId": app_id} if app_id else {}
        return self._call("GET", "/api/support/openapi/list", "list API keys", params=params) or []

    def delete_api_key(self, key_id: str) -> None:
        self._call(
            "DELETE", "/api/support/openapi/delete", "delete an API key", params={"id": key_id}
        )

    # Knowledge bases -----------------------------------------------------------------------------

    def create_dataset(
        self, name: str, *, vector_model: str, agent_model: str, intro: str = ""
    ) -> str:
        """A new knowledge base; its id.

        Both models are sent: FastGPT's default agent model is llmModels[0] whatever it is for
        (K1). V488 ignores `intro` on create, so an intro is set by an update right after.
        """
        body = {
            "name": name,
            "type": "dataset",
            "vectorModel": vector_model,
            "agentModel": agent_model,
        }
        dataset_id = str(
            self._call(
                "POST", "/api/core/dataset/create", f"create knowledge base {name!r}", json=body
            )
        )
        if intro:
            self.update_dataset(dataset_id, intro=intro)
        return dataset_id

    def update_dataset(self, dataset_id: str, **fields: Any) -> None:
        """Change a knowledge base: name, intro, avatar (FastGPT's field names)."""
        self._call(
            "PUT",
            "/api/core/dataset/update",
            f"update knowledge base {dataset_id}",
            json={"id": dataset_id, **fields},
        )

    def datasets(self) -> list[dict[str, Any]]:
        """Every knowledge base and folder, at every level (no parentId, K3), newest first."""
        return self._call("POST", "/api/core/dataset/list", "list knowledge bases", json={}) or []

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._call(
            "GET",
            "/api/core/dataset/detail",
            f"read knowledge base {dataset_id}",
            params={"id": dataset_id},
        )

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a knowledge base with its documents, chunks and vectors."""
        self._call(
            "DELETE",
            "/api/core/dataset/delete",
            f"delete knowledge base {dataset_id}",
            params={"id": dataset_id},
        )

    # Documents (collections) ---------------------------------------------------------------------

    def upload_file(
        self,
        dataset_id: str,
        path: pathlib.Path,
        filename: str,
        *,
        training_type: str = "chunk",
        chunk_size: int = 512,
        chunk_splitter: str = "",
        qa_prompt: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> CreateResult:
        """Upload a file as a new document named `filename`, streamed from disk.

        The name is sent URI-encoded, which FastGPT decodes: a raw `%` or non-ASCII name would
        hang the request or come out garbled (K6). Metadata goes in `collectionMetadata`, the
        only place localFile keeps it (K4).
        """
        data = {
            "datasetId": dataset_id,
            "parentId": None,
            **_training_fields(training_type, chunk_size, chunk_splitter, qa_prompt),
            "collectionMetadata": metadata or {},
        }
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        with pathlib.Path(path).open("rb") as stream:
            # Read and sent a block at a time: never all in memory.
            body = _LargeReads(stream, UPLOAD_READ_BYTES)
            result = self._call(
                "POST",
                "/api/core/dataset/collection/create/localFile",
                f"upload {filename!r}",
                data={"data": json.dumps(data)},
                files={"file": (uri_component(filename), body, content_type)},
                timeout=self.upload_timeout,
            )
        return create_result(result)

    def create_text(
        self,
        dataset_id: str,
        name: str,
        text: str,
        *,
        training_type: str = "chunk",
        chunk_size: int = 512,
        chunk_splitter: str = "",
        qa_prompt: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> CreateResult:
        """A new document from plain text (FastGPT takes up to 10 MB of JSON)."""
        body = {
            "datasetId": dataset_id,
            "parentId": None,
            "name": name,
            "text": text,
            **_training_fields(training_type, chunk_size, chunk_splitter, qa_prompt),
            "metadata": metadata or {},
        }
        result = self._call(
            "POST",
            "/api/core/dataset/collection/create/text",
            f"add text {name!r}",
            json=body,
            timeout=self.upload_timeout,
        )
        return create_result(result)

    def create_link(
        self,
        dataset_id: str,
        link: str,
        *,
        training_type: str = "chunk",
        chunk_size: int = 512,
        chunk_splitter: str = "",
        qa_prompt: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> CreateResult:
        """A new document from a web page, which FastGPT fetches before it answers; the answer
        counts only the inserted chunks (K7)."""
        body = {
            "datasetId": dataset_id,
            "parentId": None,
            "link": link,
            **_training_fields(training_type, chunk_size, chunk_splitter, qa_prompt),
            "metadata": metadata or {},
        }
        result = self._call(
            "POST",
            "/api/core/dataset/collection/create/link",
            f"add the web page {link!r}",
            json=body,
            timeout=self.upload_timeout,
        )
        return create_result(result)

    def collections(self, dataset_id: str) -> list[Collection]:
        """Every document at the top of a knowledge base, with training counters, newest first;
        read page by page (FastGPT gives at most 30 per page)."""
        # By id: a document added while paging shifts the pages and shows one row twice.
        found: dict[Any, Collection] = {}
        page = 1
        while True:
            body = {
                "datasetId": dataset_id,
                "parentId": None,
                "pageNum": page,
                "pageSize": COLLECTION_PAGE_SIZE,
                "simple": False,
            }
            data = self._call(
                "POST",
                "/api/core/dataset/collection/list",
                f"list the documents of knowledge base {dataset_id}",
                json=body,
            )
            rows = [row for row in data.get("data") or [] if isinstance(row, dict)]
            found.update((row.get("_id"), collection(row)) for row in rows)
            if not rows or len(found) >= int(data.get("total") or 0):
                return list(found.values())
            page += 1

    def delete_collection(self, collection_id: str) -> None:
        """Delete a document with its chunks, vectors and file."""
        self._call(
            "DELETE",
            "/api/core/dataset/collection/delete",
            f"delete document {collection_id}",
            params={"id": collection_id},
        )

    def training_queue(self, dataset_id: str) -> int:
        """How many chunks of a knowledge base still wait to be trained (0: all done)."""
        data = self._call(
            "GET",
            "/api/core/dataset/training/getDatasetTrainingQueue",
            f"read the training queue of knowledge base {dataset_id}",
            params={"datasetId": dataset_id},
        )
        return int(data.get("rebuildingCount") or 0) + int(data.get("trainingCount") or 0)

    def search_test(
        self,
        dataset_id: str,
        text: str,
        *,
        limit: int = 1500,
        similarity: float = 0,
        search_mode: str = "embedding",
        using_rerank: bool = False,
    ) -> list[SearchHit]:
        """Search a knowledge base as an app would; `limit` is a token budget for the hits."""
        if search_mode not in SEARCH_MODES:
            raise ValueError(f"FastGPT searches by {', '.join(SEARCH_MODES)}, not {search_mode!r}.")
        body = {
            "datasetId": dataset_id,
            "text": text,
            "limit": limit,
            "similarity": similarity,
            "searchMode": search_mode,
            "usingReRank": using_rerank,
        }
        data = self._call(
            "POST",
            "/api/core/dataset/searchTest",
            f"search knowledge base {dataset_id}",
            json=body,
        )
        items = data.get("list") if isinstance(data, dict) else None
        return [search_hit(item) for item in items or [] if isinstance(item, dict)]

    # Apps ----------------------------------------------------------------------------------------

    def create_app(self, name: str, graph: AppGraph) -> str:
        """A new app running `graph`; its id. V488 takes no chatConfig on create and writes the
        first version at once, so the app answers straight away with the settings of the graph's
        system-config node; publish to store chatConfig too."""
        body = {
            "name": name,
            "type": graph.type,
            "modules": graph.nodes,
            "edges": graph.edges,
        }
        return str(self._call("POST", "/api/core/app/create", f"create app {name!r}", json=body))

    def apps(self) -> list[dict[str, Any]]:
        """The team's apps at the top level, as FastGPT lists them ({_id, name, ...})."""
        data = self._call("POST", "/api/core/app/list", "list apps", json={})
        return [app for app in data or [] if isinstance(app, dict)]

    def rename_app(self, app_id: str, name: str) -> None:
        """Change the app's name. Only the name is sent, so the draft's graph stays, and chat
        runs the published versions anyway."""
        self._call(
            "PUT",
            "/api/core/app/update",
            f"rename app {app_id}",
            params={"appId": app_id},
            json={"name": name},
        )

    def publish_app(self, app_id: str, graph: AppGraph) -> None:
        """Make `graph` the version chat and share links run. Always the whole graph: a publish
        without nodes stores an empty one that chat then runs (K8)."""
        body = {
            "type": graph.type,
            "nodes": graph.nodes,
            "edges": graph.edges,
            "chatConfig": graph.chat_config,
        }
        self._call(
            "POST",
            "/api/core/app/version/publish",
            f"publish app {app_id}",
            params={"appId": app_id},
            json=body,
        )

    def app_versions(self, app_id: str) -> list[dict[str, Any]]:
        """Every published version of an app, newest first."""
        found: dict[Any, dict[str, Any]] = {}  # by id, as for documents
        page = 1
        while True:
            body = {"appId": app_id, "current": page, "pageSize": VERSION_PAGE_SIZE}
            data = self._call(
                "POST",
                "/api/core/app/version/list",
                f"list the versions of app {app_id}",
                json=body,
            )
            rows = [row for row in data.get("list") or [] if isinstance(row, dict)]
            found.update((row.get("_id"), row) for row in rows)
            if not rows or len(found) >= int(data.get("total") or 0):
                return list(found.values())
            page += 1

    def delete_app(self, app_id: str) -> None:
        """Delete an app with its versions and share links."""
        self._call("DELETE", "/api/core/app/del", f"delete app {app_id}", params={"appId": app_id})

    def chat(self, app_id: str, question: str, *, chat_id: str | None = None) -> ChatAnswer:
        """Ask an app one question with the user token; the answer and its quotes.

        Without `chat_id` nothing is stored and there is no history.
        """
        body: dict[str, Any] = {
            "appId": app_id,
            "stream": False,
            "detail": True,
            "messages": [{"role": "user", "content": question}],
        }
        if chat_id:
            body["chatId"] = chat_id
        what = f"answer a question with app {app_id}"
        response = self._send(
            "POST", "/api/v1/chat/completions", what, json=body, timeout=self.chat_timeout
        )
        answer = self._json(response)
        # A success is the bare completion; only errors come in the envelope.
        if response.is_success and isinstance(answer, dict) and "choices" in answer:
            return chat_answer(answer)
        raise self._refusal(response, answer, what)

    # Share links ---------------------------------------------------------------------------------

    def create_share_link(
        self,
        app_id: str,
        name: str,
        *,
        show_references: bool = False,
        qpm: int = 100,
        expires_at: datetime | None = None,
    ) -> str:
        """A public chat page for an app; its shareId (see `share_url`).

        The community edition stores the limits but does not enforce them.
        """
        limit: dict[str, Any] = {"QPM": qpm, "maxUsagePoints": -1}
        if expires_at is not None:
            limit["expiredTime"] = _iso(expires_at)
        body = {
            "appId": app_id,
            "type": "share",
            "name": name,
            "responseDetail": show_references,
            "limit": limit,
        }
        return str(
            self._call(
                "POST", "/api/support/outLink/create", f"create share link {name!r}", json=body
            )
        )

    def share_links(self, app_id: str) -> list[dict[str, Any]]:
        """An app's share links; without `type` FastGPT would list none (K9)."""
        return (
            self._call(
                "GET",
                "/api/support/outLink/list",
                f"list the share links of app {app_id}",
                params={"appId": app_id, "type": "share"},
            )
            or []
        )

    def delete_share_link(self, link_id: str) -> None:
        """Delete a share link by its `_id`, not its shareId (K9)."""
        self._call(
            "DELETE",
            "/api/support/outLink/delete",
            f"delete share link {link_id}",
            params={"id": link_id},
        )
