"""The panel's one client for One API's management API (v0.6.7): login, channels, tokens.

Every `/api` answer is HTTP 200 with `{"success", "message", "data"}`, so success is read from
the body, not the status code. The management credential is root's access token, sent as a bare
`Authorization: <token>`; `first_run_setup` obtains it on a freshly started One API.
"""

import json
from dataclasses import dataclass
from typing import Any

import httpx

# The password One API gives root on first start; public, and replaced by first_run_setup.
DEFAULT_ROOT_PASSWORD = "123456"  # noqa: S105
ROOT_USERNAME = "root"
# One API's validator on User.Password (min=8, max=20) and on Token.Name (30 bytes).
PASSWORD_LENGTHS = (8, 20)
TOKEN_NAME_MAX_BYTES = 30
# Type 8 is One API's "Custom" channel: the OpenAI protocol with no default base URL, so a
# channel without a base URL fails instead of quietly reaching api.openai.com (type 1's default).
CUSTOM_CHANNEL_TYPE = 8
REDACTED = "***"


class OneAPIError(Exception):
    """A One API call that failed, in a sentence a user can act on.

    `oneapi_message` is One API's own message when it answered `success: false`, else None.
    `permanent` is False when trying again later may help (no answer, rate limit, server error).
    """

    def __init__(
        self, message: str, *, oneapi_message: str | None = None, permanent: bool = True
    ) -> None:
        super().__init__(message)
        self.oneapi_message = oneapi_message
        self.permanent = permanent


