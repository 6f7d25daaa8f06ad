"""Telling a team's channels that something happened: one Celery task per channel that wants
the event, sent once the transaction that saw it commits. A broker that does not answer is
logged, never raised: a notification must not fail the pipeline or the check that caused it.

The task is found by name, so that the pipelines and the checks below the tasks' layer can
notify: Celery runs the registered task (eagerly where tasks run eagerly) or sends it by name.
"""

import logging
from dataclasses import asdict
from functools import partial, wraps

from celery import signature
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from ..models import (
    Document,
    ModelLaunch,
    NotificationChannel,
    NotificationEvent,
    PipelineRun,
    Server,
    Team,
)
from .formats import Message

logger = logging.getLogger(__name__)

TASK_NAME = "deployments.tasks.send_notification"


def in_panel_language(func):
    """Write a notification in the panel's own language (LANGUAGE_CODE), whoever's request
    caused it: a channel is read by the whole team, not by the person who acted."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        with translation.override(settings.LANGUAGE_CODE):
            return func(*args, **kwargs)

    return wrapper


def absolute(path: str) -> str:
    """A link to the panel: absolute when PANEL_URL says where it is served."""
    return f"{settings.PANEL_URL}{path}" if settings.PANEL_URL else path


def message(team: Team, event: str, subject: str, text: str = "", path: str = "") -> Message:
    return Message(
        event=event,
        event_label=str(NotificationEvent(event).label),
        team=team.name,
        subject=subject,
        text=text,
        url=absolute(path) if path else "",
    )


def subscribed(team_id: int, event: str) -> list[NotificationChannel]:
    channels = NotificationChannel.objects.filter(team_id=team_id, enabled=True)
    return [channel for channel in channels if channel.gets(event)]


def enqueue(channel_id: int, payload: dict) -> None:
    signature(TASK_NAME, args=(channel_id, payload)).delay()


def notify(team: Team, event: str, subject: str, text: str = "", path: str = "") -> int:
    """Queue `event` for every channel of `team` that wants it; how many were queued."""
    try:
        # A savepoint: a failed read must not break the transaction of the run or the check
        # that is reporting the event.
        with transaction.atomic():
            channels = subscribed(team.pk, event)
    except Exception:
        logger.exception("Could not read the notification channels of team %s", team.pk)
        return 0
    payload = asdict(message(team, event, subject, text, path))
    for channel in channels:
        send = partial(enqueue, channel.pk, payload)
        send.__qualname__ = f"notify channel {channel.pk}"  # type: ignore[attr-defined]
        transaction.on_commit(send, robust=True)
    return len(channels)


@in_panel_language
def run_failed(run_id: int, error: str) -> int:
    run = PipelineRun.objects.filter(pk=run_id).select_related("team").first()
    if run is None or run.team is None:
        return 0
    subject = _("Run #%(run)s failed: %(kind)s") % {"run": run.pk, "kind": run.kind_label}
    path = reverse("run_detail", args=[run.pk])
    return notify(run.team, NotificationEvent.RUN_FAILED, subject, error, path)


@in_panel_language
def server_unreachable(server: Server) -> int:
    subject = _("Server %(server)s is unreachable") % {"server": server.name}
    path = reverse("server_detail", args=[server.pk])
    return notify(
        server.team, NotificationEvent.SERVER_UNREACHABLE, subject, server.last_error, path
    )


@in_panel_language
def host_key_changed(server: Server) -> int:
    subject = _("The host key of server %(server)s has changed") % {"server": server.name}
    path = reverse("server_detail", args=[server.pk])
    return notify(server.team, NotificationEvent.HOST_KEY_CHANGED, subject, server.last_error, path)


@in_panel_language
def smoke_test_flagged(launch: ModelLaunch, verdict: str) -> int:
    subject = _("The smoke test flagged model %(model)s on stack %(stack)s") % {
        "model": launch.model_uid,
        "stack": launch.stack.name,
    }
    path = reverse("model_launch_detail", args=[launch.pk])
    return notify(launch.team, NotificationEvent.SMOKE_TEST_FLAGGED, subject, verdict, path)


@in_panel_language
def document_failed(document: Document) -> int:
    base = document.knowledge_base
    subject = _("Document “%(document)s” failed to import into %(base)s") % {
        "document": document.name[:200],
        "base": base.name,
    }
    path = reverse("knowledge_detail", args=[base.pk])
    return notify(base.team, NotificationEvent.DOCUMENT_FAILED, subject, document.error, path)
