"""The panel's one Xinference client: auth, model registrations, launches and a few calls.

Synchronous httpx, because it runs inside Celery pipeline steps. Launches never block: the
server is asked with `wait_ready=false`, answers with the uid at once, and the caller polls
`instance_status()` (and `progress()`) until the instance is READY or has failed. A launch
that fails after it was accepted (an unknown model name, weights that do not load, a cancel)
shows up only there, as status ERROR with the replica's error message when it has one.

Servers from 3.0 on have authentication on by default: the first admin is created with a setup
token the server prints in its log, then `POST /token` gives a bearer token (valid for 30
minutes on 4.1: log in again per pipeline step rather than keeping one).
"""

import json
import re
from dataclasses import dataclass

import httpx

DEFAULT_TIMEOUT = 30
# Answers from a model on a busy or CPU-only server can take minutes.
INFERENCE_TIMEOUT = 300
# Cancelling waits on the server until the launch has unwound (60 s there by default).
CANCEL_TIMEOUT = 90

READY = "READY"
ERROR = "ERROR"
# Statuses of an instance that is still on its way to READY or ERROR.
LAUNCHING = frozenset({"CREATING", "LOADING", "UPDATING"})

# Statuses after which the same request may well succeed later.
TRANSIENT_STATUS_CODES = frozenset({408, 429, 502, 503, 504})
DETAIL_CHARS = 500
# Xinference prefixes errors raised inside its actors with the actor's address.
ACTOR_PREFIX = re.compile(r"\[address=[^\]]*\]\s*")


