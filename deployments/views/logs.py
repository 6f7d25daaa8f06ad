"""The live log viewer of one service, or of a whole stack with its services interleaved.

The page itself only carries where to connect: static/js/log_viewer.js follows the lines over
the log websocket, and when a proxy cuts websockets it polls `recent.json` instead.
"""

import logging
import re

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.views.decorators.cache import never_cache

from .. import access
from ..clients.ssh import SSHError
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

UNAVAILABLE = "The logs could not be read from the server."


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


def _recent(service: Service, tail: int) -> list[dict]:
    # Imported here: the log readers are heavy (SSH) and the pages above do not need them.
    from ..logs import recent_lines

    return list(recent_lines(service, tail))


_TS = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)")


def ts_key(line: dict) -> str:
    """A sort key of a line's RFC 3339 time: Docker trims the zeros that end its nanoseconds."""
    ts = str(line.get("ts") or "")
    match = _TS.fullmatch(ts)
    if match is None:
        return ts
    seconds, fraction, zone = match.groups()
    return f"{seconds}.{(fraction or '').ljust(9, '0')[:9]}{zone}"


def _unavailable(error: Exception) -> JsonResponse:
    message = str(error) if isinstance(error, SSHError) and str(error) else UNAVAILABLE
    return JsonResponse({"lines": [], "error": message}, status=502)


@never_cache
@login_required
def service_logs_recent(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The last lines of one service, for a browser whose websocket does not get through."""
    service = access.get_visible_or_404(Service.objects.all(), request.user, pk=pk)
    tail = clamp_tail(request.GET.get("tail"), DEFAULT_POLL_TAIL, MAX_POLL_TAIL)
    try:
        lines = _recent(service, tail)
    except Exception as error:
        logger.exception("Reading the recent logs of service %s failed", service.pk)
        return _unavailable(error)
    return JsonResponse({"lines": lines})


@never_cache
@login_required
def stack_logs_recent(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The last lines of every service of a stack, merged by time and tagged by service."""
    stack = access.get_visible_or_404(Stack.objects.all(), request.user, pk=pk)
    tail = clamp_tail(request.GET.get("tail"), DEFAULT_POLL_TAIL, MAX_POLL_TAIL)
    lines: list[dict] = []
    failures: list[Exception] = []
    services = list(stack.services.all())
    for service in services:
        try:
            lines.extend({**line, "service": service.name} for line in _recent(service, tail))
        except Exception as error:
            # One missing container should not hide the others' lines.
            logger.exception("Reading the recent logs of service %s failed", service.pk)
            failures.append(error)
    if services and len(failures) == len(services):
        return _unavailable(failures[0])
    lines.sort(key=ts_key)
    return JsonResponse({"lines": lines[-tail:]})
