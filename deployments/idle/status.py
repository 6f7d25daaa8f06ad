"""The idle guard as the pages show it: its settings, where it stands, who may do what."""

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from .. import access
from ..choices import ROLE_RANK, Role
from ..models import IdleGuard, IdleState, ModelLaunch, Server, Stack
from . import notes


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
        """What the last check found, in the language of the page."""
        return notes.render(self.guard.note or [])

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