class XinferenceError(Exception):
    """A request to Xinference that failed, told as a sentence a user can read.

    `status_code` is the HTTP status when the server answered; `permanent` is False when
    trying again later may help (unreachable, timeouts, overloaded).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        permanent: bool = True,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.permanent = permanent
        self.timed_out = timed_out


@dataclass(frozen=True)
class AuthState:
    enabled: bool
    # Auth is on and no account exists yet: `setup_admin` must come first.
    needs_setup: bool


@dataclass(frozen=True)
class LaunchProgress:
    progress: float  # 0 to 1
    stage: str


@dataclass(frozen=True)
class InstanceStatus:
    uid: str
    model_name: str
    status: str  # CREATING, LOADING, READY, ERROR, TERMINATING, ...
    error: str | None  # the first replica's error message, when it failed with one

    @property
    def ready(self) -> bool:
        return self.status == READY

    @property
    def failed(self) -> bool:
        return self.status == ERROR

    def raise_for_error(self) -> None:
        """Raise XinferenceError when this launch has failed."""
        if not self.failed:
            return
        reason = self.error or (
            "Xinference gave no reason (a cancelled launch looks the same; its log may say more)"
        )
        raise XinferenceError(
            f"Xinference could not launch model {self.model_name!r} as {self.uid!r}: {reason}."
        )


class XinferenceClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "XinferenceClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # Server and authentication -------------------------------------------------------------

    def status(self) -> dict:
        """GET /status: uptime and workers. Answers without a login."""
        return self._request("GET", "/status", "report its status")

    def model_requests(self) -> float:
        """How many requests Xinference's API has received for its models since it started.

        Read from its Prometheus endpoint, GET /metrics (no login needed): the HTTP middleware's
        `requests_total_counter`, one series per method and route, summed over the routes that
        use a model (chat, completions, embeddings, rerank, audio, images, ...). The panel's own
        calls (status, model lists) are other routes and never move it.
        """
        try:
            response = self._http.get("/metrics", timeout=self.timeout)
        except httpx.HTTPError as error:
            raise XinferenceError(
                f"Could not reach Xinference at {self._where()} to read its metrics "
                f"(GET /metrics): {type(error).__name__}.",
                permanent=False,
            ) from None
        if not response.is_success:
            raise XinferenceError(
                f"Xinference could not report its metrics (GET /metrics, HTTP "
                f"{response.status_code}); XINFERENCE_DISABLE_METRICS may be set on the server.",
                status_code=response.status_code,
                permanent=response.status_code not in TRANSIENT_STATUS_CODES,
            )
        return model_requests_in(response.text)

    def auth_state(self) -> AuthState:
        """Whether auth is on and whether the first admin still has to be set up."""
        try:
            enabled = bool(self._request("GET", "/v1/cluster/auth", "report its auth mode")["auth"])
        except XinferenceError as error:
            if error.status_code != 404:
                raise
            enabled = False
        if not enabled:
            return AuthState(enabled=False, needs_setup=False)
        try:
            setup = self._request("GET", "/v1/admin/setup/status", "report its setup state")
        except XinferenceError as error:
            # Auth from a config file (before 3.0) has accounts from the start.
            if error.status_code != 404:
                raise
            return AuthState(enabled=True, needs_setup=False)
        return AuthState(enabled=True, needs_setup=bool(setup.get("needs_setup")))

    def setup_admin(self, setup_token: str, username: str, password: str) -> None:
        """Create the first admin, with the setup token the server printed in its log."""
        self._request(
            "POST",
            "/v1/admin/setup",
            f"create the admin account {username!r}",
            json={"setup_token": setup_token, "username": username, "password": password},
            secrets=(setup_token, password),
        )

    def login(self, username: str, password: str) -> str:
        """Log in; the access token is returned and sent with every later call."""
        answer = self._request(
            "POST",
            "/token",
            f"log in as {username!r}",
            json={"username": username, "password": password},
            secrets=(password,),
        )
        self.token = answer["access_token"]
        return self.token

    def api_keys(self) -> list[dict]:
        """The API keys (auth on, 3.0 and later): [{"id", "name", "key_prefix", ...}]."""
        return self._request("GET", "/v1/admin/keys", "list its API keys")

    def create_api_key(self, name: str) -> str:
        """A new API key that never expires; its plain text is shown only this once."""
        answer = self._request(
            "POST", "/v1/admin/keys", f"create the API key {name!r}", json={"name": name}
        )
        return answer["key"]

    def delete_api_key(self, key_id: int) -> None:
        self._request("DELETE", f"/v1/admin/keys/{key_id}", f"delete API key {key_id}")

    # Registrations -------------------------------------------------------------------------

    def registrations(self, model_type: str) -> list[dict]:
        """Builtin and custom models of a type: [{"model_name", "is_builtin"}, ...]."""
        return self._request(
            "GET", f"/v1/model_registrations/{model_type}", f"list {model_type} models"
        )

    def register(self, model_type: str, spec: dict, persist: bool = True) -> None:
        """Register a custom model. Xinference parses `model` as a JSON string."""
        self._request(
            "POST",
            f"/v1/model_registrations/{model_type}",
            f"register the {model_type} model {spec.get('model_name')!r}",
            json={"model": json.dumps(spec), "persist": persist},
        )

    def unregister(self, model_type: str, name: str) -> None:
        self._request(
            "DELETE",
            f"/v1/model_registrations/{model_type}/{name}",
            f"unregister the {model_type} model {name!r}",
        )

    # Instances -----------------------------------------------------------------------------

    def models(self) -> dict[str, dict]:
        """Running instances: uid -> description. A launching one is not listed yet."""
        answer = self._request("GET", "/v1/models", "list running models")
        return {model["id"]: model for model in answer["data"]}

    def launch(self, body: dict, *, wait_ready: bool = False, timeout: float | None = None) -> str:
        """Start a launch and return its uid at once; poll `instance_status` for the end.

        Xinference checks only the request here (e.g. a missing engine, a uid in use); whether
        the model loads is known later, from `instance_status`. With WAIT_READY the call
        answers only once the model is ready (or failed), as releases before 1.5 always do.
        """
        answer = self._request(
            "POST",
            "/v1/models",
            f"launch model {body.get('model_name')!r}",
            params=None if wait_ready else {"wait_ready": "false"},
            json=body,
            timeout=timeout,
        )
        return answer["model_uid"]

    def instance_status(self, uid: str) -> InstanceStatus | None:
        """Where the launch of UID stands; None when Xinference knows no instance by that uid."""
        found = self._request(
            "GET",
            "/v1/models/instances",
            f"report the status of model {uid!r}",
            params={"model_uid": uid},
        )
        if not found:
            return None
        instance = found[0]
        errors = [
            replica["error_message"]
            for replica in instance.get("replica_statuses") or ()
            if replica.get("error_message")
        ]
        return InstanceStatus(
            uid=instance["model_uid"],
            model_name=instance["model_name"],
            status=instance["status"],
            error=_clean(errors[0]) if errors else None,
        )

    def progress(self, uid: str) -> float | None:
        """Launch progress from 0 to 1; None where the server has no such endpoint (< 1.5).

        Xinference answers 0.0 for a uid it does not know, and 1.0 once the model is loaded.
        """
        report = self.launch_progress(uid)
        return None if report is None else report.progress

    def launch_progress(self, uid: str) -> "LaunchProgress | None":
        """Progress with Xinference's stage text ("downloading", "loading", ...); None where
        the server has no progress endpoint (< 1.5)."""
        try:
            answer = self._request(
                "GET", f"/v1/models/{uid}/progress", f"report the launch progress of {uid!r}"
            )
        except XinferenceError as error:
            if error.status_code == 404:
                return None
            raise
        return LaunchProgress(float(answer["progress"]), str(answer.get("stage") or ""))

    def cancel(self, uid: str) -> None:
        """Cancel a launch in progress; the instance then reports ERROR with no message."""
        self._request(
            "POST",
            f"/v1/models/{uid}/cancel",
            f"cancel the launch of {uid!r}",
            timeout=max(self.timeout, CANCEL_TIMEOUT),
        )

    def terminate(self, uid: str) -> None:
        self._request("DELETE", f"/v1/models/{uid}", f"stop model {uid!r}")

    # Using a model -------------------------------------------------------------------------

    def chat(self, uid: str, messages: list[dict], max_tokens: int = 512) -> str:
        """The answer's text from /v1/chat/completions."""
        answer = self._request(
            "POST",
            "/v1/chat/completions",
            f"answer with model {uid!r}",
            json={"model": uid, "messages": messages, "max_tokens": max_tokens},
            timeout=max(self.timeout, INFERENCE_TIMEOUT),
        )
        return answer["choices"][0]["message"].get("content") or ""

    def embed(self, uid: str, texts: list[str]) -> list[list[float]]:
        """One vector per text, in the order of TEXTS."""
        answer = self._request(
            "POST",
            "/v1/embeddings",
            f"embed texts with model {uid!r}",
            json={"model": uid, "input": texts},
            timeout=max(self.timeout, INFERENCE_TIMEOUT),
        )
        return [item["embedding"] for item in sorted(answer["data"], key=lambda d: d["index"])]

    def rerank(self, uid: str, query: str, documents: list[str]) -> list[tuple[int, float]]:
        """(index into DOCUMENTS, relevance score), in the order Xinference ranks them."""
        answer = self._request(
            "POST",
            "/v1/rerank",
            f"rerank documents with model {uid!r}",
            json={"model": uid, "query": query, "documents": documents},
            timeout=max(self.timeout, INFERENCE_TIMEOUT),
        )
        return [(item["index"], float(item["relevance_score"])) for item in answer["results"]]

    # The one way out -----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: dict | None = None,
        json: dict | None = None,
        timeout: float | None = None,
        secrets: tuple[str, ...] = (),
    ):
        """Send one request; the decoded JSON answer, or XinferenceError saying it could not WHAT.

        SECRETS (and the token) are cut out of any message, whatever the server echoes.
        """
        endpoint = f"{method} {path}"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        secrets = (*secrets, *((self.token,) if self.token else ()))
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json,
                headers=headers,
                timeout=timeout or self.timeout,
            )
        except httpx.TimeoutException:
            raise XinferenceError(
                f"Xinference at {self._where()} did not answer in time when asked to {what} "
                f"({endpoint}).",
                permanent=False,
                timed_out=True,
            ) from None
        except httpx.HTTPError as error:
            reason = _redact(str(error) or type(error).__name__, secrets)
            raise XinferenceError(
                f"Could not reach Xinference at {self._where()} to {what} ({endpoint}): {reason}.",
                permanent=False,
            ) from None

        if response.is_success:
            if not response.content.strip():
                return None
            try:
                return response.json()
            except ValueError:
                raise XinferenceError(
                    f"Xinference answered {endpoint} with something that is not JSON, "
                    f"so the panel could not {what}."
                ) from None

        status = response.status_code
        detail = _clean(_redact(_detail(response), secrets))
        if status == 401:
            detail = f"not logged in, or the login has expired ({detail})"
        elif status == 404 and detail == "Not Found":
            detail = "this version of Xinference has no such endpoint"
        raise XinferenceError(
            f"Xinference could not {what}: {detail} ({endpoint}, HTTP {status}).",
            status_code=status,
            permanent=status not in TRANSIENT_STATUS_CODES,
        )

    def _where(self) -> str:
        # A URL may carry a user and password; a message never does.
        return str(httpx.URL(self.base_url).copy_with(userinfo=b""))


