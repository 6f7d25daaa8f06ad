"""Signing in to a stack's Xinference, whether its auth is on or off.

With auth off (the 0.16 line, or XINFERENCE_AUTH_ADVANCED=false) nothing is needed. With auth
on (3.0 and later by default) a fresh server has no account: the first admin is created with
the setup token Xinference prints in its log, and a password the panel generates and keeps
encrypted beside the stack's secrets. Logins last 30 minutes, so every use signs in afresh.

One API and FastGPT call Xinference too: with auth on they send an API key the panel creates
once (`relay_key`).
"""

import re

from ..clients.ssh import SSHClient
from ..clients.xinference import XinferenceClient, XinferenceError
from ..models import Stack
from ..servers.sessions import open_session
from .endpoints import xinference_url
from .secrets import XINFERENCE_API_KEY, new_secret, save_obtained_secret, stack_secrets
from .services import stack_containers

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "XINFERENCE_ADMIN_PASSWORD"  # noqa: S105 (a secret's name, not a value)
# The name of the API key One API's channel and FastGPT's rerank entry send.
API_KEY_NAME = "controlpanel-relay"
SETUP_TOKEN = re.compile(r"Setup token: (\S+)")
XINFERENCE_SERVICE = "xinference"


def xinference_client(stack: Stack, timeout: float | None = None) -> XinferenceClient:
    """A client for the stack's Xinference, signed in when its auth is on."""
    client = XinferenceClient(xinference_url(stack), **({"timeout": timeout} if timeout else {}))
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
    for container in stack_containers(ssh, stack):
        labels = container["Config"].get("Labels") or {}
        if labels.get("com.docker.compose.service") == XINFERENCE_SERVICE:
            return container["Name"].lstrip("/")
    return None


def setup_token(stack: Stack) -> str:
    """The first-run setup token from the Xinference container's log (the latest one)."""
    with open_session(stack.server) as ssh:
        name = xinference_container(ssh, stack)
        if not name:
            raise XinferenceError(
                "Xinference has auth on and no admin account yet, and the stack has no "
                "xinference container whose log would show the setup token."
            )
        logs = ssh.run(["docker", "logs", name], sudo=True, check=False, timeout=60)
    found = SETUP_TOKEN.findall(logs.stdout + logs.stderr)
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
