"""Vector training that calls the embedding model, as V488's generateVector does.

Only where the environment names the model endpoint (OPENAI_BASE_URL or ONEAPI_URL, as in a
deployed stack): a trainer thread takes the queued chunk-mode rows one at a time and sends each
row's text to `POST {base}/embeddings` (`Authorization: Bearer {CHAT_API_KEY}`, body
`{...defaultConfig, ...dbConfig, model, input: [text]}`) the way the openai 4.53 SDK sends it:
up to three tries, the retries after 0.5 s and 1 s (or Retry-After) on a connection error, 408,
409, 429 or 5xx. A success moves the row out of the queue. A failure prints what V488 prints and
leaves the row locked for the lock time (one minute, STANDIN_TRAINING_RETRY_SECONDS), after which
it is tried again; an `invalid_request_error` (or code 500) locks it for good, as
checkInvalidChunkAndLock does. QA rows are not trained here (knowledge.py times them).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from testkit.standins.fastgpt.common import dump_js, js_inspect, js_truthy

if TYPE_CHECKING:
    from testkit.standins.fastgpt.app import FastGPT

SDK_MAX_RETRIES = 2  # getAIApi passes maxRetries: 2
SDK_TIMEOUT_SECONDS = 600  # the SDK's default; getAIApi passes none for embeddings
SDK_USER_AGENT = "OpenAI/JS 4.53.0"
IDLE_SECONDS = 0.2
AFTER_FAILURE_SECONDS = 1  # setTimeout(generateVector, 1000) after a failed row
DEFAULT_ERROR_TEXT = "向量模型调用失败"
ERROR_NAMES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
_SENSITIVE_LINK = re.compile(r"(https?://)[^\s]+")
_SENSITIVE_NS = re.compile(r"ns-[\w-]+")
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmbeddingFailure(Exception):
    """What getVectorsByText rejects with: an SDK error (`name` is its class) or a string."""

    def __init__(self, message: str, name: str = "", error: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        details = error if isinstance(error, dict) else {}
        self.type = details.get("type")
        self.code = details.get("code")

    @property
    def locks_for_good(self) -> bool:
        """checkInvalidChunkAndLock's test (a JavaScript `=== 500`: a number, not "500")."""
        numeric = isinstance(self.code, int | float) and not isinstance(self.code, bool)
        return (
            self.message == "invalid message format"
            or self.type == "invalid_request_error"
            or (numeric and self.code == 500)
        )

    def inspected(self) -> str:
        """The first line of what console.log prints for it."""
        return f"{self.name}: {self.message}" if self.name else self.message


def replace_sensitive_text(text: str) -> str:
    """replaceSensitiveText: what follows http(s):// and ns-... ids become xxx."""
    return _SENSITIVE_NS.sub("xxx", _SENSITIVE_LINK.sub(r"\1xxx", text))


# The openai 4.53 SDK's request, retries and errors ----------------------------------------------


def embeddings_url(base_url: str) -> str:
    """buildURL: the base and `/embeddings`, one slash dropped where both have one."""
    return (base_url[:-1] if base_url.endswith("/") else base_url) + "/embeddings"


def _should_retry(status: int, headers: Any) -> bool:
    wish = (headers.get("x-should-retry") or "") if headers is not None else ""
    if wish in ("true", "false"):
        return wish == "true"
    return status in (408, 409, 429) or status >= 500


def _retry_delay(headers: Any, retries_left: int) -> float:
    """Retry-After-Ms or Retry-After when under a minute, else 0.5 s doubling, less jitter."""
    millis = None
    if headers is not None:
        millis = _float_or_none(headers.get("retry-after-ms"))
        after = headers.get("retry-after")
        if after and not millis:
            seconds = _float_or_none(after)
            millis = seconds * 1000 if seconds is not None else _date_millis_from_now(after)
    if millis and 0 <= millis < 60_000:
        return millis / 1000
    done = SDK_MAX_RETRIES - retries_left
    return min(0.5 * 2**done, 8.0) * (1 - random.random() * 0.25)  # noqa: S311 - jitter


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _date_millis_from_now(text: str) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return (moment.timestamp() - time.time()) * 1000


