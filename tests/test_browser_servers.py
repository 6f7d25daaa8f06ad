"""A new owner onboards a real server through the browser: key, check, facts, host-key change."""

import pytest
from playwright.sync_api import expect

from deployments.choices import Role
from testkit.browser import log_in
from testkit.factories import add_member, make_team, make_user

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
