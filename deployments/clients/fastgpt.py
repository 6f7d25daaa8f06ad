"""The panel's one client for FastGPT's HTTP API (V4.8.8).

FastGPT wraps answers in `{code, statusText, message, data}` and reports named errors with
HTTP 200 and a `code` other than 200, so success is read from the body.
"""

from typing import Any

import httpx


class FastGPTError(Exception):
    """A FastGPT call that failed, in a sentence a user can act on. `permanent` is False when
    trying again later may help (no answer yet, a restart under way)."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


class FastGPTClient:
    def __init__(
        self, base_url: str, timeout: float = 30, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "FastGPTClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def init_data(self) -> dict[str, Any]:
        """GET /api/common/system/getInitData: no login needed; the models FastGPT loaded from
        config.json (llmModels, vectorModels, reRankModels) and its systemVersion. The first
        call after a start also runs FastGPT's lazy init, so it may take a while."""
        return self._call("GET", "/api/common/system/getInitData", "report its models")

    def _call(self, method: str, path: str, what: str) -> Any:
        where = f"{method} {path}"
        try:
            response = self._http.request(method, path)
        except httpx.TimeoutException:
            raise FastGPTError(
                f"FastGPT at {self.base_url} did not answer in time when asked to {what} "
                f"({where}).",
                permanent=False,
            ) from None
        except httpx.HTTPError as error:
            raise FastGPTError(
                f"Could not reach FastGPT at {self.base_url} to {what} ({where}): {error}.",
                permanent=False,
            ) from None
        try:
            body = response.json()
        except ValueError:
            raise FastGPTError(
                f"FastGPT answered {where} with HTTP {response.status_code} and no JSON, "
                f"so the panel could not {what}.",
                permanent=response.status_code < 500,
            ) from None
        code = body.get("code") if isinstance(body, dict) else None
        if response.is_success and code == 200:
            return body.get("data")
        message = (body.get("message") or body.get("statusText")) if isinstance(body, dict) else ""
        raise FastGPTError(
            f"FastGPT could not {what}: {message or 'no reason given'} "
            f"({where}, HTTP {response.status_code}, code {code}).",
            permanent=response.status_code < 500,
        )
