"""Wire a stack's launched models into One API and FastGPT, as a person would by hand.

One API gets one channel for the stack's Xinference with the ready chat and embedding models
(chat first: One API's channel test asks the first model to chat), and a relay token FastGPT
uses. FastGPT gets a config.json listing the ready models (rerank ones point at Xinference
directly), and since V4.8 reads it once, its container is recreated, then asked through
getInitData which models it loaded.

A team's remote providers (cloud model services) get one channel each, named after the
provider; their chat models are listed in config.json next to the launched ones. The channel
named "xinference" is the launched models' own, and no provider may take that name.

Everything is computed from the launches that are ready now, so each function can run again
after any launch or termination and leaves the same result. A lock per stack keeps two model
runs from writing the channel or the files at the same moment. Every wait honours the
caller's `check_cancel`.
"""

import contextlib
from collections.abc import Callable, Iterable, Iterator

import redis
from django.conf import settings
from django.utils import timezone

from ..clients.fastgpt import FastGPTClient, FastGPTError
from ..clients.oneapi import (
    OneAPIClient,
    OneAPIError,
    first_run_setup,
    provider_channel,
    xinference_channel,
)
from ..clients.ssh import SSHError
from ..errors import PanelError
from ..models import RemoteProvider, Stack
from ..servers.sessions import open_session
from ..stacks.compose import compose_argv, server_facts
from ..stacks.endpoints import fastgpt_url, service_url
from ..stacks.files import (
    fastgpt_configs,
    files_diff,
    launched_configs,
    stack_files,
)
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


@contextlib.contextmanager
def _oneapi(stack: Stack) -> Iterator[OneAPIClient]:
    """A client for the stack's One API (through SSH unless the stack publishes it)."""
    with service_url(stack, "oneapi") as url:
        token = stack_secrets(stack).get(ONEAPI_ACCESS_TOKEN)
        if not token:
            # A stack deployed before the panel kept One API's token: sign in now.
            token = first_run_setup(url, stack_secrets(stack)["ONEAPI_ROOT_PASSWORD"])
            save_obtained_secret(stack, ONEAPI_ACCESS_TOKEN, token)
        with OneAPIClient(url, token) as client:
            yield client


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
    except (OneAPIError, SSHError) as error:
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
        note = _wait_until_routed(client, key, model, is_embedding, check_cancel)
        # Routed, but the model server behind the channel answered 503: say so, it is not
        # One API's cache.
        log(f"Warning: {note}." if note else f"One API routes {model!r}.")


def _wait_until_routed(
    client: OneAPIClient,
    key: str,
    model: str,
    is_embedding: bool,
    check_cancel: Callable[[], None],
) -> str:
    """Wait until One API routes MODEL; "" or, when the model server itself answered 503
    through the route, a sentence saying so."""
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
    return why


# Remote providers ----------------------------------------------------------------------------
# Each provider of a stack has one One API channel named after it. The channel named
# CHANNEL_NAME is the launched models' alone: these functions never touch it, and
# update_oneapi touches no other name.

MASK = "********"
# Parts of a multi-part key ("APIKey|SecretKey") shorter than this are not masked on their own.
KEY_PART_MIN = 6


def mask_key(text: str, key: str) -> str:
    """`text` with a provider's key, and each part of a key made of several, masked."""
    if not key:
        return text
    text = text.replace(key, MASK)
    for part in key.split("|"):
        if len(part) >= KEY_PART_MIN:
            text = text.replace(part, MASK)
    return text


def _providers(stack: Stack) -> list[RemoteProvider]:
    return list(RemoteProvider.objects.filter(stack_id=stack.pk, team_id=stack.team_id))


def update_provider_channels(
    stack: Stack,
    log: Log,
    removed: Iterable[dict] = (),
    check_cancel: Callable[[], None] = never_cancelled,
) -> str:
    """Create or update one channel per remote provider of the stack, delete the channels of
    providers removed since (`removed`: their {"id", "name"}), make sure FastGPT has its relay
    token, and wait until One API routes the providers' models."""
    providers = _providers(stack)
    keys = [provider.api_key for provider in providers]
    try:
        with _oneapi(stack) as client:
            for key in keys:
                client.hide(key)
            for provider in providers:
                _sync_provider_channel(client, provider, log)
            held = {provider.oneapi_channel_id for provider in providers}
            for channel in removed:
                _delete_removed_channel(client, channel, held, log)
            if providers:
                relay_key = _fastgpt_token(stack, client, log)
                chat = [model for provider in providers for model in provider.model_names]
                chat = list(dict.fromkeys(chat))
                _wait_for_routes(client, relay_key, chat, [], log, check_cancel)
    except (OneAPIError, SSHError) as error:
        message = str(error)
        for key in keys:
            message = mask_key(message, key)
        raise WiringFailed(message) from error
    if not providers:
        return "This stack has no remote providers: One API has no channel of theirs."
    names = ", ".join(provider.name for provider in providers)
    return f"One API has a channel for each remote provider: {names}."


