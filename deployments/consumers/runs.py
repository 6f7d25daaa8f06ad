"""Live progress of one pipeline run, pushed as HTML to everyone who watches it.

Protocol. A run's page wraps its steps section in an element with htmx's websocket extension
(hx-ext="ws", ws-connect="/ws/runs/<run id>/", see templates/deployments/run_steps.html).
The browser connects with its session cookie and sends nothing; every message is HTML that
the extension swaps into the page out of band, by id, all rendered from the page's own
template partials:

- on connect, the whole steps section as the run's events up to some seq left it;
- for output lines after that seq, an "output-lines" fragment that appends them to their
  running step's output;
- for any other event (a step or the run starting or ending), the whole section again, as of
  the latest seq; so does a step's first line of output (the section then gets the element
  later lines go into) and a long output (it is cut to its latest lines).

Each event is applied once, in order: events at or below the seq of what was last sent are
dropped, and a live event past a gap has the gap filled from the database first. A reconnect
(the extension reconnects by itself when a connection drops) starts over with the whole
section, so it shows what came while the viewer was away without repeating anything. Once a
section shows the run finished, the socket is closed normally, and nothing reconnects.

The group is joined before the section is read, so an event is either in the section or
arrives live (events are published after their transaction commits). A live message can
still be lost (a full channel, a Redis hiccup), so the database is also read every few
seconds while the run is going on. The same tick checks that the viewer is still logged in (the
session read again) and may still see the run (live_access.py); when not, the socket closes.
"""

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.template.loader import render_to_string
from django.urls import path
from django.utils import translation

from .. import access
from ..choices import EventKind, StepStatus
from ..models import PipelineEvent, PipelineRun
from ..pipelines import events
from ..views.runs import LIVE_OUTPUT_LINES, STEPS_TEMPLATE, steps_context
from .live_access import CLOSE_NOT_LOGGED_IN, CLOSE_NOT_VISIBLE, AccessCheck, check_seconds

# Close codes CLOSE_NOT_LOGGED_IN and CLOSE_NOT_VISIBLE (live_access.py): a refusal at connect
# happens before the handshake is accepted, so a browser sees it as a failed connection.

BATCH_SIZE = 200
OUTPUT_LINES_TEMPLATE = f"{STEPS_TEMPLATE}#output-lines"
# Appended lines past this many in one output make the next lines come with the whole
# section instead, cut to its latest LIVE_OUTPUT_LINES: a page open for hours stays small.
MAX_SHOWN_LINES = 2 * LIVE_OUTPUT_LINES

logger = logging.getLogger(__name__)


@dataclass
class Section:
    html: str
    seq: int  # the last event it shows
    lines: dict[int, int]  # step index -> output lines shown, for each running step
    finished: bool


