"""The secret scan after real runs: every secret the panel knows of a stack, searched for in
everything a person can be shown or that is kept in the database in the clear.

    scan = SecretScan(known_secrets(stack, markers={"provider key": key}))
    scan_stored_texts(scan)
    scan_pages(scan, client, paths)
    asyncio.run(scan_log_socket(scan, stack, user))
    scan.assert_clean(floors={...})

`look` counts what it searched by kind, so a scan that saw nothing (no page, no log line)
fails its floors rather than passing.
"""

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.db import models

from deployments.clients.oneapi import DEFAULT_ROOT_PASSWORD
from deployments.logs import redact
from deployments.models import RemoteProvider, Server, Stack
from deployments.stacks.secrets import stack_secrets
from testkit.permissions import Route
from testkit.websockets import in_thread, session_cookie

# Where the panel holds its secrets, on purpose (encrypted): the only stored texts not searched.
HOLDERS = {
    (Stack, "secrets"),
    (Server, "ssh_private_key"),
    (RemoteProvider, "api_key"),
}
# What a log viewer is shown where FastGPT printed its root password.
MASKED_ROOT_INIT = f"password: '{redact.MARKER}'"


def known_secrets(stack: Stack, *, markers: dict[str, str] | None = None) -> dict[str, str]:
    """Every secret the panel knows of `stack`, by a name for the messages: the values its log
    masking looks for (the stack's secrets, its providers' keys, the hash FastGPT's login
    takes), One API's default root password where One API prints it, each line of the body
    of the server's private key, and `markers` planted by the test."""
    stack.refresh_from_db()
    held = stack_secrets(stack)
    names = {value: f"Stack.secrets[{name}]" for name, value in held.items()}
    names[hashlib.sha256(held[redact.FASTGPT_ROOT_PASSWORD].encode()).hexdigest()] = (
        "FastGPT's login hash of its root password"
    )
    for provider in RemoteProvider.objects.filter(stack=stack):
        names[provider.api_key] = f"API key of provider {provider.name}"
    known: dict[str, str] = {}
    for value in sorted(redact.stack_values([stack.pk])):
        known[names.get(value, f"a value masked in logs ({len(value)} characters)")] = value
    known["One API's default root password"] = f"password is {DEFAULT_ROOT_PASSWORD}"
    server = Server.objects.get(pk=stack.server_id)
    for number, line in enumerate(server.ssh_private_key.strip().splitlines()[1:-1]):
        known[f"ssh private key line {number}"] = line
    for name, value in (markers or {}).items():
        if value not in known.values():
            known[f"marker {name}"] = value
    return known


@dataclass
class SecretScan:
    secrets: dict[str, str]
    seen: Counter = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)

    def look(self, kind: str, where: str, text: str) -> None:
        """Search `text` (from `where`, counted under `kind`) for every secret."""
        self.seen[kind] += 1
        for name, value in self.secrets.items():
            if value in text:
                self.leaks.append(f"{name} in {kind}: {where}")

    def assert_clean(self, floors: dict[str, int]) -> None:
        assert self.leaks == [], "\n".join(self.leaks)
        short = {kind: self.seen[kind] for kind, floor in floors.items() if self.seen[kind] < floor}
        assert short == {}, f"the scan saw too little: {short} of {floors}"


def _text_fields(model) -> list[models.Field]:
    kinds = (models.CharField, models.TextField, models.JSONField)
    return [
        f
        for f in model._meta.concrete_fields
        if isinstance(f, kinds) and (model, f.name) not in HOLDERS
    ]


def scan_stored_texts(scan: SecretScan) -> None:
    """Every text and JSON column of every row of the panel's models (run and step outputs
    and errors, events, documents' errors, audit details, rendered files...), but the holders."""
    for model in apps.get_app_config("deployments").get_models():
        fields = _text_fields(model)
        if not fields:
            continue
        for row in model._default_manager.values("pk", *(f.name for f in fields)):
            for f in fields:
                value = row[f.name]
                if value in (None, "", {}, []):
                    continue
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                scan.look("stored text", f"{model.__name__}.{f.name} #{row['pk']}", text)


def scan_pages(scan: SecretScan, client, paths: Iterable[str], *, partial: bool = False) -> None:
    """GET each path with `client` (logged in) and search what it answers; `partial` asks as
    htmx does when it polls a part of a page."""
    kind = "partial" if partial else "page"
    headers = {"HX-Request": "true"} if partial else {}
    for path in paths:
        response = client.get(path, headers=headers)
        assert response.status_code < 500 or response.status_code == 502, (
            f"{path} answered {response.status_code}"
        )
        body = (
            b"".join(response.streaming_content)
            if getattr(response, "streaming", False)
            else response.content
        )
        scan.look(kind, f"{path} ({response.status_code})", body.decode(errors="replace"))


