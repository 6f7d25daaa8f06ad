"""No secret of a stack reaches a viewer of its logs, whatever service prints it.

Lines go the way a real one goes from `docker logs` on: cut into lines, masked by the hub's feed,
then out over the websockets and the recent-lines JSON (the page's download is made from the
lines it received). The remote stream is a stand-in in the fast tests; the last test reads a real
container over SSH. The lines FastGPT and One API print at start are taken from their stand-ins
(testkit/standins/), which print them as the real services do.
"""

import contextlib
import hashlib
import io

import pytest
from django.test import Client
from django.urls import reverse

from deployments.consumers import logs as log_consumers
from deployments.logs import redact
from deployments.logs.redact import MARKER
from deployments.models import RemoteProvider, Service
from deployments.stacks.secrets import (
    ONEAPI_ACCESS_TOKEN,
    ONEAPI_FASTGPT_KEY,
    new_secret,
    save_obtained_secret,
    stack_secrets,
)
from testkit.factories import make_server, make_stack
from testkit.logwriter import LogWriter
from testkit.logwriter import remove_leftovers as remove_writer_leftovers
from testkit.standins.fastgpt.app import FastGPT
from testkit.standins.oneapi.app import OneAPI
from testkit.websockets import in_thread
from tests.test_log_consumers import Remote, follow, receive_lines, receive_status
from tests.test_log_hub import stamped
from tests.test_views_logs import get_json, install_remote

FASTGPT_CONTAINER = "prod-fastgpt-1"
ONEAPI_CONTAINER = "prod-oneapi-1"
PROVIDER_KEY = "sk-remote-" + "k" * 8 + "Z9y8X7w6V5u4"


@pytest.fixture(autouse=True)
def _fresh_secret_cache():
    # Ids of the stacks of earlier tests come again: their cached values would not be these.
    redact.cache.clear()
    yield
    redact.cache.clear()


@pytest.fixture
def stack(team):
    stack = make_stack(make_server(team, name="gpu-a"), name="prod")
    Service.objects.create(stack=stack, name="fastgpt", container_name=FASTGPT_CONTAINER)
    Service.objects.create(stack=stack, name="oneapi", container_name=ONEAPI_CONTAINER)
    stack_secrets(stack)
    save_obtained_secret(stack, ONEAPI_ACCESS_TOKEN, new_secret())
    RemoteProvider.objects.create(
        team=team, stack=stack, name="cloud", api_key=PROVIDER_KEY, model_names=["gpt-4o"]
    )
    return stack


@pytest.fixture
def remote(monkeypatch) -> Remote:
    fake = Remote()
    monkeypatch.setattr(log_consumers, "open_remote_logs", fake)
    return fake


def known_secrets(stack) -> dict[str, str]:
    """Every secret the panel knows of the stack, by a name for the test."""
    values = dict(stack_secrets(stack))
    values["provider api_key"] = PROVIDER_KEY
    values["FastGPT login hash"] = hashlib.sha256(
        values["FASTGPT_ROOT_PASSWORD"].encode()
    ).hexdigest()
    return values