class OneAPIClient:
    def __init__(
        self,
        base_url: str,
        access_token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        # Secrets this client has handled, kept out of every error message it raises.
        self._secrets = {access_token} if access_token else set()
        headers = {"Authorization": access_token} if access_token else {}
        # The session cookie from login() lives in this client's cookie jar.
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "OneAPIClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def hide(self, secret: str) -> None:
        """Keep `secret` (a channel's key, say) out of every error this client raises."""
        if secret:
            self._secrets.add(secret)

    # Plumbing ------------------------------------------------------------------------------------

    def _error(self, message: str, **kwargs: Any) -> OneAPIError:
        for secret in self._secrets:
            message = message.replace(secret, REDACTED)
        if kwargs.get("oneapi_message"):
            for secret in self._secrets:
                kwargs["oneapi_message"] = kwargs["oneapi_message"].replace(secret, REDACTED)
        return OneAPIError(message, **kwargs)

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        """One request; the whole JSON body, whatever its `success` says."""
        where = f"{method} {path}"
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise self._error(
                f"One API at {self.base_url} does not answer: {where} got no answer within "
                f"{self._http.timeout.read} seconds while {what}.",
                permanent=False,
            ) from None
        except httpx.TransportError as error:
            reason = str(error) or type(error).__name__
            raise self._error(
                f"One API at {self.base_url} does not answer: {reason} ({where}, while {what}).",
                permanent=False,
            ) from None
        if response.status_code == 429:
            raise self._error(
                f"One API at {self.base_url} refused {where} while {what}: too many requests "
                "from the panel's address (One API allows 20 logins per 20 minutes and a few "
                "hundred API calls per 3 minutes). Try again later.",
                permanent=False,
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        said = body.get("message") if isinstance(body, dict) else None
        if response.status_code == 401:
            raise self._error(
                f"One API at {self.base_url} refused {where} while {what}: the panel is not "
                f"logged in and has no valid access token (One API said: {said!r}).",
                oneapi_message=said,
            )
        if response.status_code != 200 or not isinstance(body, dict):
            raise self._error(
                f"One API at {self.base_url} gave an unexpected answer to {where} while {what}: "
                f"HTTP {response.status_code}, {response.text[:200]!r}.",
                permanent=response.status_code < 500,
            )
        return body

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """One request whose answer must say `success: true`; its `data`."""
        body = self._send(method, path, what, **kwargs)
        if body.get("success") is not True:
            said = str(body.get("message") or "")
            raise self._error(
                f"One API at {self.base_url} refused {what} ({method} {path}): "
                f"{said or 'no reason given'}.",
                oneapi_message=said,
            )
        return body.get("data")

    # Users ---------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/api/status", "reading its status")

    def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in with a password; the session cookie authenticates this client's next calls."""
        self._secrets.add(password)
        return self._call(
            "POST",
            "/api/user/login",
            f"logging in as {username!r}",
            json={"username": username, "password": password},
        )

    def self_user(self) -> dict[str, Any]:
        """The logged-in user's row; on v0.6.7 it includes `access_token`."""
        user = self._call("GET", "/api/user/self", "reading the logged-in user")
        if user and user.get("access_token"):
            self._secrets.add(user["access_token"])
        return user

    def update_self(self, **fields: Any) -> None:
        if fields.get("password"):
            self._secrets.add(fields["password"])
        self._call("PUT", "/api/user/self", "updating the logged-in user", json=fields)

    # Channels ------------------------------------------------------------------------------------

    def channels_named(self, name: str) -> list[dict[str, Any]]:
        # The search matches a name prefix (or an id), so keep only exact names.
        found = self._call(
            "GET",
            "/api/channel/search",
            f"searching for channel {name!r}",
            params={"keyword": name},
        )
        return [channel for channel in found or [] if channel.get("name") == name]

    def get_channel(self, channel_id: int) -> dict[str, Any] | None:
        """One channel's row (its key left out), or None when there is no such channel."""
        body = self._send("GET", f"/api/channel/{channel_id}", f"reading channel {channel_id}")
        if body.get("success") is not True:
            return None
        return body.get("data")

    def add_channel(self, channel: dict[str, Any]) -> dict[str, Any]:
        """Create one channel and return its row, found by its name (the answer has no id)."""
        name = channel.get("name")
        if not name:
            raise ValueError("A channel needs a name: it is how the new channel is found.")
        if "\n" in channel.get("key", ""):
            raise ValueError("A channel key must be one line: One API makes a channel per line.")
        self._call("POST", "/api/channel/", f"creating channel {name!r}", json=channel)
        rows = self.channels_named(name)
        if not rows:
            raise self._error(
                f"One API at {self.base_url} accepted channel {name!r} but does not list it."
            )
        # Ids only grow, so with a name used twice the newest row is the one just made.
        return max(rows, key=lambda row: row["id"])

    def update_channel(self, channel: dict[str, Any]) -> dict[str, Any]:
        """Change a channel; One API skips zero values (0, ""), so those cannot be set here."""
        if not channel.get("id"):
            raise ValueError("A channel update needs the channel's id.")
        return self._call("PUT", "/api/channel/", f"updating channel {channel['id']}", json=channel)

    def delete_channel(self, channel_id: int) -> None:
        self._call("DELETE", f"/api/channel/{channel_id}", f"deleting channel {channel_id}")

    def test_channel(self, channel_id: int) -> dict[str, Any]:
        """Have One API send a short chat request through the channel.

        A test that ran is a result, passed or not: {"success", "message", "time"} (seconds).
        """
        what = f"testing channel {channel_id}"
        body = self._send("GET", f"/api/channel/test/{channel_id}", what)
        # Without a time the test never ran (unknown channel, refused credentials).
        if "time" not in body:
            said = str(body.get("message") or "")
            raise self._error(
                f"One API at {self.base_url} could not run the test of channel {channel_id}: "
                f"{said or 'no reason given'}.",
                oneapi_message=said,
            )
        return {
            "success": body.get("success") is True,
            "message": str(body.get("message") or ""),
            "time": body["time"],
        }

    # Tokens --------------------------------------------------------------------------------------

    def tokens_named(self, name: str) -> list[dict[str, Any]]:
        found = self._call(
            "GET", "/api/token/search", f"searching for token {name!r}", params={"keyword": name}
        )
        return [token for token in found or [] if token.get("name") == name]

    def add_token(
        self, name: str, *, models: str | None = None, subnet: str | None = None
    ) -> dict[str, Any]:
        """Create a relay token that never runs out or expires; its `key` has no `sk-` prefix."""
        if len(name.encode()) > TOKEN_NAME_MAX_BYTES:
            raise OneAPIError(
                f"The token name {name!r} is too long: One API allows at most "
                f"{TOKEN_NAME_MAX_BYTES} bytes."
            )
        body: dict[str, Any] = {
            "name": name,
            # Sent explicitly: a limited token with no quota, or expiry 0, is refused when used.
            "unlimited_quota": True,
            "remain_quota": 0,
            "expired_time": -1,
        }
        if models is not None:
            body["models"] = models
        if subnet is not None:
            body["subnet"] = subnet
        token = self._call("POST", "/api/token/", f"creating token {name!r}", json=body)
        self._secrets.add(token["key"])
        return token

    def delete_token(self, token_id: int) -> None:
        self._call("DELETE", f"/api/token/{token_id}", f"deleting token {token_id}")

    # The relay -----------------------------------------------------------------------------------

    def relay_routes(self, key: str, model: str, *, embedding: bool) -> tuple[bool, str]:
        """Whether One API's relay sends MODEL somewhere yet, asked with relay token KEY.

        With the memory cache on, a new or changed channel is routed only after One API's next
        sync (SYNC_FREQUENCY): until then the relay answers 503 "no channel available". Any
        other answer, an upstream error included, means the route exists. (False, why) while
        it is not routed; (True, "") once it is, or (True, note) when it is routed but the
        model server itself answered 503, which One API passes on unchanged.
        """
        self._secrets.add(key)
        if embedding:
            path, body = "/v1/embeddings", {"model": model, "input": ["ping"]}
        else:
            path = "/v1/chat/completions"
            messages = [{"role": "user", "content": "hi"}]
            body = {"model": model, "max_tokens": 1, "messages": messages}
        try:
            response = self._http.post(
                path, json=body, headers={"Authorization": f"Bearer sk-{key}"}, timeout=300
            )
        except httpx.TransportError as error:
            return False, f"no answer ({type(error).__name__})"
        if response.status_code == 503:
            unavailable = read_relay_503(response.text)
            sentence = unavailable.sentence(model)
            for secret in self._secrets:
                sentence = sentence.replace(secret, REDACTED)
            return (not unavailable.no_channel and unavailable.from_oneapi), sentence
        return True, ""


# One API's relay answers 503 when no channel serves a model (type one_api_error,
# "当前分组 default 下对于模型 X 无可用渠道"), and passes an upstream's 503 on unchanged
# (controller/relay.go).
NO_CHANNEL_TEXT = "无可用渠道"
ONE_API_ERROR_TYPE = "one_api_error"


@dataclass(frozen=True)
class Relay503:
    """What a 503 from One API's relay means.

    `no_channel`: One API itself has no channel for the model (yet). Otherwise, when
    `from_oneapi` (the body is One API's error envelope), the model server behind the channel
    answered 503 and One API passed it on; a 503 without that envelope came from something in
    front of One API. `said` is the error's own text.
    """

    no_channel: bool
    from_oneapi: bool
    said: str

    def sentence(self, model: str) -> str:
        if self.no_channel:
            return f"One API has no channel for {model!r} yet; it said: {self.said}"
        if self.from_oneapi:
            return (
                f"One API routes {model!r}, but the model server itself answered HTTP 503: "
                f"{self.said}"
            )
        return f"an HTTP 503 came from something in front of One API, not from it: {self.said}"


def read_relay_503(text: str) -> Relay503:
    """Tell apart One API's "no channel for this model" from an upstream 503 it passed on."""
    try:
        error = json.loads(text)["error"]
        said = str(error.get("message") or "")
        kind = str(error.get("type") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        said = text[:200]
        return Relay503(no_channel=NO_CHANNEL_TEXT in said, from_oneapi=False, said=said)
    no_channel = NO_CHANNEL_TEXT in said or kind == ONE_API_ERROR_TYPE
    return Relay503(no_channel=no_channel, from_oneapi=True, said=said[:500])


# One API v0.6.7's channel types (relay/channeltype/define.go; the names its web UI shows),
# limited to chat services that need only a key and at most a base URL: Azure, Xunfei, AWS
# Claude, Coze and Cloudflare need settings of their own, and the rest are proxies, knowledge
# bases or translation.
CHANNEL_TYPES: dict[int, str] = {
    1: "OpenAI",
    8: "Custom (OpenAI-compatible)",
    14: "Anthropic Claude",
    15: "Baidu ERNIE (Qianfan)",
    16: "Zhipu ChatGLM",
    17: "Alibaba Qwen (DashScope)",
    19: "360 AI",
    20: "OpenRouter",
    23: "Tencent Hunyuan",
    24: "Google Gemini",
    25: "Moonshot AI",
    26: "Baichuan",
    27: "MiniMax",
    28: "Mistral AI",
    29: "Groq",
    30: "Ollama",
    31: "01.AI (Lingyiwanwu)",
    32: "StepFun",
    35: "Cohere",
    36: "DeepSeek",
    39: "together.ai",
    40: "Doubao (Volcengine Ark)",
}
# Types One API sends through an adaptor of their own (relay/channeltype/helper.go ToAPIType);
# every other type speaks OpenAI's protocol to base_url + /v1/...
OWN_ADAPTOR_TYPES = frozenset({3, 11, 14, 15, 16, 17, 18, 21, 23, 24, 30, 33, 34, 35, 37, 38})
# What a channel key looks like for the types that take several parts in one key.
CHANNEL_KEY_FORMATS: dict[int, str] = {15: "APIKey|SecretKey", 23: "AppId|SecretId|SecretKey"}


def provider_channel(
    name: str, channel_type: int, base_url: str, models: list[str], key: str
) -> dict[str, Any]:
    """The body of a channel for a remote provider: its type, key, base URL and models.

    An empty base URL leaves One API's default for the type. The first model is the one One
    API's channel test asks, unless the type's own first model is in the list.
    """
    if not key or "\n" in key:
        raise ValueError("A channel key must be one non-empty line: One API makes one per line.")
    names = [model.strip() for model in models]
    if not names or any(not m or "," in m or any(c.isspace() for c in m) for m in names):
        raise ValueError(f"Model names must be non-empty, without commas or spaces: {models!r}")
    base_url = base_url.rstrip("/")
    if channel_type not in OWN_ADAPTOR_TYPES:
        # One API appends /v1/chat/completions itself.
        base_url = base_url.removesuffix("/v1")
    return {
        "type": channel_type,
        "name": name,
        "key": key,
        "base_url": base_url,
        "models": ",".join(names),
        "group": "default",
        "model_mapping": "",
        "config": json.dumps({}),
    }


def xinference_channel(
    name: str, base_url: str, models: list[str], key: str = "sk-xinference"
) -> dict[str, Any]:
    """The body of a channel that sends these models to a Xinference server.

    `models[0]` must be the chat model: One API's channel test asks the first model to chat.
    `key` only has to be non-empty for a Xinference without auth.
    """
    names = [model.strip() for model in models]
    if not names or any(not m or "," in m or any(c.isspace() for c in m) for m in names):
        raise ValueError(f"Model names must be non-empty, without commas or spaces: {models!r}")
    base_url = base_url.rstrip("/")
    # One API appends the request path (/v1/chat/completions) to the base URL itself.
    base_url = base_url.removesuffix("/v1")
    return {
        "type": CUSTOM_CHANNEL_TYPE,
        "name": name,
        "key": key,
        "base_url": base_url,
        # A plain comma list: One API splits on "," without trimming.
        "models": ",".join(names),
        "group": "default",
        "model_mapping": "",
        # A JSON text, not an object: the Go field is a string.
        "config": json.dumps({}),
    }


def first_run_setup(base_url: str, new_password: str, *, timeout: float = 30) -> str:
    """Give root `new_password` (once) and return root's management access token.

    Safe to repeat: the new password is tried first, the default only when it is refused. At
    most two logins per call, as One API allows only 20 per 20 minutes.
    """
    low, high = PASSWORD_LENGTHS
    if not low <= len(new_password) <= high:
        raise OneAPIError(
            f"One API needs a root password of {low} to {high} characters; "
            f"this one has {len(new_password)}."
        )
    with OneAPIClient(base_url, timeout=timeout) as client:
        try:
            client.login(ROOT_USERNAME, new_password)
        except OneAPIError as error:
            if error.oneapi_message is None:
                raise
            try:
                client.login(ROOT_USERNAME, DEFAULT_ROOT_PASSWORD)
            except OneAPIError as default_error:
                if default_error.oneapi_message is None:
                    raise
                raise OneAPIError(
                    f"One API at {client.base_url} refused the root login with the panel's "
                    "password and with the default one: the root password was changed outside "
                    "the panel. Set it back to the panel's password in One API, or reinstall "
                    "One API with an empty database "
                    f"(One API said: {default_error.oneapi_message!r})."
                ) from None
            client.update_self(password=new_password)
        token = client.self_user().get("access_token")
        if not token:
            raise OneAPIError(
                f"One API at {client.base_url} did not show root's access token; the panel "
                "needs One API v0.6.7, which does."
            )
        return token
