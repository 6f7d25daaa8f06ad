"""What the idle guard tells the team's channels: that a server is idle, and each step taken."""

from django.urls import reverse
from django.utils.translation import gettext as _

from ..models import IdleGuard, IdleStep, NotificationEvent
from ..notifications.notify import in_panel_language, notify
from . import notes


def _path(guard: IdleGuard) -> str:
    return reverse("server_detail", args=[guard.server_id])


@in_panel_language
def idle_warning(guard: IdleGuard, text: str = "", *, with_note: bool = False) -> int:
    """Tell the team the server is idle; WITH_NOTE, what the last check found as well."""
    if with_note:
        text = notes.render(guard.note or [])
    server = guard.server
    subject = _("Server %(server)s has been idle for %(minutes)s min") % {
        "server": server.name,
        "minutes": guard.idle_minutes,
    }
    if guard.power_off and guard.power_off_at is not None:
        text = _(
            "It will be powered off at %(when)s UTC unless someone presses “Keep running” "
            "on its page."
        ) % {"when": f"{guard.power_off_at:%Y-%m-%d %H:%M}"} + (f"\n{text}" if text else "")
    return notify(server.team, NotificationEvent.IDLE_WARNING, subject, text, _path(guard))


@in_panel_language
def idle_step(guard: IdleGuard, step: str, text: str = "") -> int:
    server = guard.server
    subject = _("Idle guard on %(server)s: %(step)s") % {
        "server": server.name,
        "step": str(IdleStep(step).label).lower(),
    }
    return notify(server.team, NotificationEvent.IDLE_STEP, subject, text, _path(guard))
