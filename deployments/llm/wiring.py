"""Wire a stack's launched models into One API and FastGPT, as a person would by hand.

One API gets one channel for the stack's Xinference with the ready chat and embedding models
(chat first: One API's channel test asks the first model to chat), and a relay token FastGPT
uses. FastGPT gets a config.json listing the ready models (rerank ones point at Xinference
directly), and since V4.8 reads it once, its container is recreated, then asked through
getInitData which models it loaded.

Everything is computed from the launches that are ready now, so each function can run again
after any launch or termination and leaves the same result. A lock per stack keeps two model
runs from writing the channel or the files at the same moment. Every wait honours the
caller's `check_cancel`.
"""

import contextlib
from collections.abc import Callable, Iterator

import redis
from django.conf import settings

from ..clients.fastgpt import FastGPTClient, FastGPTError
from ..clients.oneapi import OneAPIClient, OneAPIError, first_run_setup, xinference_channel
from ..errors import PanelError
from ..models import Stack
from ..servers.sessions import open_session
from ..stacks.compose import compose_argv, server_facts
from ..stacks.endpoints import fastgpt_url, oneapi_url
from ..stacks.files import files_diff, launched_configs, stack_files
from ..stacks.render import CONFIG_FILE, ENV_FILE, XINFERENCE_URL
from ..stacks.secrets import (
    ONEAPI_ACCESS_TOKEN,
    ONEAPI_FASTGPT_KEY,
    save_obtained_secret,
    stack_secrets,
)
from ..waiting import never_cancelled, wait_for

CHANNEL_NAME = "xinference"
# A channel key must not be empty; Xinference without auth ignores it.
NO_AUTH_KEY = "sk-xinference"
FASTGPT_TOKEN_NAME = "fastgpt"  # noqa: S105 (a name, not a value)
FASTGPT_SERVICE = "fastgpt"
LOCK_SECONDS = 900
# One API's Channel.Status: enabled, as opposed to disabled by hand (2) or automatically (3).
CHANNEL_ENABLED = 1
ROUTE_POLL_SECONDS = 2
FASTGPT_POLL_SECONDS = 2

Log = Callable[[str], None]


class WiringFailed(PanelError):
    """One API or FastGPT did not take the stack's models; the message says why."""


