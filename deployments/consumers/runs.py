"""Live progress of one pipeline run, pushed to everyone who watches it.

Protocol. The browser opens /ws/runs/<run id>/ with its session cookie (no token in the
URL) and then sends {"after": <the last seq it has shown>}. The consumer answers with
every event after that seq, read from the database in order, then with live events from
the run's group. Each message is one event:

    {"seq": 7, "kind": "output", "step_index": 1, "message": "pulling ...", "status": "running"}

and each seq is sent once, in order, with no gap. A viewer that reconnects sends the last
seq it saw and gets exactly what came after it.

The group is joined before the backlog is read, so an event is either in the backlog or
arrives live (events are published after their transaction commits); a live event at or
below the last seq sent is dropped, and one past a gap has the gap filled from the
database first. A live message can still be lost (a full channel, a Redis hiccup), so the
database is also read every few seconds while the run is going on; the same tick checks
that the user may still see the run.
"""

import asyncio
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.urls import path

from .. import access
from ..choices import RUN_TERMINAL, EventKind, RunStatus
from ..models import PipelineEvent, PipelineRun
from ..pipelines import events

# Close codes (4000-4999 are the application's). A refusal at connect happens before
# the handshake is accepted, so a browser sees it as a failed connection.
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NOT_VISIBLE = 4403
CLOSE_BAD_REQUEST = 4400

BATCH_SIZE = 200

logger = logging.getLogger(__name__)


class PipelineRunConsumer(AsyncJsonWebsocketConsumer):
    # How often the database is read for events whose live message was lost.
    catch_up_seconds: float = 5

    async def connect(self) -> None:
        self.run_id: int = self.scope["url_route"]["kwargs"]["run_id"]
        self.group: str | None = None
        self.last_seq: int | None = None  # until the viewer says where it is
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

    async def disconnect(self, code: int) -> None:
        if self._catch_up is not None:
            self._catch_up.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            content = json.loads(text_data or "")
        except ValueError:
            content = None
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs) -> None:
        """The viewer's one message: where to start. Anything else closes the socket."""
        after = content.get("after") if isinstance(content, dict) else None
        if type(after) is not int or after < 0 or self.last_seq is not None:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        async with self._sending:
            self.last_seq = after
            await self._send_from_database()
        self._catch_up = asyncio.create_task(self._catch_up_now_and_then())

    async def pipeline_event(self, message: dict) -> None:
        """A live event from the run's group (see pipelines.events.record)."""
        if self.last_seq is None:
            return  # committed before it was sent: the backlog will have it
        async with self._sending:
            seq = message["seq"]
            if seq <= self.last_seq:
                return
            if seq > self.last_seq + 1:
                await self._send_from_database()
                if seq <= self.last_seq:
                    return
            await self._send_event(
                {
                    "seq": seq,
                    "kind": message["kind"],
                    "step_index": message["step_index"],
                    "message": message["message"],
                    "status": message["status"],
                }
            )

    async def _send_from_database(self) -> None:
        """Send every stored event after the last one sent, in batches. Hold _sending."""
        while True:
            batch = await _events_after(self.run_id, self.last_seq, BATCH_SIZE)
            for event in batch:
                await self._send_event(event)
            if len(batch) < BATCH_SIZE:
                return

    async def _send_event(self, event: dict) -> None:
        await self.send_json(event)
        self.last_seq = event["seq"]
        if event["kind"] == EventKind.RUN_FINISHED:
            self.finished = True
        elif event["kind"] == EventKind.RUN_STARTED:
            self.finished = False

    async def _catch_up_now_and_then(self) -> None:
        user = self.scope["user"]
        while True:
            await asyncio.sleep(self.catch_up_seconds)
            try:
                if not await _can_see(user, self.run_id):
                    await self.close(code=CLOSE_NOT_VISIBLE)
                    return
                if not self.finished:
                    async with self._sending:
                        await self._send_from_database()
            except Exception:
                # The next tick tries again; live events go on meanwhile.
                logger.warning("Catching up run %s failed", self.run_id, exc_info=True)


@database_sync_to_async
def _can_see(user, run_id: int) -> bool:
    return access.visible(PipelineRun.objects.filter(pk=run_id), user).exists()


def events_after(run_id: int, after: int, limit: int) -> list[dict]:
    """Up to `limit` stored events of the run after seq `after`, as messages.

    Rows do not keep the run's status at each event (the live message carries it), so it
    is worked out from the runner's order of events: everything up to a step's end says
    "running"; a step's end followed by the run's end with the same message ended the run,
    with that status; the run's last end has the run's status, an earlier one (a retried
    attempt) was a failure or a cancellation.
    """
    rows = list(
        PipelineEvent.objects.filter(run_id=run_id, seq__gt=after)
        .order_by("seq")
        .values("seq", "kind", "step_index", "message")[: limit + 1]
    )
    if not rows:
        return []
    run = PipelineRun.objects.filter(pk=run_id).values("status").first()
    status = run["status"] if run else RunStatus.FAILED
    last_end = (
        PipelineEvent.objects.filter(run_id=run_id, kind=EventKind.RUN_FINISHED)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    for row, following in zip(rows, [*rows[1:], None], strict=True):
        row["status"] = _status_at(row, following, status, last_end)
    return rows[:limit]


def _status_at(row: dict, following: dict | None, status: str, last_end: int | None) -> str:
    if row["kind"] == EventKind.RUN_FINISHED:
        if row["seq"] == last_end and status in RUN_TERMINAL:
            return status
        if row["message"].startswith("Cancelled"):
            return RunStatus.CANCELLED.value
        return RunStatus.FAILED.value
    if (
        row["kind"] == EventKind.STEP_FINISHED
        and following is not None
        and following["kind"] == EventKind.RUN_FINISHED
        and following["message"] == row["message"]
    ):
        return _status_at(following, None, status, last_end)
    return RunStatus.RUNNING.value


_events_after = database_sync_to_async(events_after)

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", PipelineRunConsumer.as_asgi()),
]
