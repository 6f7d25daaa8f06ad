"""A new owner onboards a real server through the browser: key, check, facts, host-key change;
and the facts of a check show on the page when it finishes, without a reload."""

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from deployments import tasks
from deployments.choices import Role, ServerStatus
from deployments.models import Server
from testkit.browser import log_in
from testkit.factories import add_member, make_server, make_team, make_user

pytestmark = pytest.mark.slow


def test_owner_adds_a_server_sees_its_facts_and_a_changed_host_key_is_refused(
    live_server, transactional_db, eager_tasks, page, ssh_target, tmp_path
):
    team = make_team("Alpha")
    owner = make_user("owner-olga")
    add_member(team, owner, role=Role.OWNER)
    log_in(page, live_server.url, "owner-olga", owner.raw_password)

    page.goto(f"{live_server.url}/servers/new/")
    page.get_by_label("Name").fill("gpu-box")
    page.get_by_label("Host").fill(ssh_target.host)
    page.get_by_label("SSH port").fill(str(ssh_target.port))
    # The target listens on this machine's loopback, which an owner must allow.
    page.get_by_label("Allow a local address").check()
    page.get_by_label("Paste a private key").check()
    page.get_by_label("SSH private key").fill(ssh_target.key.private_openssh)
    page.get_by_role("button", name="Add server").click()
    expect(page.get_by_role("heading", name="Server gpu-box")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Not checked yet")

    page.get_by_role("button", name="Check now").click()
    expect(page.locator("main")).to_contain_text("Reachable")
    expect(page.locator("main")).to_contain_text("Debian GNU/Linux 12")
    expect(page.locator("main")).to_contain_text("docker-compose (v1) 1.29")
    expect(page.locator("main")).to_contain_text("No NVIDIA GPU found")
    page.screenshot(path=str(tmp_path / "server-facts.png"), full_page=True)
    assert ssh_target.key.private_openssh.splitlines()[1] not in page.content()

    ssh_target.restart_with_new_host_key()
    page.get_by_role("button", name="Check now").click()
    warning = page.locator("#host-key-changed")
    expect(warning).to_contain_text("The server's host key has changed")
    expect(page.locator("main")).to_contain_text("Unreachable")
    page.screenshot(path=str(tmp_path / "host-key-changed.png"), full_page=True)

    page.get_by_role("button", name="Accept the new host key").click()
    expect(page.locator(".messages")).to_contain_text("The new host key is pinned")
    page.get_by_role("button", name="Check now").click()
    expect(page.locator("main")).to_contain_text("Reachable")
    expect(page.locator("#host-key-changed")).to_have_count(0)


def test_the_facts_appear_when_the_check_finishes_without_a_reload(
    live_server, transactional_db, page, monkeypatch
):
    # No worker here: the test records what a worker's check would, once the page waits.
    queued = []
    monkeypatch.setattr(tasks.check_server_task, "delay_on_commit", queued.append)
    team = make_team("Alpha")
    owner = make_user("owner-omar")
    add_member(team, owner, role=Role.OWNER)
    server = make_server(team, name="gpu-2")
    log_in(page, live_server.url, "owner-omar", owner.raw_password)
    page.goto(f"{live_server.url}{reverse('server_detail', args=[server.pk])}")
    expect(page.locator("#server-facts")).to_contain_text("Not checked yet.")

    page.get_by_role("button", name="Check now").click()
    expect(page.locator("#server-checking")).to_contain_text("checking the server")
    assert queued == [server.pk]
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    now = timezone.now()
    Server.objects.filter(pk=server.pk).update(
        status=ServerStatus.REACHABLE,
        last_checked_at=now,
        facts_checked_at=now,
        facts={
            "os": {"pretty_name": "Ubuntu 22.04.4 LTS"},
            "cpu": {"cores": 16},
            "gpus": [{"index": 0, "name": "NVIDIA H100", "memory_total_mib": 81559}],
        },
    )
    facts = page.locator("#server-facts")
    expect(facts).to_contain_text("Ubuntu 22.04.4 LTS", timeout=10_000)
    expect(facts).to_contain_text("NVIDIA H100")
    expect(page.locator("#server-state")).to_contain_text("Reachable")
    expect(page.locator("#server-checking")).to_have_count(0)
    expect(page.locator("#server-state")).not_to_have_attribute("hx-trigger", "every 2s")
    assert navigations == [], "the page was reloaded"
