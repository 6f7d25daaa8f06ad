"""An owner turns the idle guard on from the server page; once the server is idle, the page
warns everyone and "Keep running" calls the power-off off."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from deployments.choices import Role, StackStatus
from deployments.models import GpuSample, IdleGuard, IdleState
from deployments.pipelines import idle_guard
from testkit.browser import log_in
from testkit.factories import add_member, make_server, make_stack, make_team, make_user

pytestmark = pytest.mark.slow


def test_owner_sets_an_idle_time_then_sees_the_warning_and_keeps_the_server_running(
    live_server, transactional_db, page, tmp_path
):
    team = make_team("Alpha")
    owner = make_user("owner-olga")
    add_member(team, owner, role=Role.OWNER)
    server = make_server(team, name="gpu-1", hourly_price=Decimal("2.40"))
    make_stack(server, name="chatbot", status=StackStatus.RUNNING)
    log_in(page, live_server.url, "owner-olga", owner.raw_password)

    page.goto(f"{live_server.url}/servers/{server.pk}/")
    section = page.locator("#idle-guard")
    expect(section).to_contain_text("Off: the panel never stops anything")
    section.get_by_label("Idle guard on").check()
    section.get_by_label("Idle time (minutes)").fill("10")
    section.get_by_label("Power the server off (shutdown -h)").check()
    section.get_by_label("Grace period before the power-off (minutes)").fill("5")
    section.get_by_role("button", name="Save the idle guard").click()
    expect(page.locator(".messages")).to_contain_text("The idle guard's settings are saved.")
    expect(page.locator("#idle-guard-state")).to_contain_text("Watching: quiet for 0 of 10")

    # Checks eleven minutes apart, up to now: no request reached the stack's models between
    # them, and the GPU sat at 1 %.
    now = timezone.now()
    GpuSample.objects.create(
        server=server,
        gpu_index=0,
        at=now - timedelta(minutes=2),
        memory_used_mib=0,
        memory_total_mib=24000,
        utilization_percent=1,
        memory_used_peak_mib=0,
        utilization_peak_percent=1,
    )
    for minutes_ago in (11, 0):
        idle_guard.check(
            server,
            now=now - timedelta(minutes=minutes_ago),
            read=lambda stacks: {stack: 7.0 for stack in stacks},
        )
    assert IdleGuard.objects.get(server=server).state == IdleState.IDLE

    page.reload()
    warning = page.get_by_role("alert")
    expect(warning).to_contain_text("Idle for 11 minutes")
    page.screenshot(path=str(tmp_path / "idle-warning.png"), full_page=True)
    warning.get_by_role("button", name="Keep running").click()
    expect(page.locator(".messages")).to_contain_text("The server keeps running")
    expect(page.locator("#idle-guard-state")).to_contain_text("Watching")
    assert IdleGuard.objects.get(server=server).state == IdleState.WATCHING
