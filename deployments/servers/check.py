"""Checking a server: reach it over SSH, gather its facts, record what was found."""

import logging
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from .. import costs
from ..choices import ServerStatus
from ..clients.ssh import HostKeyChanged, SSHError
from ..models import IdleGuard, NotificationEvent, Server, Team
from ..notifications import notify
from . import gpu_history
from .facts import check_docker_gpu, gather_facts
from .sessions import open_session

logger = logging.getLogger(__name__)

UPTIME_COMMAND = ["cat", "/proc/uptime"]
UPTIME_TIMEOUT = 30
# A start read again within this much of the one stored is the same start (the two reads'
# clocks and delays differ by a little): the stored one is kept.
SAME_BOOT = timedelta(seconds=60)


def parse_uptime(text: str) -> Decimal | None:
    """/proc/uptime ("350735.47 234388.90"): the seconds since the server started, or None."""
    first = (text or "").split()[:1]
    try:
        seconds = Decimal(first[0]) if first else None
    except InvalidOperation:
        return None
    if seconds is None or not seconds.is_finite() or seconds < 0:
        return None
    return seconds


def read_boot_time(client) -> datetime | None:
    """When the server behind `client` started, to the second, by the panel's clock: its
    uptime taken from the moment it was read. None where it cannot be read."""
    try:
        result = client.run(UPTIME_COMMAND, check=False, timeout=UPTIME_TIMEOUT)
    except SSHError as error:
        if error.kind == "timeout" and "did not finish within" in str(error):
            return None  # the command outlived its timeout: not the connection's failure
        raise
    read_at = timezone.now()
    seconds = parse_uptime(result.stdout) if result.exit_status == 0 else None
    if seconds is None:
        return None
    booted = read_at - timedelta(seconds=float(seconds))
    return booted.replace(microsecond=0)


def next_boot_time(stored: datetime | None, read: datetime | None) -> datetime | None:
    if read is None:
        return stored
    if stored is not None and abs(read - stored) <= SAME_BOOT:
        return stored
    return read


def check_budget(team: Team, now: datetime) -> bool:
    """Warn `team` once a month when its servers' month so far reaches the warning share of
    its budget. True where this call sent the warning."""
    team = Team.objects.get(pk=team.pk)
    figures = costs.team_budget(team, team.servers.all(), now)
    if not figures.warning:
        return False
    month = costs.month_key(now)
    # One check wins the month, however many run at once.
    won = (
        Team.objects.filter(pk=team.pk)
        .filter(~Q(budget_notified_month=month))
        .update(budget_notified_month=month)
    )
    if not won:
        return False
    with translation.override(settings.LANGUAGE_CODE):
        subject = _(
            "Team %(team)s has spent %(percent)s%% of its monthly budget: %(spent)s of %(budget)s"
        ) % {
            "team": team.name,
            "percent": figures.used_percent_text,
            "spent": figures.spent_text,
            "budget": figures.budget_text,
        }
        text = _(
            "The running cost of the team's servers this month has crossed the warning "
            "threshold of %(threshold)s%%."
        ) % {"threshold": figures.warning_percent}
        path = reverse("team_detail", args=[team.pk])
        notify.notify(team, NotificationEvent.BUDGET_THRESHOLD, subject, text, path)
    return True


def _powered_off_by_guard(server: Server) -> bool:
    guard = IdleGuard.objects.filter(server=server).first()
    return guard is not None and guard.powered_off


def check_server(server: Server) -> Server:
    """Connect, gather facts and save them; an unreachable server gets the reason instead.

    Never raises for a server that cannot be reached: that is an outcome, shown on its page.
    """
    now = timezone.now()
    try:
        with open_session(server) as client:
            # sudo for docker where the user is not root (the client skips it for root).
            facts = gather_facts(client, sudo=True)
            facts["docker_gpu"] = check_docker_gpu(
                client, settings.GPU_CHECK_IMAGE, facts, sudo=True
            )
            booted = read_boot_time(client)
    except SSHError as error:
        logger.info("Server %s unreachable: %s", server.pk, error)
        was, said = server.status, server.last_error
        server.status = ServerStatus.UNREACHABLE
        server.last_error = str(error)
        server.last_checked_at = now
        server.save(update_fields=["status", "last_error", "last_checked_at", "updated_at"])
        # Once when it happens, not at every check while it lasts.
        if isinstance(error, HostKeyChanged):
            if server.last_error != said:
                notify.host_key_changed(server)
        elif was != ServerStatus.UNREACHABLE and not _powered_off_by_guard(server):
            # A server the idle guard powered off is expected to be down: its page says so.
            notify.server_unreachable(server)
        return server
    server.status = ServerStatus.REACHABLE
    server.last_error = ""
    server.last_checked_at = now
    server.facts = facts
    server.facts_checked_at = now
    server.booted_at = next_boot_time(server.booted_at, booted)
    server.save(
        update_fields=[
            "status",
            "last_error",
            "last_checked_at",
            "facts",
            "facts_checked_at",
            "booted_at",
            "updated_at",
        ]
    )
    gpu_history.record(server, facts.get("gpus") or [], now)
    check_budget(server.team, now)
    return server
