"""The idle guard as the pages show it: its settings, where it stands, who may do what."""

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from .. import access
from ..choices import ROLE_RANK, Role
from ..models import IdleGuard, IdleState, ModelLaunch, Server, Stack
from . import detect

# Every sentence a note may hold: the check's own (detect) and the guard's steps'.
_NOTE_SENTENCES = (
    detect.NOTE_USED,
    detect.NOTE_FIRST,
    detect.NOTE_GPU_BUSY,
    detect.NOTE_UNREAD,
    detect.NOTE_NO_GPU_READING,
    detect.NOTE_IDLE,
    detect.NOTE_QUIET,
    detect.REASON_OFF,
    detect.REASON_NO_PRICE,
    gettext_noop("The step “%(title)s” did not succeed: %(error)s"),
    gettext_noop("“%(title)s” is under way: the guard waits until it has finished."),
    gettext_noop("Kept running."),
    gettext_noop("Started again."),
)


def _sentence_pattern(sentence: str) -> re.Pattern:
    """A regex matching `sentence` at the start of a note, its %(name)s as named groups.
    A sentence that ends with a value takes the rest of the note."""
    parts = re.split(r"%\((\w+)\)s", sentence)
    pattern = ""
    for position, part in enumerate(parts):
        if position % 2 == 0:
            pattern += re.escape(part)
        elif position == len(parts) - 2 and parts[-1] == "":
            pattern += f"(?P<{part}>.*)"
        else:
            pattern += f"(?P<{part}>.*?)"
    end = r"\Z" if parts[-1] == "" and len(parts) > 1 else r"(?:\s+|\Z)"
    return re.compile(pattern + end, re.DOTALL)


_NOTE_PATTERNS = [(sentence, _sentence_pattern(sentence)) for sentence in _NOTE_SENTENCES]


def note_text(note: str) -> str:
    """The guard's stored (English) note in the language of the request, sentence by
    sentence; what no known sentence matches is shown as stored."""
    shown = []
    rest = note.strip()
    while rest:
        for sentence, pattern in _NOTE_PATTERNS:
            found = pattern.match(rest)
            if found:
                shown.append(gettext(sentence) % found.groupdict())
                rest = rest[found.end() :]
                break
        else:
            shown.append(rest)
            break
    return " ".join(shown)


@dataclass
class IdleStatus:
    guard: IdleGuard
    priced: bool
    can_own: bool = False
    can_operate: bool = False
    can_keep: bool = False
    quiet_minutes: int | None = None
    stopped_models: list[str] = field(default_factory=list)
    stopped_stacks: list[str] = field(default_factory=list)

    @property
    def watching(self) -> bool:
        return self.guard.enabled and self.priced

    @property
    def note(self) -> str:
        return note_text(self.guard.note or "")

    @property
    def warning(self) -> bool:
        return self.watching and self.guard.warning

    @property
    def stopped(self) -> bool:
        return bool(self.stopped_models or self.stopped_stacks)

    @property
    def state(self) -> str:
        """off, watching, idle, power_off_pending or stopped: what the dashboard shows."""
        if self.stopped and self.guard.state == IdleState.STOPPED:
            return IdleState.STOPPED
        if not self.watching:
            return "off"
        return self.guard.state


def idle_status(server: Server, user=None, now: datetime | None = None) -> IdleStatus:
    guard = IdleGuard.objects.filter(server=server).select_related("step_run").first()
    guard = guard if guard is not None else IdleGuard(server=server)
    status = IdleStatus(guard=guard, priced=server.hourly_price is not None)
    if user is not None:
        role = access.role_in(user, server.team_id)
        rank = ROLE_RANK.get(role, 0) if role else 0
        status.can_keep = rank >= ROLE_RANK[Role.VIEWER]
        status.can_operate = rank >= ROLE_RANK[Role.OPERATOR]
        status.can_own = rank >= ROLE_RANK[Role.OWNER]
    if guard.quiet_since is not None and status.watching:
        now = now or timezone.now()
        status.quiet_minutes = max(0, int((now - guard.quiet_since).total_seconds() // 60))
    if guard.stopped_launches:
        status.stopped_models = list(
            ModelLaunch.objects.filter(pk__in=guard.stopped_launches)
            .order_by("pk")
            .values_list("model_uid", flat=True)
        )
    if guard.stopped_stacks:
        status.stopped_stacks = list(
            Stack.objects.filter(pk__in=guard.stopped_stacks)
            .order_by("pk")
            .values_list("name", flat=True)
        )
    return status
