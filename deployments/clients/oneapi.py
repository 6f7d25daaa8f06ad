"""The panel's one client for One API's management API (v0.6.7): login, channels, tokens.

Every `/api` answer is HTTP 200 with `{"success", "message", "data"}`, so success is read from
the body, not the status code. The management credential is root's access token, sent as a bare
`Authorization: <token>`; `first_run_setup` obtains it on a freshly started One API.
"""

import json
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
        other answer, an upstream error included, means the route exists. (False, why) or
        (True, "").
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
            try:
                said = str(response.json()["error"]["message"])
            except (ValueError, KeyError, TypeError):
                said = response.text[:200]
            return False, said
        return True, ""


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