def status_error(status: int, raw: bytes) -> EmbeddingFailure:
    """APIError.generate: the message is `status` and the body's `error.message` (or the body)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    body_text = None if js_truthy(parsed) else text
    if isinstance(error, dict) and js_truthy(error.get("message")):
        message = error["message"]
        detail = message if isinstance(message, str) else dump_js(message)
    elif js_truthy(error):
        detail = dump_js(error)
    else:
        detail = body_text
    message = f"{status} {detail}" if detail else f"{status} status code (no body)"
    name = ERROR_NAMES.get(status, "InternalServerError" if status >= 500 else "APIError")
    return EmbeddingFailure(message, name, error)


class EmbeddingClient:
    """`ai.embeddings.create(body)` of the openai SDK, with urllib."""

    def __init__(self, wait: Callable[[float], object]) -> None:
        self._wait = wait

    def create(self, base_url: str, api_key: str, body: dict[str, Any]) -> Any:
        request_body = json.dumps(body, ensure_ascii=False).encode("utf-8")
        retries_left = SDK_MAX_RETRIES
        while True:
            try:
                status, headers, raw = self._post(embeddings_url(base_url), api_key, request_body)
            except (OSError, http.client.HTTPException) as error:
                if retries_left:
                    self._wait(_retry_delay(None, retries_left))
                    retries_left -= 1
                    continue
                raise _connection_error(error) from error
            if 200 <= status < 300:
                return _parse_success(headers, raw)
            if retries_left and _should_retry(status, headers):
                self._wait(_retry_delay(headers, retries_left))
                retries_left -= 1
                continue
            raise status_error(status, raw)

    @staticmethod
    def _post(url: str, api_key: str, body: bytes) -> tuple[int, Any, bytes]:
        request = urllib.request.Request(  # noqa: S310 - the configured model endpoint
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {api_key}",
                "User-Agent": SDK_USER_AGENT,
            },
        )
        try:
            with _opener.open(request, timeout=SDK_TIMEOUT_SECONDS) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()


def _connection_error(error: Exception) -> EmbeddingFailure:
    reason = getattr(error, "reason", error)
    if isinstance(error, TimeoutError) or isinstance(reason, TimeoutError):
        return EmbeddingFailure("Request timed out.", "APIConnectionTimeoutError")
    return EmbeddingFailure("Connection error.", "APIConnectionError")


def _parse_success(headers: Any, raw: bytes) -> Any:
    """The SDK parses a JSON content type and hands anything else back as text."""
    text = raw.decode("utf-8", errors="replace")
    if "application/json" not in (headers.get("content-type") or "").lower():
        return text
    try:
        return json.loads(text)
    except ValueError as error:
        raise EmbeddingFailure(str(error), "SyntaxError") from error


# The trainer -------------------------------------------------------------------------------------


class VectorTrainer:
    """generateVector in one worker: queued chunk rows, one at a time, oldest first."""

    def __init__(self, app: FastGPT, retry_seconds: float) -> None:
        self.app = app
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._client = EmbeddingClient(self._stop.wait)
        self._thread = threading.Thread(target=self._run, name="fastgpt-vector", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        busy = False
        while not self._stop.is_set():
            row = self.app.knowledge.take_vector_row(self.retry_seconds)
            if row is None:
                if busy:
                    self.app.add_log.info("[Vector Queue] Done")
                busy = False
                self._stop.wait(IDLE_SECONDS)
                continue
            busy = True
            self._train(row)

    def _train(self, row: dict[str, Any]) -> None:
        log = self.app.add_log
        log.info("[Vector Queue] Start")
        started = time.monotonic()
        try:
            self._embed(row)
        except EmbeddingFailure as failure:
            self._report(failure)
            if failure.locks_for_good:
                self.app.knowledge.lock_row_for_good(row)
                log.info("Lock training data")
                print(failure.inspected(), flush=True)
            else:
                self._stop.wait(AFTER_FAILURE_SECONDS)
            return
        self.app.knowledge.mark_trained(row)
        log.info("[Vector Queue] Finish", {"time": round((time.monotonic() - started) * 1000)})

    def _embed(self, row: dict[str, Any]) -> None:
        """insertData2Dataset's default index: `q`, or `q\\na` when there is an answer."""
        model = self.app.vector_model(row["model"]) or {}
        text = f"{row['q']}\n{row['a']}".strip() if row["a"] else row["q"]
        body = {
            **(model.get("defaultConfig") or {}),
            **(model.get("dbConfig") or {}),
            "model": model.get("model"),
            "input": [text],
        }
        base_url, api_key = self.app.model_endpoint()
        try:
            result = self._client.create(base_url, api_key, body)
            check_embedding(result, self.app.add_log)
        except EmbeddingFailure as failure:
            print(f"Embedding Error {failure.inspected()}", flush=True)
            raise

    def _report(self, failure: EmbeddingFailure) -> None:
        """checkInvalidChunkAndLock's log: getErrText prints `error => ...`, then addLog.error."""
        message = failure.message or DEFAULT_ERROR_TEXT
        print(f"error => {message}", flush=True)
        self.app.add_log.error(
            replace_sensitive_text(message),
            {"message": failure.message, "stack": failure.inspected() if failure.name else None},
        )


def check_embedding(result: Any, add_log: Any) -> None:
    """getVectorsByText's checks of an answer: `data`, then `data[0].embedding`."""
    data = result.get("data") if isinstance(result, dict) else None
    if not js_truthy(data):
        add_log.error("Embedding API is not responding", {"message": js_inspect(result)})
        raise EmbeddingFailure("Embedding API is not responding")
    first = data[0] if isinstance(data, list) and data else None
    if not (isinstance(first, dict) and js_truthy(first.get("embedding"))):
        err = data.get("err") if isinstance(data, dict) else None
        message = err.get("message") if isinstance(err, dict) else None
        shown = message if isinstance(message, str) and message else "Embedding API Error"
        raise EmbeddingFailure(shown)
