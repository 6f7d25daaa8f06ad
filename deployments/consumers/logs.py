"""Live container logs over a websocket: one service, or every service of a stack interleaved.

The browser opens /ws/services/<id>/logs/ or /ws/stacks/<id>/logs/ with its session cookie (no
token in the URL; the Origin header is checked in asgi.py). The only query parameter is the
history it wants: ?tail=N (default 300, at most 5000). A user outside the object's team, or not
logged in, is refused before the handshake completes. While the socket is open, access is asked
again every few seconds (live_access.py): a viewer logged out, whose session expired or who left
the team is cut off with the same close codes (4401, 4403).

The lines are masked of the stack's secrets by the hub, before any viewer gets them.

Server messages:

    {"type": "status", "state": "connecting" | "following" | "ended" | "error",
     "message": "...", "service": "fastgpt"}          service: on the stack socket only
    {"type": "lines", "seq": 12, "skipped": 0, "lines": [
        {"ts": "2025-01-31T12:00:00.123Z", "stream": "stdout", "text": "...",
         "service": "fastgpt",                          on the stack socket only
         "segments": [["text", "ansi-bold ansi-red"], ...],   where the line has colours
         "cut": 83616},                                  where a long line was cut
    ...]}

`skipped` counts the lines dropped for this viewer just before the first line of the message,
because it fell behind. The browser acknowledges what it has received:

    {"type": "ack", "seq": 12}

and the server sends at most WINDOW messages ahead of the last acknowledged seq: a viewer that
stops reading (a frozen tab, a slow link) leaves its lines in its own bounded queue instead of
in a send buffer that grows without limit. The stream waits for it up to a second (a moment
of a busy machine costs no line); after that its oldest waiting lines are dropped and counted.
After the final status ("ended", "error") of everything it follows, the server closes the socket
(1000).

Lines are sent in batches, every BATCH_SECONDS or BATCH_LINES lines, whichever comes first.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path
from django.utils import translation
from django.utils.translation import gettext as _

from .. import access
from ..logs.hub import Subscription, get_hub, service_prefix, status, with_prefix
from ..logs.source import open_remote_logs
from ..models import Server, Service, Stack
from .live_access import CLOSE_NOT_LOGGED_IN, CLOSE_NOT_VISIBLE, watch_and_close
from .runs import scope_language

logger = logging.getLogger(__name__)

DEFAULT_TAIL = 300
MAX_TAIL = 5000
BATCH_SECONDS = 0.05
BATCH_LINES = 500
# Messages of lines sent and not yet acknowledged.
WINDOW = 4
TERMINAL = ("ended", "error")


@dataclass
class Target:
    service: str
    server: Server
    container: str


def parse_tail(query_string: bytes) -> int:
    values = parse_qs(query_string.decode("latin-1")).get("tail")
    try:
        tail = int(values[-1]) if values else DEFAULT_TAIL
    except ValueError:
        return DEFAULT_TAIL
    return max(0, min(tail, MAX_TAIL))


class LogsConsumer(AsyncWebsocketConsumer):
    """What both log sockets share; subclasses say which containers to follow."""

    # Lines come from the in-process hub, never through the channel layer: without one, a
    # viewer does not hold a Redis connection blocked in a receive loop for nothing.
    channel_layer_alias = None
    # Whether lines and statuses carry the service's name.
    tag_service = False

    async def load_targets(self, user) -> list[Target] | None:
        """The containers to follow, or None where the user may not see the object."""
        raise NotImplementedError

    def can_see(self, user) -> bool:
        """Whether `user` may still see the object (blocking: the database)."""
        raise NotImplementedError

    async def connect(self) -> None:
        self.subscriptions: dict[Subscription, Target] = {}
        self._prefixes: dict[Subscription, str] = {}
        self._done: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._acked_event = asyncio.Event()
        self._pump: asyncio.Task | None = None
        self._watch: asyncio.Task | None = None
        self._sent = 0
        self._acked = 0
        self._last_flush = 0.0
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        targets = await self.load_targets(user)
        if targets is None:
            await self.close(code=CLOSE_NOT_VISIBLE)
            return
        await self.accept()
        tail = parse_tail(self.scope.get("query_string", b""))
        hub = get_hub()
        following = False
        for target in targets:
            if not target.container:
                with translation.override(scope_language(self.scope)):
                    text = _("%(service)s has no container yet: deploy the stack first.") % {
                        "service": target.service
                    }
                await self._send_status(target, status("error", text))
                continue
            subscription = hub.subscribe(
                (target.server.pk, target.container),
                partial(open_remote_logs, target.server, target.container),
                tail=tail,
                notify=self._notify,
            )
            self.subscriptions[subscription] = target
            self._prefixes[subscription] = (
                service_prefix(target.service) if self.tag_service else ""
            )
            if not subscription.statuses:
                await self._send_status(target, status("connecting"))
            following = True
        if not following:
            if not targets:
                with translation.override(scope_language(self.scope)):
                    message = status("error", _("This stack has no services."))
                await self.send(text_data=json.dumps(message))
            await self.close()
            return
        self._pump = asyncio.create_task(self._run())
        self._watch = asyncio.create_task(watch_and_close(self.scope, self.can_see, self._cut_off))
        self._notify()

    async def disconnect(self, code: int) -> None:
        watch = getattr(self, "_watch", None)
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        await self._stop_following()

    async def _stop_following(self) -> None:
        pump = getattr(self, "_pump", None)
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        hub = get_hub()
        for subscription in getattr(self, "subscriptions", {}):
            hub.unsubscribe(subscription)
        self.subscriptions = {}

    async def _cut_off(self, code: int) -> None:
        """The viewer may no longer watch: no line more, then the close."""
        await self._stop_following()
        await self.close(code=code)

    async def dispatch(self, message: dict) -> None:
        if message["type"] == "websocket.receive":
            # An acknowledgement touches no database: skip the connection clean-up that
            # channels runs in a worker thread before every message, which would delay the
            # next lines by a thread hop per ack.
            await self.websocket_receive(message)
            return
        await super().dispatch(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = json.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("type") != "ack":
            return
        seq = message.get("seq")
        if type(seq) is int and self._acked < seq <= self._sent:
            self._acked = seq
            self._acked_event.set()

    # Sending

    def _pending(self) -> int:
        return sum(len(subscription) for subscription in self.subscriptions)

    def _notify(self) -> None:
        self._wake.set()
        if self._pending() >= BATCH_LINES:
            self._full.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                delay = self._last_flush + BATCH_SECONDS - loop.time()
                if delay > 0 and self._pending() < BATCH_LINES:
                    self._full.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), delay)
                await self._flush()
                self._last_flush = loop.time()
                if len(self._done) == len(self.subscriptions):
                    await self.close()
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Sending log lines failed")
            await self.close()

    async def _flush(self) -> None:
        """Send what is waiting: statuses that start a stream, lines while the window allows,
        then the final status of a stream once its lines are out."""
        while True:
            for subscription in self.subscriptions:
                if subscription.statuses and subscription.statuses[0]["state"] not in TERMINAL:
                    await self._send_status(
                        self.subscriptions[subscription], subscription.statuses.pop(0)
                    )
            if self._pending():
                if self._sent - self._acked >= WINDOW:
                    # Lines wait in the subscriptions' bounded queues until the viewer
                    # catches up; the next call comes with the ack (or new lines).
                    self._acked_event.clear()
                    await self._acked_event.wait()
                    continue
                await self._send_lines()
                continue
            for subscription, target in self.subscriptions.items():
                for message in subscription.take_statuses():
                    await self._send_status(target, message)
                    if message["state"] in TERMINAL:
                        self._done.add(subscription)
            return

    async def _send_lines(self) -> None:
        active = [s for s in self.subscriptions if len(s)]
        share = -(-BATCH_LINES // len(active))
        skipped = 0
        taken: list[tuple[str | None, str]] = []
        for subscription in active:
            dropped, lines = subscription.take(share)
            skipped += dropped
            prefix = self._prefixes[subscription]
            if prefix:
                lines = with_prefix(lines, prefix)
            taken.extend(lines)
        if len(active) > 1:
            taken.sort(key=lambda line: line[0] or "")
        self._sent += 1
        await self.send(
            text_data=(
                f'{{"type":"lines","seq":{self._sent},"skipped":{skipped},"lines":['
                + ",".join(encoded for _, encoded in taken)
                + "]}"
            )
        )

    async def _send_status(self, target: Target, message: dict) -> None:
        if self.tag_service:
            message = {**message, "service": target.service}
        await self.send(text_data=json.dumps(message, ensure_ascii=False))


class ServiceLogsConsumer(LogsConsumer):
    """The log of one service's container."""

    async def load_targets(self, user) -> list[Target] | None:
        return await _service_targets(user, self.scope["url_route"]["kwargs"]["service_id"])

    def can_see(self, user) -> bool:
        service_id = self.scope["url_route"]["kwargs"]["service_id"]
        return access.visible(Service.objects.filter(pk=service_id), user).exists()


