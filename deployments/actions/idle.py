"""What people do with a server's idle guard: owners set it, anyone of the team keeps an idle
server running, operators start again what the guard stopped."""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import access, audit
from ..choices import PipelineKind, Role, RunStatus
from ..models import IdleGuard, IdleState, Server
from ..pipelines.idle_guard import keep_running
from . import ActionError
from .pipelines import do_cancel_run, do_start_run

SETTINGS_FIELDS = (
    "enabled",
    "idle_minutes",
    "notify",
    "stop_models",
    "stop_stacks",
    "power_off",
    "grace_minutes",
)
UNDER_WAY = (RunStatus.QUEUED, RunStatus.RUNNING)


def guard_of(server: Server) -> IdleGuard:
    """The server's guard; a server that never had one has one that is off."""
    guard = IdleGuard.objects.filter(server=server).select_related("step_run").first()
    return guard if guard is not None else IdleGuard(server=server)


def do_save_idle_settings(server: Server, *, data: dict, user, request=None) -> IdleGuard:
    """Owners choose whether and how the guard acts on the server."""
    access.require_role(user, server.team, Role.OWNER)
    with transaction.atomic():
        guard, _created = IdleGuard.objects.select_for_update().get_or_create(server=server)
        before = {name: getattr(guard, name) for name in SETTINGS_FIELDS}
        for name in SETTINGS_FIELDS:
            setattr(guard, name, data[name])
        changed = {name: data[name] for name in SETTINGS_FIELDS if before[name] != data[name]}
        if changed and guard.state in (IdleState.IDLE, IdleState.POWER_OFF_PENDING):
            # New settings start the count again: nothing pending is taken on the old ones.
            keep_running(guard)
        if changed.get("enabled") is True:
            # The quiet time counts from when the guard starts watching, not from before.
            guard.quiet_since = timezone.now()
            guard.request_counts = {}
        guard.save()
        audit.record(
            "server.idle_settings", actor=user, request=request, target=server, details=changed
        )
    return guard


def do_keep_running(server: Server, *, user, request=None) -> IdleGuard:
    """Anyone of the team: the server is in use after all; no step pending is taken."""
    access.require_role(user, server.team, Role.VIEWER)
    with transaction.atomic():
        guard = (
            # Only the guard's row is locked: the step run may be missing (outer join).
            IdleGuard.objects.select_for_update(of=("self",))
            .select_related("step_run")
            .filter(server=server)
            .first()
        )
        if guard is None or not guard.warning:
            raise ActionError(_("The server is not idle: there is nothing to keep running."))
        if guard.step_run is not None and guard.step_run.status in UNDER_WAY:
            do_cancel_run(guard.step_run, user=user, request=request)
        keep_running(guard)
        audit.record("server.idle_keep_running", actor=user, request=request, target=server)
    return guard


def do_start_again(server: Server, *, user, request=None):
    """Operators: start the stacks the guard stopped, and launch again the models it stopped."""
    access.require_role(user, server.team, Role.OPERATOR)
    with transaction.atomic():
        guard = IdleGuard.objects.select_for_update().filter(server=server).first()
        stopped = guard is not None and (
            guard.stopped_launches or guard.stopped_stacks or guard.state == IdleState.STOPPED
        )
        if not stopped:
            raise ActionError(_("The idle guard has stopped nothing on this server."))
        if guard.step_run is not None and guard.step_run.status in UNDER_WAY:
            raise ActionError(_("A step of the idle guard is under way: wait for it to finish."))
        run = do_start_run(
            team=server.team,
            kind=PipelineKind.IDLE_START_AGAIN,
            params={
                "server_id": server.pk,
                "stacks": list(guard.stopped_stacks),
                "launches": list(guard.stopped_launches),
            },
            user=user,
            request=request,
        )
        guard.step_run = run
        guard.state = IdleState.WATCHING
        guard.quiet_since = timezone.now()
        guard.steps_taken = []
        guard.power_off_at = None
        guard.save(
            update_fields=[
                "step_run",
                "state",
                "quiet_since",
                "steps_taken",
                "power_off_at",
                "updated_at",
            ]
        )
        audit.record(
            "server.idle_start_again",
            actor=user,
            request=request,
            target=server,
            details={"run": run.pk},
        )
    return run
