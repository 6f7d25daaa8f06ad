"""The idle guard as the pages show it: its settings, where it stands, who may do what."""

from dataclasses import dataclass, field, replace
from datetime import datetime

from django.utils import timezone

from .. import access
from ..choices import ROLE_RANK, PipelineKind, Role
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
    guard = _guard_of(server) or IdleGuard(server=server)
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


def _guard_of(server: Server) -> IdleGuard | None:
    """The server's guard: as a list of servers read it with theirs
    (select_related("idle_guard__step_run"), one query for all rows), or read now."""
    if Server.idle_guard.is_cached(server):
        try:
            return server.idle_guard
        except IdleGuard.DoesNotExist:
            return None
    return IdleGuard.objects.filter(server=server).select_related("step_run").first()


# Stacks the guard stopped -------------------------------------------------------------------


@dataclass(frozen=True)
class StoppedStacks:
    """Of some stacks, those the idle guard stopped (their containers stopped on purpose, not
    failed), and the teams whose stacks the user may start again."""

    stack_ids: frozenset[int] = frozenset()
    start_team_ids: frozenset[int] = frozenset()
    # Stacks whose "Start again" is under way.
    starting_ids: frozenset[int] = frozenset()


def stopped_on(servers, user=None) -> StoppedStacks:
    """The stacks the idle guard of one of `servers` stopped, in one query however many."""
    stopped: set[int] = set()
    starting: set[int] = set()
    guards = IdleGuard.objects.filter(server__in=servers).exclude(stopped_stacks=[])
    for guard in guards.select_related("step_run"):
        ids = set(guard.stopped_stacks or [])
        stopped |= ids
        run = guard.step_run
        if run is not None and run.kind == PipelineKind.IDLE_START_AGAIN and not run.is_terminal:
            starting |= ids
    teams = set(access.team_ids(user, Role.OPERATOR)) if user is not None else set()
    return StoppedStacks(
        stack_ids=frozenset(stopped),
        start_team_ids=frozenset(teams),
        starting_ids=frozenset(starting),
    )


def stopped_stacks(stacks, user=None) -> StoppedStacks:
    """Which of `stacks` the idle guard stopped, in one query however many there are."""
    stacks = list(stacks)
    servers = {stack.server_id for stack in stacks}
    if not servers:
        return StoppedStacks()
    found = stopped_on(servers, user)
    wanted = {stack.pk for stack in stacks}
    return replace(
        found, stack_ids=found.stack_ids & wanted, starting_ids=found.starting_ids & wanted
    )