class StackLogsConsumer(LogsConsumer):
    """The logs of every service of a stack, interleaved, each line naming its service."""

    tag_service = True

    async def load_targets(self, user) -> list[Target] | None:
        return await _stack_targets(user, self.scope["url_route"]["kwargs"]["stack_id"])

    def can_see(self, user) -> bool:
        stack_id = self.scope["url_route"]["kwargs"]["stack_id"]
        return access.visible(Stack.objects.filter(pk=stack_id), user).exists()


def service_targets(user, service_id: int) -> list[Target] | None:
    service = (
        access.visible(Service.objects.select_related("stack__server"), user)
        .filter(pk=service_id)
        .first()
    )
    if service is None:
        return None
    return [Target(service.name, service.stack.server, service.container_name)]


def stack_targets(user, stack_id: int) -> list[Target] | None:
    stack = access.visible(Stack.objects.select_related("server"), user).filter(pk=stack_id).first()
    if stack is None:
        return None
    return [
        Target(service.name, stack.server, service.container_name)
        for service in stack.services.order_by("name")
    ]


_service_targets: Callable = database_sync_to_async(service_targets)
_stack_targets: Callable = database_sync_to_async(stack_targets)

websocket_urlpatterns = [
    path("ws/services/<int:service_id>/logs/", ServiceLogsConsumer.as_asgi()),
    path("ws/stacks/<int:stack_id>/logs/", StackLogsConsumer.as_asgi()),
]