def scan_polled_log_lines(scan: SecretScan, client, path: str) -> None:
    """The recent-lines JSON a log page polls where its websocket is down (what its download
    is made of then): each line searched as a log line."""
    response = client.get(path)
    scan.look("page", path, response.content.decode(errors="replace"))
    if response.status_code != 200:
        return  # a container whose log could not be read: its message was searched
    for line in response.json()["lines"]:
        scan.look("polled log line", path, line["text"])
        if line.get("service") == "fastgpt" and MASKED_ROOT_INIT in line["text"]:
            scan.seen["masked FastGPT root-init line, polled"] += 1


def page_paths(
    routes: Iterable[Route],
    objects: dict[str, list],
    *,
    pk_of: dict[str, str | None],
    object_arguments: dict[str, str],
    fixed_arguments: dict[str, object],
    names: Iterable[str] | None = None,
) -> list[str]:
    """The path of each route (of `names`, or all) for every object its pk may be (`pk_of`:
    route name -> kind of object in `objects`), its other arguments filled with the first object
    of their kind or a fixed value. A route about a kind of object there is none of is left out."""
    wanted = None if names is None else set(names)
    paths: list[str] = []
    for route in routes:
        if wanted is not None and route.name not in wanted:
            continue
        values: dict[str, object] = {}
        missing = False
        for name in route.arguments:
            if name == "pk":
                continue
            if name in object_arguments and objects.get(object_arguments[name]):
                values[name] = objects[object_arguments[name]][0].pk
            elif name in fixed_arguments:
                values[name] = fixed_arguments[name]
            else:
                missing = True
        if missing:
            continue
        if "pk" not in route.arguments:
            paths.append(route.path(values))
            continue
        for target in objects.get(pk_of.get(route.name) or "", []):
            paths.append(route.path({**values, "pk": target.pk}))
    return paths


async def _open(path: str, user) -> WebsocketCommunicator:
    from controlpanel.asgi import application

    headers = [
        (b"host", b"localhost"),
        (b"origin", b"http://localhost"),
        (b"cookie", await in_thread(session_cookie, user)),
    ]
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=30)
    assert connected, f"{path} refused with {code}"
    return communicator


async def scan_log_socket(
    scan: SecretScan, stack: Stack, user, *, quiet: float = 3.0, timeout: float = 60.0
) -> None:
    """Follow the stack's log socket (every service, the longest history it gives) until no
    line came for `quiet` seconds, searching every frame and every line's text and coloured
    parts; each line counts under "log line", FastGPT's masked root-init line under its own."""
    communicator = await _open(f"/ws/stacks/{stack.pk}/logs/?tail=5000", user)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            # (A receive that times out would cancel the consumer: wait for quiet first.)
            if await communicator.receive_nothing(timeout=quiet):
                break
            frame = await communicator.receive_from()
            scan.look("log frame", f"stack {stack.pk} log socket", frame)
            message = json.loads(frame)
            if message["type"] != "lines":
                continue
            for line in message["lines"]:
                scan.look("log line", line.get("service", ""), line["text"])
                for text, _classes in line.get("segments", []):
                    scan.look("log segment", line.get("service", ""), text)
                if line.get("service") == "fastgpt" and MASKED_ROOT_INIT in line["text"]:
                    scan.seen["masked FastGPT root-init line"] += 1
            await communicator.send_json_to({"type": "ack", "seq": message["seq"]})
    finally:
        await communicator.disconnect()


async def scan_run_socket(scan: SecretScan, run_id: int, user, *, timeout: float = 30.0) -> None:
    """The run socket of a finished run: the steps section it sends, until it closes."""
    communicator = await _open(f"/ws/runs/{run_id}/", user)
    try:
        while True:
            output = await communicator.receive_output(timeout=timeout)
            if output["type"] == "websocket.close":
                break
            scan.look("run frame", f"run {run_id} socket", output.get("text") or "")
    finally:
        await communicator.disconnect()


__all__ = [
    "MASKED_ROOT_INIT",
    "SecretScan",
    "known_secrets",
    "page_paths",
    "scan_log_socket",
    "scan_pages",
    "scan_polled_log_lines",
    "scan_run_socket",
    "scan_stored_texts",
]