def printed(start) -> str:
    """What `start()` prints on stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        start()
    return out.getvalue()


def fastgpt_root_init(password: str) -> str:
    """The line FastGPT prints when it makes its root user with `password`."""
    standin = FastGPT({"DEFAULT_ROOT_PSW": password})
    try:
        return printed(standin._init_root_user).strip("\n")
    finally:
        standin.close()


def oneapi_first_start() -> list[str]:
    """The lines One API prints on its first start, the default root password among them."""
    standins: list[OneAPI] = []
    lines = printed(lambda: standins.append(OneAPI({}))).splitlines()
    standins[0].close()
    return lines


def shown(messages: list[dict]) -> list[dict]:
    return [line for message in messages for line in message["lines"]]


def assert_nothing_of(values, lines: list[dict]) -> None:
    for line in lines:
        for value in values:
            assert value not in line["text"]
            for text, _classes in line.get("segments", []):
                assert value not in text


# FastGPT's and One API's own start-up lines


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("password", ["generated", "123456", "Some-Other-Password!"])
async def test_fastgpts_root_user_line_is_shown_with_its_password_masked_whatever_its_value(
    stack, viewer, remote, password
):
    if password == "generated":
        password = (await in_thread(stack_secrets, stack))["FASTGPT_ROOT_PASSWORD"]
    fastgpt = await in_thread(Service.objects.get, name="fastgpt")
    communicator = await follow(f"/ws/services/{fastgpt.pk}/logs/", viewer)
    line = fastgpt_root_init(password)
    assert password in line

    (await remote.source(FASTGPT_CONTAINER)).put(stamped(line))
    [got] = shown(await receive_lines(communicator, 1))

    assert got["text"] == f"root user init: {{ username: 'root', password: '{MARKER}' }}"
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_one_apis_default_root_password_is_masked_in_its_log_and_only_there(
    stack, viewer, remote
):
    communicator = await follow(f"/ws/stacks/{stack.pk}/logs/", viewer)
    startup = oneapi_first_start()
    assert any("password is 123456" in line for line in startup)

    (await remote.source(ONEAPI_CONTAINER)).put(stamped(*startup, "quota 1234567 left"))
    (await remote.source(FASTGPT_CONTAINER)).put(stamped("chunk 123456 trained", second=1))
    lines = shown(await receive_lines(communicator, len(startup) + 2))

    oneapi = [line["text"] for line in lines if line["service"] == "oneapi"]
    assert oneapi == [
        *(text.replace("password is 123456", f"password is {MARKER}") for text in startup),
        "quota 1234567 left",
    ]
    # Elsewhere six digits are only a number: a value this short is masked only where it is
    # One API's default password.
    assert [line["text"] for line in lines if line["service"] == "fastgpt"] == [
        "chunk 123456 trained"
    ]
    await communicator.disconnect()


# Every secret the panel knows, whatever service prints it


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_every_secret_of_the_stack_is_masked_in_every_services_lines(stack, viewer, remote):
    secrets = await in_thread(known_secrets, stack)
    communicator = await follow(f"/ws/stacks/{stack.pk}/logs/", viewer)
    written = {
        container: [f"{name} is {value}, next" for name, value in secrets.items()]
        for container in (FASTGPT_CONTAINER, ONEAPI_CONTAINER)
    }

    for container, texts in written.items():
        (await remote.source(container)).put(stamped(*texts))
    lines = shown(await receive_lines(communicator, 2 * len(secrets)))

    assert_nothing_of(secrets.values(), lines)
    expected = sorted(f"{name} is {MARKER}, next" for name in secrets)
    for service in ("fastgpt", "oneapi"):
        assert sorted(line["text"] for line in lines if line["service"] == service) == expected
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_secret_in_a_connection_string_is_masked_and_the_rest_kept(stack, viewer, remote):
    password = (await in_thread(stack_secrets, stack))["MONGO_PASSWORD"]
    fastgpt = await in_thread(Service.objects.get, name="fastgpt")
    communicator = await follow(f"/ws/services/{fastgpt.pk}/logs/", viewer)

    text = f"connecting to mongodb://fastgpt:{password}@mongo:27017/fastgpt?authSource=admin"
    (await remote.source(FASTGPT_CONTAINER)).put(stamped(text))
    [got] = shown(await receive_lines(communicator, 1))

    assert got["text"] == (
        f"connecting to mongodb://fastgpt:{MARKER}@mongo:27017/fastgpt?authSource=admin"
    )
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_secret_split_by_colours_is_masked_in_the_text_and_in_its_coloured_parts(
    stack, viewer, remote
):
    token = (await in_thread(stack_secrets, stack))["ONEAPI_ROOT_TOKEN"]
    oneapi = await in_thread(Service.objects.get, name="oneapi")
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)

    coloured = f"\x1b[32mINFO\x1b[0m token sk-{token[:10]}\x1b[1m{token[10:]}\x1b[0m accepted"
    (await remote.source(ONEAPI_CONTAINER)).put(stamped(coloured))
    [got] = shown(await receive_lines(communicator, 1))

    assert got["text"] == f"INFO token sk-{MARKER} accepted"
    assert "".join(text for text, _classes in got["segments"]) == got["text"]
    assert got["segments"][0] == ["INFO", "ansi-green"]
    assert_nothing_of([token[:10], token[10:]], [got])
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_secret_saved_while_the_log_is_followed_is_masked_in_the_lines_after(
    stack, viewer, remote, monkeypatch
):
    # Every batch looks at the stack's secrets again, so no wait is needed for the next look.
    monkeypatch.setattr(redact, "REFRESH_SECONDS", 0)
    oneapi = await in_thread(Service.objects.get, name="oneapi")
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)
    source = await remote.source(ONEAPI_CONTAINER)
    source.put(stamped("started"))
    assert [line["text"] for line in shown(await receive_lines(communicator, 1))] == ["started"]

    key = new_secret()
    await in_thread(save_obtained_secret, stack, ONEAPI_FASTGPT_KEY, key)
    source.put(stamped(f"token sk-{key} created", second=1))
    [got] = shown(await receive_lines(communicator, 1))

    assert got["text"] == f"token sk-{MARKER} created"
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_provider_key_too_short_to_be_a_secret_leaves_ordinary_words_alone(
    stack, team, viewer, remote
):
    await in_thread(
        RemoteProvider.objects.create, team=team, stack=stack, name="local", api_key="EMPTY"
    )
    oneapi = await in_thread(Service.objects.get, name="oneapi")
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)

    (await remote.source(ONEAPI_CONTAINER)).put(stamped(f"EMPTY reply, key {PROVIDER_KEY}"))
    [got] = shown(await receive_lines(communicator, 1))

    assert got["text"] == f"EMPTY reply, key {MARKER}"
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_error_status_that_quotes_a_secret_is_masked(stack, viewer, remote):
    password = (await in_thread(stack_secrets, stack))["MYSQL_ROOT_PASSWORD"]
    oneapi = await in_thread(Service.objects.get, name="oneapi")
    communicator = await follow(f"/ws/services/{oneapi.pk}/logs/", viewer)
    source = await remote.source(ONEAPI_CONTAINER)
    await receive_status(communicator, "following")

    source.outcome_value = ("error", f"Reading the log failed: dsn root:{password}@tcp(mysql)")
    source.end()
    message = await receive_status(communicator, "error")

    assert message["message"] == f"Reading the log failed: dsn root:{MARKER}@tcp(mysql)"
    await communicator.disconnect()


# The recent-lines JSON of browsers that poll


@pytest.mark.django_db(transaction=True)
def test_polled_lines_are_masked_like_the_websockets(stack, viewer, monkeypatch):
    remote, loop = install_remote(monkeypatch)
    try:
        secrets = known_secrets(stack)
        root_password = secrets["FASTGPT_ROOT_PASSWORD"]
        remote.source(FASTGPT_CONTAINER).put(
            stamped(fastgpt_root_init(root_password), *(f"{v} here" for v in secrets.values()))
        )
        remote.source(ONEAPI_CONTAINER).put(stamped(*oneapi_first_start(), second=1))
        client = Client()
        client.force_login(viewer)

        answer = get_json(client, reverse("stack_logs_recent", args=[stack.pk]))

        lines = answer["lines"]
        assert_nothing_of([*secrets.values(), "password is 123456"], lines)
        texts = [line["text"] for line in lines]
        assert f"root user init: {{ username: 'root', password: '{MARKER}' }}" in texts
        assert texts.count(f"{MARKER} here") == len(secrets)
        assert any(f"password is {MARKER}" in text for text in texts)
    finally:
        loop.close()


# A real container's log over SSH


@pytest.fixture(scope="module")
def _no_leftover_writers():
    remove_writer_leftovers()


@pytest.fixture
def writer(_no_leftover_writers):
    with LogWriter() as container:
        yield container


@pytest.fixture
def real_stack(team, ssh_target, writer):
    server = make_server(
        team,
        host=ssh_target.host,
        ssh_port=ssh_target.port,
        ssh_user="root",
        ssh_private_key=ssh_target.key.private_openssh,
    )
    stack = make_stack(server)
    service = Service.objects.create(stack=stack, name="fastgpt", container_name=writer.name)
    stack_secrets(stack)
    return service


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_fastgpts_root_password_printed_in_a_real_container_never_reaches_the_viewer(
    real_stack, writer, viewer
):
    password = (await in_thread(stack_secrets, real_stack.stack))["FASTGPT_ROOT_PASSWORD"]
    line = fastgpt_root_init(password)
    await in_thread(writer.write, f"{line}\nconnected with {password}\n")
    communicator = await follow(f"/ws/services/{real_stack.pk}/logs/?tail=10", viewer)

    got = [line["text"] for line in shown(await receive_lines(communicator, 2))]

    assert got == [
        f"root user init: {{ username: 'root', password: '{MARKER}' }}",
        f"connected with {MARKER}",
    ]
    await communicator.disconnect()


# Text read from a container some other way


@pytest.mark.django_db
def test_a_log_tail_read_outside_the_viewers_can_be_masked_the_same_way(stack):
    secrets = known_secrets(stack)
    tail = "\n".join(
        [
            fastgpt_root_init(secrets["FASTGPT_ROOT_PASSWORD"]),
            *oneapi_first_start(),
            f"dsn root:{secrets['MYSQL_ROOT_PASSWORD']}@tcp(mysql:3306)/oneapi",
        ]
    )

    masked = redact.mask_text(stack.pk, tail, service="oneapi")

    for value in [*secrets.values(), "password is 123456"]:
        assert value not in masked
    assert f"root user init: {{ username: 'root', password: '{MARKER}' }}" in masked
    assert f"dsn root:{MARKER}@tcp(mysql:3306)/oneapi" in masked
    assert len(masked.splitlines()) == len(tail.splitlines())
