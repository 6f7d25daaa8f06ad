"""Signing in to a stack's Xinference, whether its auth is on or off, and reading its log.

With auth off (the 0.16 line, or XINFERENCE_AUTH_ADVANCED=false) nothing is needed. With auth
on (3.0 and later by default) a fresh server has no account: the first admin is created with
the setup token Xinference prints in its log, and a password the panel generates and keeps
encrypted beside the stack's secrets. Logins last 30 minutes, so every use signs in afresh.

One API and FastGPT call Xinference too: with auth on they send an API key the panel creates
once (`relay_key`). They reach it over the stack's network; the panel, through SSH unless the
stack publishes Xinference (endpoints.py).
"""

import contextlib
import re

from ..clients.ssh import SSHClient
from ..clients.xinference import XinferenceClient, XinferenceError
from ..models import Stack
from .endpoints import service_url
from .secrets import XINFERENCE_API_KEY, new_secret, save_obtained_secret, stack_secrets
from .services import service_container, service_log

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "XINFERENCE_ADMIN_PASSWORD"  # noqa: S105 (a secret's name, not a value)
# The name of the API key One API's channel and FastGPT's rerank entry send.
API_KEY_NAME = "controlpanel-relay"
SETUP_TOKEN = re.compile(r"Setup token: (\S+)")
XINFERENCE_SERVICE = "xinference"
# How much of the log a failed launch's reason is looked for in.
REASON_LOG_LINES = 400
REASON_MAX_CHARS = 500
# A traceback's last line ("ValueError: ...", "xoscar.errors.ServerClosed: ..."), or a logged
# error; [address=..., pid=...] is what Xinference's actors put before a message.
EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception|Exit)\b:\s*(?P<message>\S.*)$")
ERROR_RECORD = re.compile(r"\b(?:ERROR|CRITICAL)\b\s+(?P<message>\S.*)$")
ACTOR_PREFIX = re.compile(r"^\[address=[^\]]*\]\s*")


class StackXinferenceClient(XinferenceClient):
    """A XinferenceClient that closes what its address needs (an SSH tunnel) with itself."""

    def __init__(self, base_url: str, resources: contextlib.ExitStack, **options) -> None:
        super().__init__(base_url, **options)
        self._resources = resources

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._resources.close()


def xinference_client(stack: Stack, timeout: float | None = None) -> XinferenceClient:
    """A client for the stack's Xinference, signed in when its auth is on. Unless the stack
    publishes Xinference it goes through an SSH tunnel, open until the client is closed."""
    resources = contextlib.ExitStack()
    try:
        url = resources.enter_context(service_url(stack, XINFERENCE_SERVICE))
        client = StackXinferenceClient(url, resources, **({"timeout": timeout} if timeout else {}))
    except BaseException:
        resources.close()
        raise
    try:
        state = client.auth_state()
        if not state.enabled:
            return client
        password = _admin_password(stack)
        if state.needs_setup:
            client.setup_admin(setup_token(stack), ADMIN_USERNAME, password)
        client.login(ADMIN_USERNAME, password)
    except BaseException:
        client.close()
        raise
    return client


def _admin_password(stack: Stack) -> str:
    password = stack_secrets(stack).get(ADMIN_PASSWORD)
    if not password:
        # Kept before it is used, so a crash between the two cannot lose the admin's password.
        password = new_secret()
        save_obtained_secret(stack, ADMIN_PASSWORD, password)
    return password


def xinference_container(ssh: SSHClient, stack: Stack) -> str | None:
    """The name of the stack's xinference container on the server, if it has one."""
    return service_container(ssh, stack, XINFERENCE_SERVICE)


def xinference_log(stack: Stack, tail: int | None = None) -> str | None:
    """The Xinference container's log (its last TAIL lines); None without a container."""
    return service_log(stack, XINFERENCE_SERVICE, tail)


def setup_token(stack: Stack) -> str:
    """The first-run setup token from the Xinference container's log (the latest one)."""
    log = xinference_log(stack)
    if log is None:
        raise XinferenceError(
            "Xinference has auth on and no admin account yet, and the stack has no "
            "xinference container whose log would show the setup token."
        )
    found = SETUP_TOKEN.findall(log)
    if not found:
        raise XinferenceError(
            "Xinference has auth on and no admin account yet, but its log shows no setup "
            "token: restart the xinference service, then try again."
        )
    return found[-1]


def relay_key(stack: Stack, client: XinferenceClient) -> str | None:
    """The API key One API and FastGPT send to Xinference; None when its auth is off.

    Created once and kept encrypted; made again when the server no longer has it (a
    reinstalled Xinference) or the panel lost its plain text (shown only at creation).
    """
    if not client.token:
        return None
    kept = stack_secrets(stack).get(XINFERENCE_API_KEY)
    listed = [key for key in client.api_keys() if key.get("name") == API_KEY_NAME]
    if kept and any(kept.startswith(key.get("key_prefix") or "\0") for key in listed):
        return kept
    for key in listed:
        client.delete_api_key(key["id"])
    key = client.create_api_key(API_KEY_NAME)
    save_obtained_secret(stack, XINFERENCE_API_KEY, key)
    return key


def error_in_log(log: str, names: tuple[str, ...]) -> str | None:
    """The reason a launch failed, as the log's last error about it says.

    Before 1.5 a launch that does not wait reports only "ERROR", with the reason in the log
    alone. The last exception line that names the model wins; failing that, the last one at all.
    """
    found = []
    for line in log.splitlines():
        line = line.strip()
        match = EXCEPTION_LINE.match(line) or ERROR_RECORD.search(line)
        if match:
            found.append(ACTOR_PREFIX.sub("", match.group("message")).strip())
    if not found:
        return None
    naming = [message for message in found if any(name and name in message for name in names)]
    reason = (naming or found)[-1]
    if len(reason) > REASON_MAX_CHARS:
        reason = reason[: REASON_MAX_CHARS - 1] + "…"
    return reason.rstrip(".")


def launch_error_from_log(stack: Stack, names: tuple[str, ...]) -> str | None:
    """Why a launch failed, from the Xinference container's recent log, if it says."""
    log = xinference_log(stack, REASON_LOG_LINES)
    return error_in_log(log, names) if log else None