class PipelineRunConsumer(AsyncWebsocketConsumer):
    # How often the database is read for events whose live message was lost.
    catch_up_seconds: float = 5

    async def connect(self) -> None:
        self.run_id: int = self.scope["url_route"]["kwargs"]["run_id"]
        self.group: str | None = None
        self.last_seq = 0
        self.lines: dict[int, int] = {}
        self.finished = False
        self._sending = asyncio.Lock()
        self._catch_up: asyncio.Task | None = None
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        if not await _can_see(user, self.run_id):
            await self.close(code=CLOSE_NOT_VISIBLE)
            return
        self.group = events.group_name(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        async with self._sending:
            await self._send_section()
        if not self.finished:
            self._catch_up = asyncio.create_task(self._catch_up_now_and_then())

    async def disconnect(self, code: int) -> None:
        if self._catch_up is not None:
            self._catch_up.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def pipeline_event(self, message: dict) -> None:
        """A live event from the run's group (see pipelines.events.record)."""
        async with self._sending:
            seq = message["seq"]
            if self.finished or seq <= self.last_seq:
                return
            if seq > self.last_seq + 1:
                await self._send_from_database()
                if self.finished or seq <= self.last_seq:
                    return
            await self._send_events([message])

    async def _send_from_database(self) -> None:
        """Send every stored event after the last one sent, in batches. Hold _sending."""
        while not self.finished:
            batch = await _events_after(self.run_id, self.last_seq, BATCH_SIZE)
            await self._send_events(batch)
            if len(batch) < BATCH_SIZE:
                return

    async def _send_events(self, batch: list[dict]) -> None:
        """Show the events of `batch` after the last seq sent, in order. Hold _sending.

        Consecutive lines of one step go out as one fragment; lines followed by another
        kind of event go out with the section that event brings.
        """
        step: int | None = None
        lines: list[str] = []
        for event in batch:
            if self.finished:
                return
            if event["seq"] <= self.last_seq:
                continue  # shown by a section sent for an earlier event of the batch
            if event["kind"] != EventKind.OUTPUT:
                step, lines = None, []
                await self._send_section()
                continue
            if event["step_index"] not in self.lines:
                # No running step of that index on the page: a whole section would not
                # show the line either (it shows a finished step's stored output).
                self.last_seq = event["seq"]
                continue
            if event["step_index"] != step:
                await self._send_lines(step, lines)
                step, lines = event["step_index"], []
                if self.finished or event["seq"] <= self.last_seq:
                    continue  # those lines came with a section, which shows this one too
            lines.append(event["message"])
            self.last_seq = event["seq"]
        await self._send_lines(step, lines)

    async def _send_lines(self, step: int | None, lines: list[str]) -> None:
        if not lines or self.finished:
            return
        shown = self.lines.get(step, 0)
        if not shown or shown + len(lines) > MAX_SHOWN_LINES:
            await self._send_section()
            return
        text = "\n" + "\n".join(lines)
        context = {"run_id": self.run_id, "step_index": step, "text": text}
        await self.send(text_data=render_to_string(OUTPUT_LINES_TEMPLATE, context))
        self.lines[step] = shown + len(lines)

    async def _send_section(self) -> None:
        """The whole section as of the latest event; at the run's end, the last message."""
        section = await _render_section(self.run_id, self.scope)
        if section is None:
            self.finished = True
            await self.close(code=CLOSE_NOT_VISIBLE)
            return
        await self.send(text_data=section.html)
        self.last_seq = section.seq
        self.lines = section.lines
        self.finished = section.finished
        if self.finished:
            await self.close()

    async def _catch_up_now_and_then(self) -> None:
        check = AccessCheck(self.scope, partial(can_see_run, run_id=self.run_id))
        while not self.finished:
            # Access is checked as often as the setting asks, even where catching up is rarer.
            await asyncio.sleep(min(self.catch_up_seconds, check_seconds()))
            try:
                code = await check.lost()
                if code is not None:
                    # Under the lock, so that no event is sent after the close.
                    async with self._sending:
                        self.finished = True
                        await self.close(code=code)
                    return
                async with self._sending:
                    await self._send_from_database()
            except Exception:
                # The next tick tries again; live events go on meanwhile.
                logger.warning("Catching up run %s failed", self.run_id, exc_info=True)


def can_see_run(user, run_id: int) -> bool:
    return access.visible(PipelineRun.objects.filter(pk=run_id), user).exists()


_can_see = database_sync_to_async(can_see_run)


@database_sync_to_async
def _render_section(run_id: int, scope: dict) -> Section | None:
    """The steps section the viewer's page shows, without its polling; None without a run."""
    run = PipelineRun.objects.filter(pk=run_id).first()
    if run is None:
        return None
    with translation.override(scope_language(scope)):
        context = steps_context(run, scope["user"])
        html = render_to_string(
            STEPS_TEMPLATE, {**context, "live": True, "csrf_token": _csrf_token(scope)}
        )
    lines = {
        step.index: len(step.output.split("\n")) if step.output else 0
        for step in context["steps"]
        if step.status == StepStatus.RUNNING
    }
    return Section(html, context["last_seq"], lines, run.is_terminal)


def scope_language(scope: dict) -> str:
    """The language of the page that opened the socket: its language cookie, else the
    browser's Accept-Language, as LocaleMiddleware chose it for the page."""
    request = HttpRequest()
    request.COOKIES = scope.get("cookies", {})
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            request.META["HTTP_ACCEPT_LANGUAGE"] = value.decode("latin-1")
    return translation.get_language_from_request(request)


def _csrf_token(scope: dict) -> str:
    """A token for the section's forms (retry, cancel), from the page's CSRF cookie.

    The page that opened the socket was served with the cookie, and the browser sends it
    along with the handshake; the token must match it as a page's own token would.
    """
    request = HttpRequest()
    request.COOKIES = scope.get("cookies", {})
    request.session = scope.get("session")  # where CSRF_USE_SESSIONS keeps the secret
    CsrfViewMiddleware(lambda request: None).process_request(request)
    return get_token(request)


def events_after(run_id: int, after: int, limit: int) -> list[dict]:
    """Up to `limit` stored events of the run after seq `after`, in order."""
    return list(
        PipelineEvent.objects.filter(run_id=run_id, seq__gt=after)
        .order_by("seq")
        .values("seq", "kind", "step_index", "message")[:limit]
    )


_events_after = database_sync_to_async(events_after)

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", PipelineRunConsumer.as_asgi()),
]