def _sync_provider_channel(client: OneAPIClient, provider: RemoteProvider, log: Log) -> None:
    if provider.name == CHANNEL_NAME:
        raise WiringFailed(
            f"A remote provider may not be called {CHANNEL_NAME!r}: that channel is the "
            "launched models'. Rename the provider."
        )
    body = provider_channel(
        provider.name,
        provider.channel_type,
        provider.base_url,
        provider.model_names,
        provider.api_key,
    )
    models = ", ".join(provider.model_names)
    rows = client.channels_named(provider.name)
    kept = next((row for row in rows if row["id"] == provider.oneapi_channel_id), None)
    kept = kept or (rows[0] if rows else None)
    if kept is not None:
        # Enabled again if One API disabled it: a disabled channel routes nothing.
        client.update_channel({**body, "id": kept["id"], "status": CHANNEL_ENABLED})
        for extra in rows:
            if extra["id"] != kept["id"]:
                client.delete_channel(extra["id"])
        channel_id = kept["id"]
        log(f"Channel {provider.name!r} (id {channel_id}) now serves {models}.")
    else:
        channel_id = client.add_channel(body)["id"]
        log(f"Channel {provider.name!r} (id {channel_id}) created for {models}.")
    if provider.oneapi_channel_id != channel_id:
        provider.oneapi_channel_id = channel_id
        RemoteProvider.objects.filter(pk=provider.pk).update(oneapi_channel_id=channel_id)


def _delete_removed_channel(
    client: OneAPIClient, channel: dict, held: set[int | None], log: Log
) -> None:
    """Delete a removed provider's channel: only that id, and only while it still bears the
    provider's name and no provider holds it now."""
    channel_id, name = channel.get("id"), channel.get("name")
    if not channel_id or not name or name == CHANNEL_NAME or channel_id in held:
        return
    row = client.get_channel(channel_id)
    if row is None or row.get("name") != name:
        log(f"Channel {name!r} (id {channel_id}) is gone already.")
        return
    client.delete_channel(channel_id)
    log(f"Channel {name!r} (id {channel_id}) deleted: its provider was removed.")


def check_provider_channels(stack: Stack, log: Log) -> str:
    """Have One API test each provider's channel (a short chat request to its first model),
    record each result on the provider, and fail naming every channel that failed."""
    providers = _providers(stack)
    if not providers:
        return "No remote provider to test."
    failed = []
    with _oneapi(stack) as client:
        for provider in providers:
            client.hide(provider.api_key)
            ok, message = _test_provider(client, provider)
            provider.last_test_ok, provider.last_test_message = ok, message
            provider.last_tested_at = timezone.now()
            RemoteProvider.objects.filter(pk=provider.pk).update(
                last_test_ok=ok,
                last_test_message=message,
                last_tested_at=provider.last_tested_at,
            )
            log(message)
            if not ok:
                failed.append(message)
    if failed:
        raise WiringFailed(" ".join(failed))
    return f"Every remote provider's channel passed One API's test ({len(providers)})."


def _test_provider(client: OneAPIClient, provider: RemoteProvider) -> tuple[bool, str]:
    key = provider.api_key
    if provider.oneapi_channel_id is None:
        return False, f"{provider.name}: One API has no channel for it yet; sync it again."
    try:
        result = client.test_channel(provider.oneapi_channel_id)
    except OneAPIError as error:
        return False, mask_key(f"{provider.name}: {error}", key)
    first = provider.model_names[0] if provider.model_names else ""
    if result["success"]:
        return True, (
            f"{provider.name}: channel test passed ({first!r} answered through One API in "
            f"{result['time']:.2f} s)."
        )
    said = mask_key(result["message"] or "no reason given", key)
    return False, (
        f"{provider.name}: One API's test of the channel (a chat request to {first!r}) failed: "
        f"{said}"
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
    """What FastGPT must list: the ready launched models and the remote providers' models."""
    configs = fastgpt_configs(stack)
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
