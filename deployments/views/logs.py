"""The live log viewer of one service, or of a whole stack with its services interleaved.

The page itself only carries where to connect: static/js/log_viewer.js follows the lines over
the log websocket, and when a proxy cuts websockets it polls `recent.json` instead. A poll reads
the same shared stream of each container as the websockets do (deployments/logs/polls.py):
the first answer is the last lines, each next one the lines after the cursor it was given.
"""

import asyncio
import json
import logging
import re
from functools import partial

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache

from .. import access
from ..clients.ssh import SSHError
from ..logs.hub import Line, service_prefix, with_prefix
from ..logs.polls import Cursor, Polled, in_hub_loop, poll
from ..logs.source import open_remote_logs
from ..models import Service, Stack
from .common import HtmxHttpRequest

logger = logging.getLogger(__name__)

# How many past lines a viewer starts with, and the bounds of what a URL may ask for.
DEFAULT_TAIL = 500
MAX_TAIL = 5000
TAIL_CHOICES = (100, 500, 1000, 5000)
# Polling asks for less: it is the whole answer every two seconds.
DEFAULT_POLL_TAIL = 200
MAX_POLL_TAIL = 1000

# A cursor names one feed per service; more than this is not one the page was given.
MAX_CURSOR_CHARS = 4000

UNAVAILABLE = gettext_lazy("The logs could not be read from the server.")


def clamp_tail(raw: str | None, default: int, maximum: int) -> int:
    """A tail from a query string: a bad value gives the default, a wild one the bounds."""
    try:
        tail = int(raw) if raw is not None else default
    except (TypeError, ValueError):
        return default
    return max(1, min(tail, maximum))


def _page(request: HtmxHttpRequest, context: dict) -> HttpResponse:
    tail = clamp_tail(request.GET.get("tail"), DEFAULT_TAIL, MAX_TAIL)
    context = {
        **context,
        "tail": tail,
        "tail_choices": sorted({*TAIL_CHOICES, tail}),
    }
    return render(request, "deployments/logs.html", context)


