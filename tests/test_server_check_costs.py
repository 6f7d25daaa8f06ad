"""A server check reads when the server last started (over SSH, from the real SSH target) and
warns the team's channels, once a month, when its servers' month so far crosses the budget's
warning threshold. The receiver is real, on loopback; tasks run eagerly on commit."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from deployments.actions.notifications import do_add_channel
from deployments.actions.servers import do_create_server
from deployments.choices import Role, ServerStatus
from deployments.models import ChannelKind, NotificationEvent, Team
from deployments.servers.check import check_budget, check_server, next_boot_time, parse_uptime
from testkit.factories import add_member, make_server
from testkit.receivers import http_receiver

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def owner(team):
    return add_member(team, role=Role.OWNER)


def kernel_boot_time() -> datetime:
    """When this machine's kernel started (the target container shares it)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return datetime.fromtimestamp(int(line.split()[1]), tz=UTC)
    raise AssertionError("no btime in /proc/stat")


def target_server(ssh_target, team, owner, **fields):
    data = {
        "name": "gpu-1",
        "host": ssh_target.host,
        "ssh_port": ssh_target.port,
        "ssh_user": "root",
        "allow_local_address": True,  # the target listens on this machine's loopback
        "key_mode": "paste",
        "ssh_private_key": ssh_target.key.private_openssh,
        **fields,
    }
    return do_create_server(team=team, data=data, user=owner)


def hook(team, owner, url):
    data = {
        "name": "budget",
        "target": url,
        "secret": "",
        "events": [NotificationEvent.BUDGET_THRESHOLD],
        "allow_private": True,  # the receiver is on loopback
        "enabled": True,
    }
    return do_add_channel(team, kind=ChannelKind.WEBHOOK, data=data, user=owner)[0]


def set_budget(team, amount, percent=80):
    Team.objects.filter(pk=team.pk).update(
        monthly_budget=Decimal(amount), budget_currency="USD", budget_warning_percent=percent
    )


def test_uptime_is_read_from_the_first_number_of_proc_uptime():
    assert parse_uptime("350735.47 234388.90\n") == Decimal("350735.47")
    assert parse_uptime("") is None
    assert parse_uptime("not a number") is None
    assert parse_uptime("-3 1") is None


def test_a_start_read_again_within_a_minute_is_the_same_start():
    stored = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert next_boot_time(stored, stored + timedelta(seconds=2)) == stored
    rebooted = stored + timedelta(hours=5)
    assert next_boot_time(stored, rebooted) == rebooted
    assert next_boot_time(stored, None) == stored  # not read: what was known stays
    assert next_boot_time(None, rebooted) == rebooted


@pytest.mark.slow
def test_a_check_reads_when_the_server_started_over_ssh(ssh_target, team, owner):
    server = target_server(ssh_target, team, owner)
    assert server.booted_at is None

    check_server(server)

    server.refresh_from_db()
    assert server.status == ServerStatus.REACHABLE, server.last_error
    # The target is a container on this machine's kernel: it started when the kernel did.
    assert abs(server.booted_at - kernel_boot_time()) <= timedelta(seconds=5)
    first = server.booted_at

    check_server(server)
    server.refresh_from_db()
    assert server.booted_at == first  # the same start, not a new one at each check


@pytest.mark.slow
def test_crossing_the_budget_threshold_notifies_once_a_month(
    ssh_target, team, owner, eager_tasks, django_capture_on_commit_callbacks
):
    # So dear that the seconds the kernel has been up this month pass a cent.
    server = target_server(ssh_target, team, owner, hourly_price=Decimal("100000"))
    set_budget(team, "0.01")
    with http_receiver() as receiver:
        hook(team, owner, receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            check_server(server)
        with django_capture_on_commit_callbacks(execute=True):
            check_server(server)  # still over: no second message this month
        server.refresh_from_db()
        assert server.status == ServerStatus.REACHABLE, server.last_error
        [request] = receiver.requests
        body = json.loads(request.body)
        assert body["event"] == "budget_threshold"
        assert team.name in body["subject"] and "0.01 USD" in body["subject"]

        # The next month warns again.
        next_month = datetime.now(UTC).replace(day=28) + timedelta(days=7)
        with django_capture_on_commit_callbacks(execute=True):
            assert check_budget(team, next_month)
        assert len(receiver.requests) == 2


def test_a_team_below_its_threshold_is_not_warned(
    team, owner, eager_tasks, django_capture_on_commit_callbacks
):
    now = datetime(2026, 12, 11, tzinfo=UTC)
    make_server(
        team,
        hourly_price=Decimal("0.25"),
        booted_at=datetime(2026, 11, 1, tzinfo=UTC),
        status=ServerStatus.REACHABLE,
    )  # 60 USD this month
    set_budget(team, "100", percent=80)
    with http_receiver() as receiver:
        hook(team, owner, receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            assert not check_budget(team, now)
        set_budget(team, "100", percent=60)
        with django_capture_on_commit_callbacks(execute=True):
            assert check_budget(team, now)
        with django_capture_on_commit_callbacks(execute=True):
            assert not check_budget(team, now + timedelta(days=1))
    assert len(receiver.requests) == 1
    assert Team.objects.get(pk=team.pk).budget_notified_month == "2026-12"