@contextlib.contextmanager
def models_lock(stack: Stack) -> Iterator[None]:
    """One writer of a stack's channel and FastGPT files at a time, across workers."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    lock = client.lock(
        f"controlpanel:stack-models:{stack.pk}",
        timeout=LOCK_SECONDS,
        blocking_timeout=LOCK_SECONDS,
    )
    if not lock.acquire():
        raise WiringFailed("Another model run on this stack holds its files for too long.")
    try:
        yield
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
        client.close()


def _oneapi(stack: Stack) -> OneAPIClient:
    token = stack_secrets(stack).get(ONEAPI_ACCESS_TOKEN)
    if not token:
        # A stack deployed before the panel kept One API's token: sign in now.
        token = first_run_setup(oneapi_url(stack), stack_secrets(stack)["ONEAPI_ROOT_PASSWORD"])
        save_obtained_secret(stack, ONEAPI_ACCESS_TOKEN, token)
    return OneAPIClient(oneapi_url(stack), token)


def update_oneapi(
    stack: Stack,
    log: Log,
    relay_key: str | None,
    check_cancel: Callable[[], None] = never_cancelled,
) -> str:
    """Create, update or remove the stack's Xinference channel, test it, and make sure
    FastGPT has its relay token; then wait until One API routes the models."""
    configs = launched_configs(stack)
    chat = [config.model for config in configs["llms"]]
    embedding = [config.model for config in configs["embeddings"]]
    models = chat + embedding
    try:
        with _oneapi(stack) as client:
            rows = client.channels_named(CHANNEL_NAME)
            if not models:
                for row in rows:
                    client.delete_channel(row["id"])
                return (
                    f"No chat or embedding model is ready: channel {CHANNEL_NAME!r} removed."
                    if rows
                    else "No chat or embedding model is ready: One API needs no channel."
                )
            key = relay_key or NO_AUTH_KEY
            body = xinference_channel(CHANNEL_NAME, XINFERENCE_URL, models, key)
            if rows:
                channel_id = rows[0]["id"]
                # Enabled again if it was disabled in One API: a disabled channel routes nothing.
                client.update_channel({**body, "id": channel_id, "status": CHANNEL_ENABLED})
                for extra in rows[1:]:
                    client.delete_channel(extra["id"])
                log(f"Channel {CHANNEL_NAME!r} (id {channel_id}) now serves {', '.join(models)}.")
            else:
                channel_id = client.add_channel(body)["id"]
                log(f"Channel {CHANNEL_NAME!r} (id {channel_id}) created for {', '.join(models)}.")
            if chat:
                _test_channel(client, channel_id, chat[0], log)
            key = _fastgpt_token(stack, client, log)
            _wait_for_routes(client, key, chat, embedding, log, check_cancel)
    except OneAPIError as error:
        raise WiringFailed(str(error)) from error
    return f"One API serves {', '.join(models)} through channel {CHANNEL_NAME!r}."


def _test_channel(client: OneAPIClient, channel_id: int, model: str, log: Log) -> None:
    result = client.test_channel(channel_id)
    if not result["success"]:
        raise WiringFailed(
            f"One API's test of channel {CHANNEL_NAME!r} (a chat request to {model!r} through "
            f"Xinference) failed: {result['message'] or 'no reason given'}."
        )
    log(f"Channel test passed: {model!r} answered through One API in {result['time']:.2f} s.")


def _fastgpt_token(stack: Stack, client: OneAPIClient, log: Log) -> str:
    kept = stack_secrets(stack).get(ONEAPI_FASTGPT_KEY)
    rows = client.tokens_named(FASTGPT_TOKEN_NAME)
    if kept and any(row.get("key") == kept for row in rows):
        return kept
    for row in rows:
        client.delete_token(row["id"])
    key = client.add_token(FASTGPT_TOKEN_NAME)["key"]
    save_obtained_secret(stack, ONEAPI_FASTGPT_KEY, key)
    log(f"Relay token {FASTGPT_TOKEN_NAME!r} made for FastGPT (kept encrypted, never shown).")
    return key


def _wait_for_routes(
    client: OneAPIClient,
    key: str,
    chat: list[str],
    embedding: list[str],
    log: Log,
    check_cancel: Callable[[], None],
) -> None:
    """One API routes a changed channel only after its next cache sync: wait for it. Every
    model is asked for, since the models routed before the change answer at once."""
    probes = [(model, False) for model in chat] + [(model, True) for model in embedding]
    for model, is_embedding in probes:
        _wait_until_routed(client, key, model, is_embedding, check_cancel)
        log(f"One API routes {model!r}.")


def _wait_until_routed(
    client: OneAPIClient,
    key: str,
    model: str,
    is_embedding: bool,
    check_cancel: Callable[[], None],
) -> None:
    timeout = settings.ONEAPI_ROUTE_TIMEOUT
    why = ""

    def routed() -> bool | None:
        nonlocal why
        ok, why = client.relay_routes(key, model, embedding=is_embedding)
        return True if ok else None

    wait_for(
        routed,
        timeout=timeout,
        interval=ROUTE_POLL_SECONDS,
        check_cancel=check_cancel,
        on_timeout=lambda: (
            f"One API still does not route {model!r} after {timeout} s ({why}). Its memory "
            "cache refreshes every SYNC_FREQUENCY seconds; restart the oneapi service to "
            "refresh it now."
        ),
    )


def update_fastgpt(stack: Stack, log: Log) -> str:
    """Write config.json (and .env, for FastGPT's relay token) from the ready models and
    recreate the fastgpt container, which reads config.json only when it starts."""
    stack.refresh_from_db(fields=["secrets", "rendered_files"])
    rendered = stack_files(stack)
    if FASTGPT_SERVICE not in rendered.compose_services():
        return "This stack has no FastGPT."
    shown = rendered.shown()
    previous = stack.rendered_files or {}
    diff = files_diff(
        {name: previous.get(name, "") for name in (CONFIG_FILE, ENV_FILE)},
        {name: shown[name] for name in (CONFIG_FILE, ENV_FILE)},
    )
    if diff:
        log(diff.rstrip("\n"))
    with open_session(stack.server) as ssh:
        ssh.upload(rendered.files[CONFIG_FILE], f"{stack.data_dir}/{CONFIG_FILE}", mode=0o644)
        ssh.upload(rendered.files[ENV_FILE], f"{stack.data_dir}/{ENV_FILE}", mode=0o600)
        facts = server_facts(ssh)
        ssh.run(
            [
                *compose_argv(ssh, stack, facts),
                "up",
                "-d",
                "--no-deps",
                "--force-recreate",
                FASTGPT_SERVICE,
            ],
            sudo=True,
            timeout=600,
            on_output=log,
        )
    stack.rendered_files = {**previous, CONFIG_FILE: shown[CONFIG_FILE], ENV_FILE: shown[ENV_FILE]}
    stack.save(update_fields=["rendered_files", "updated_at"])
    return "FastGPT's config.json written and its container recreated."


def expected_in_fastgpt(stack: Stack) -> dict[str, list[str]]:
    configs = launched_configs(stack)
    return {
        "llmModels": [config.model for config in configs["llms"]],
        "vectorModels": [config.model for config in configs["embeddings"]],
        "reRankModels": [config.model for config in configs["reranks"]],
    }


def verify_fastgpt(
    stack: Stack, log: Log, check_cancel: Callable[[], None] = never_cancelled
) -> str:
    """Ask FastGPT (getInitData) until it answers, and check it lists exactly the ready models."""
    if CONFIG_FILE not in (stack.rendered_files or {}):
        return "This stack has no FastGPT."
    expected = expected_in_fastgpt(stack)
    timeout = settings.STACK_HEALTH_TIMEOUT
    last_error: list[FastGPTError] = []
    with FastGPTClient(fastgpt_url(stack)) as client:

        def init_data() -> dict | None:
            try:
                return client.init_data()
            except FastGPTError as error:
                if error.permanent:
                    raise WiringFailed(str(error)) from error
                last_error[:] = [error]
                return None

        data = wait_for(
            init_data,
            timeout=timeout,
            interval=FASTGPT_POLL_SECONDS,
            check_cancel=check_cancel,
            on_timeout=lambda: (
                f"FastGPT did not answer within {timeout} s: {last_error[0] if last_error else ''}"
            ),
        )
    listed = {key: [model.get("model") for model in data.get(key) or []] for key in expected}
    wrong = [key for key in expected if sorted(listed[key]) != sorted(expected[key])]
    if wrong:
        raise WiringFailed(
            "FastGPT did not load the models of its new config.json: "
            + "; ".join(f"{key} lists {listed[key]}, expected {expected[key]}" for key in wrong)
            + "."
        )
    names = [model for models in expected.values() for model in models]
    summary = ", ".join(names) if names else "no models"
    log(f"FastGPT {data.get('systemVersion', '')} lists {summary}.")
    return f"FastGPT lists {summary}."