# The request counter of the API's HTTP middleware (aioprometheus), and the routes of it that
# put a model to work.
REQUEST_COUNTER = "requests_total_counter"
MODEL_ROUTES = (
    "/v1/chat/",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/rerank",
    "/v1/responses",
    "/v1/messages",
    "/anthropic/v1/messages",
    "/v1/audio/",
    "/v1/images/",
    "/v1/video/",
    "/v1/flexible/",
)
METRIC_LINE = re.compile(
    r"^(?P<name>[A-Za-z_:][\w:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\d+)?$"
)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def model_requests_in(text: str) -> float:
    """The sum of REQUEST_COUNTER over the MODEL_ROUTES in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        match = METRIC_LINE.match(line.strip())
        if match is None or match["name"] != REQUEST_COUNTER:
            continue
        labels = dict(LABEL.findall(match["labels"] or ""))
        if not labels.get("path", "").startswith(MODEL_ROUTES):
            continue
        try:
            total += float(match["value"])
        except ValueError:
            continue
    return total


def _detail(response: httpx.Response) -> str:
    """Xinference's `detail`, or whatever else the body holds."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if detail is None:
        return response.text.strip() or response.reason_phrase
    if isinstance(detail, list):
        # Request validation errors: where and what, never the rejected input itself.
        return "; ".join(
            f"{'.'.join(map(str, item.get('loc', ())))}: {item.get('msg')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)


def _clean(text: str) -> str:
    text = ACTOR_PREFIX.sub("", text).strip().rstrip(".")
    if len(text) > DETAIL_CHARS:
        text = text[:DETAIL_CHARS] + "…"
    return text


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
