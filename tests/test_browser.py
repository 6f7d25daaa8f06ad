"""A real browser through the real pages: log in, add a server, find it and its audit entry."""

import pytest
from playwright.sync_api import expect

from deployments.choices import Role
from deployments.models import AuditEvent, Server
from testkit.factories import add_member, make_team, make_user

pytestmark = pytest.mark.slow


def test_operator_logs_in_adds_a_server_and_finds_it_and_its_audit_entry(
    live_server, transactional_db, page, tmp_path
):
    team = make_team("Alpha")
    operator = make_user("ops-alice")
    add_member(team, operator, role=Role.OPERATOR)

    page.goto(f"{live_server.url}/servers/")
    expect(page).to_have_title("Log in · LLM stack panel")
    page.get_by_label("Username").fill("ops-alice")
    page.get_by_label("Password").fill(operator.raw_password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Servers")).to_be_visible()

    page.get_by_role("link", name="Add a server").first.click()
    page.get_by_label("Name").fill("gpu bad name")
    page.get_by_label("Host").fill("gpu-1.example.com")
    page.get_by_role("button", name="Add server").click()
    expect(page.locator("#id_name_error")).to_contain_text("letters, digits")

    page.get_by_label("Name").fill("gpu-1")
    page.get_by_label("SSH port").fill("2222")
    page.get_by_label("Hourly price").fill("2.10")
    page.get_by_role("button", name="Add server").click()
    expect(page.get_by_role("heading", name="Server gpu-1")).to_be_visible()
    expect(page.locator(".messages")).to_contain_text("Server “gpu-1” added.")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Servers").click()
    row = page.get_by_role("row").filter(has_text="gpu-1")
    expect(row).to_contain_text("root@gpu-1.example.com:2222")
    expect(row).to_contain_text("Alpha")
    page.screenshot(path=str(tmp_path / "servers.png"), full_page=True)

    page.get_by_role("link", name="Audit").click()
    # The action in words; its stored code is the cell's title.
    entry = page.get_by_role("row").filter(has_text="Server added")
    expect(entry.get_by_title("server.create")).to_be_visible()
    expect(entry).to_contain_text("ops-alice")
    expect(entry).to_contain_text("gpu-1")

    server = Server.objects.get(name="gpu-1")
    assert server.ssh_port == 2222
    assert AuditEvent.objects.filter(action="server.create", actor=operator).count() == 1

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_title("Log in · LLM stack panel")
