"""Per-stack secrets: generated once, stored encrypted on the stack, never the defaults
that upstream compose files ship with."""

import json
import secrets

from django.db import transaction

from ..models import Stack

# Every secret a stack needs. Alphanumeric, so each is safe inside a URL, a DSN or a
# YAML/.env value without escaping (they are still written through serializers).
SECRET_NAMES = (
    "PG_PASSWORD",
    "MONGO_PASSWORD",
    "MYSQL_ROOT_PASSWORD",
    "FASTGPT_ROOT_PASSWORD",  # FastGPT's DEFAULT_ROOT_PSW: the root user's password
    "FASTGPT_TOKEN_KEY",
    "FASTGPT_ROOT_KEY",
    "FASTGPT_FILE_TOKEN_KEY",
    "ONEAPI_SESSION_SECRET",
    "ONEAPI_ROOT_PASSWORD",  # replaces One API's root/123456 at first-run setup
    "ONEAPI_ROOT_TOKEN",  # One API's INITIAL_ROOT_TOKEN; FastGPT calls it with sk-<token>
)
# Credentials the panel receives from the services after they start (not generated, not
# written to .env): One API's management access token, kept for channel and token setup.
ONEAPI_ACCESS_TOKEN = "ONEAPI_ACCESS_TOKEN"  # noqa: S105 (a name, not a value)
# The relay token made in One API for FastGPT once models are wired in (see llm/wiring.py).
ONEAPI_FASTGPT_KEY = "ONEAPI_FASTGPT_KEY"
# The API key One API and FastGPT send to a Xinference with auth on (stacks/xinference_access).
XINFERENCE_API_KEY = "XINFERENCE_API_KEY"
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def new_secret(length: int = 32) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


# One API validates a user's password as 8 to 20 characters.
LENGTHS = {"ONEAPI_ROOT_PASSWORD": 20}


def generate() -> dict[str, str]:
    return {name: new_secret(LENGTHS.get(name, 32)) for name in SECRET_NAMES}


def stack_secrets(stack: Stack) -> dict[str, str]:
    """The stack's secrets, generating (and saving) any that are missing.

    Never replaces a stored secret: a stale instance reads the row again, under a lock,
    before it generates anything, so a running stack's passwords cannot change under it.
    """
    current = json.loads(stack.secrets) if stack.secrets else {}
    if all(current.get(name) for name in SECRET_NAMES):
        return current
    with transaction.atomic():
        locked = Stack.objects.select_for_update().get(pk=stack.pk)
        current = json.loads(locked.secrets) if locked.secrets else {}
        missing = [name for name in SECRET_NAMES if not current.get(name)]
        if missing:
            fresh = generate()
            current.update({name: fresh[name] for name in missing})
            locked.secrets = json.dumps(current)
            locked.save(update_fields=["secrets", "updated_at"])
    stack.secrets = json.dumps(current)
    return current


def save_obtained_secret(stack: Stack, name: str, value: str) -> None:
    """Keep a credential a service gave the panel, beside the generated ones (encrypted)."""
    with transaction.atomic():
        locked = Stack.objects.select_for_update().get(pk=stack.pk)
        current = json.loads(locked.secrets) if locked.secrets else {}
        current[name] = value
        locked.secrets = json.dumps(current)
        locked.save(update_fields=["secrets", "updated_at"])
    stack.secrets = locked.secrets


def forget_obtained_secrets(stack: Stack) -> None:
    """Drop the credentials the services gave the panel (their databases are gone); the
    generated secrets stay, so a new deploy starts with the same passwords."""
    with transaction.atomic():
        locked = Stack.objects.select_for_update().get(pk=stack.pk)
        current = json.loads(locked.secrets) if locked.secrets else {}
        kept = {name: value for name, value in current.items() if name in SECRET_NAMES}
        locked.secrets = json.dumps(kept)
        locked.save(update_fields=["secrets", "updated_at"])
    stack.secrets = locked.secrets