@login_required
def service_logs(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    service = access.get_visible_or_404(
        Service.objects.select_related("stack__team", "stack__server"), request.user, pk=pk
    )
    return _page(
        request,
        {
            "stack": service.stack,
            "service": service,
            "services": [service],
            "ws_path": f"{get_script_prefix()}ws/services/{service.pk}/logs/",
            "poll_url": reverse("stack_service_logs_recent", args=[service.pk]),
            "download_name": f"{service.stack.name}-{service.name}",
        },
    )


@login_required
def stack_logs(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = access.get_visible_or_404(
        Stack.objects.select_related("team", "server"), request.user, pk=pk
    )
    return _page(
        request,
        {
            "stack": stack,
            "service": None,
            "services": list(stack.services.all()),
            "ws_path": f"{get_script_prefix()}ws/stacks/{stack.pk}/logs/",
            "poll_url": reverse("stack_logs_recent", args=[stack.pk]),
            "download_name": stack.name,
        },
    )


_TS = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)")
_CURSOR_PART = re.compile(r"(\d{1,18}):(.+)")


def ts_key(ts: str | None) -> str:
    """A sort key of an RFC 3339 time: Docker trims the zeros that end its nanoseconds."""
    match = _TS.fullmatch(ts or "")
    if match is None:
        return ts or ""
    seconds, fraction, zone = match.groups()
    return f"{seconds}.{(fraction or '').ljust(9, '0')[:9]}{zone}"


def parse_cursors(raw: str | None) -> dict[int, Cursor]:
    """The cursor of a previous answer, by service id: `<id>:<cursor>,...`. What does not parse
    counts as no cursor, which answers with the last lines."""
    cursors: dict[int, Cursor] = {}
    if not raw or len(raw) > MAX_CURSOR_CHARS:
        return cursors
    for part in raw.split(","):
        match = _CURSOR_PART.fullmatch(part)
        cursor = Cursor.parse(match[2]) if match else None
        if cursor is not None:
            cursors[int(match[1])] = cursor
    return cursors


@sync_to_async
def _visible_service(user, pk: int) -> list[Service]:
    queryset = Service.objects.select_related("stack__server")
    return [access.get_visible_or_404(queryset, user, pk=pk)]


@sync_to_async
def _visible_stack_services(user, pk: int) -> list[Service]:
    stack = access.get_visible_or_404(Stack.objects.all(), user, pk=pk)
    return list(stack.services.select_related("stack__server").order_by("name"))


async def _poll_service(service: Service, tail: int, after: Cursor | None) -> Polled:
    container = service.container_name
    if not container:
        raise SSHError(
            _("%(service)s has no container yet: deploy the stack first.")
            % {"service": service.name},
            kind="command",
            permanent=True,
        )
    server = service.stack.server
    # The websockets' key and opener: a poll and a socket of one container share its feed.
    opener = partial(open_remote_logs, server, container)
    return await poll((server.pk, container), opener, tail=tail, after=after)


async def _poll_all(
    services: list[Service], tail: int, cursors: dict[int, Cursor]
) -> list[Polled | BaseException]:
    return await asyncio.gather(
        *(_poll_service(service, tail, cursors.get(service.pk)) for service in services),
        return_exceptions=True,
    )


def _failure(service: Service, answer: Polled | BaseException) -> str | None:
    """Why a service's lines could not be read, in words for the user; None where they were."""
    if isinstance(answer, BaseException):
        if isinstance(answer, SSHError) and str(answer):
            return str(answer)
        logger.error("Reading the recent logs of service %s failed", service.pk, exc_info=answer)
        return str(UNAVAILABLE)
    if answer.status is None or answer.status["state"] != "error":
        return None
    # An unexpected failure's details are for the panel's log (the feed wrote them there).
    if answer.error is not None and not isinstance(answer.error, SSHError):
        return str(UNAVAILABLE)
    return answer.status["message"] or str(UNAVAILABLE)


def _lines_response(answers: list[tuple[Service, Polled]], tail: int, *, tag: bool) -> HttpResponse:
    """The answers as one JSON object, built from the lines' JSON as the feeds encoded it."""
    replayed: list[Line] = []
    new: list[Line] = []
    for service, answer in answers:
        lines = with_prefix(answer.lines, service_prefix(service.name)) if tag else answer.lines
        (replayed if answer.replayed else new).extend(lines)
    # Replayed lines are a tail of the whole view; lines after a cursor are all new.
    replayed.sort(key=lambda line: ts_key(line[0]))
    lines = replayed[-tail:] + new
    if len(answers) > 1:
        lines.sort(key=lambda line: ts_key(line[0]))
    rest = {
        "cursor": ",".join(f"{service.pk}:{answer.cursor}" for service, answer in answers),
        "skipped": sum(answer.skipped for _service, answer in answers),
        "replayed": any(answer.replayed for _service, answer in answers),
    }
    encoded = ",".join(line for _ts, line in lines)
    body = '{"lines":[' + encoded + "]," + json.dumps(rest)[1:]
    return HttpResponse(body, content_type="application/json")


def _unavailable(message: str) -> JsonResponse:
    return JsonResponse({"lines": [], "error": message}, status=502)


async def _recent(request: HtmxHttpRequest, services: list[Service], *, tag: bool) -> HttpResponse:
    tail = clamp_tail(request.GET.get("tail"), DEFAULT_POLL_TAIL, MAX_POLL_TAIL)
    cursors = parse_cursors(request.GET.get("cursor"))
    # Under the ASGI server (controlpanel.serve) this loop is the server's, whose hub the
    # websockets use; a request served otherwise has a loop of its own that ends with it.
    lasting_loop = isinstance(request, ASGIRequest)
    answers = await in_hub_loop(_poll_all(services, tail, cursors), lasting_loop=lasting_loop)
    read: list[tuple[Service, Polled]] = []
    failures: list[str] = []
    for service, answer in zip(services, answers, strict=True):
        failure = _failure(service, answer)
        if failure is None:
            read.append((service, answer))
        else:
            failures.append(failure)
    # One missing container should not hide the others' lines.
    if failures and not read:
        return _unavailable(failures[0])
    return _lines_response(read, tail, tag=tag)


@never_cache
@login_required
async def service_logs_recent(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The lines of one service, for a browser whose websocket does not get through."""
    user = await request.auser()
    services = await _visible_service(user, pk)
    return await _recent(request, services, tag=False)


@never_cache
@login_required
async def stack_logs_recent(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The lines of every service of a stack, merged by time and tagged by service."""
    user = await request.auser()
    services = await _visible_stack_services(user, pk)
    return await _recent(request, services, tag=True)
