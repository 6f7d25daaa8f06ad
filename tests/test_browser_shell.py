"""The panel's shell in a real browser, at desktop and phone widths: the menu, pages that never
scroll sideways, dark mode from the system, the search, and the server form's login fields."""

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from deployments import audit
from deployments.choices import PipelineKind, Role, RunStatus, StackStatus
from testkit.browser import CHROMIUM, CHROMIUM_ARGS, log_in
from testkit.factories import add_member, make_run, make_server, make_stack, make_team, make_user

pytestmark = [pytest.mark.slow, pytest.mark.engine_agnostic]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PAGES = ["/", "/stacks/", "/audit/"]


@pytest.fixture
def owner(transactional_db):
    team = make_team("Alpha")
    user = make_user("owner-olga")
    add_member(team, user, role=Role.OWNER)
    server = make_server(team, name="gpu-with-a-rather-long-name-1", host="203.0.113.50")
    stack = make_stack(server, name="chatbot-production", status=StackStatus.RUNNING)
    make_run(
        team,
        status=RunStatus.FAILED,
        kind=PipelineKind.SERVER_PREPARE,
        params={"server_id": server.pk},
        error="The server did not answer on port 22: check its address and firewall.",
    )
    make_run(team, status=RunStatus.RUNNING, kind=PipelineKind.MODEL_LAUNCH)
    for _ in range(3):
        audit.record(
            "stack.deploy",
            actor=user,
            target=stack,
            details={"registry": "docker hub", "version": "fastgpt-4.8.8"},
        )
    user.stack = stack
    return user


@pytest.fixture
def browser_no_js(monkeypatch):
    """A chromium page with JavaScript turned off."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(java_script_enabled=False, viewport=DESKTOP)
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            connections.close_all()


def overflow(page) -> int:
    """How far the page reaches past the window's width (0: no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def background(page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def test_at_desktop_width_the_navigation_is_grouped_with_icons_and_the_search_jumps(
    live_server, page, owner, tmp_path
):
    page.set_viewport_size(DESKTOP)
    log_in(page, live_server.url, owner.username, owner.raw_password)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Servers")).to_be_visible()
    expect(nav.get_by_role("link", name="Audit")).to_be_visible()
    expect(nav).to_contain_text("Infrastructure")
    assert nav.locator("a svg").count() >= 9
    # No "Menu" button on a wide screen: the menu is open as a sidebar.
    expect(page.locator(".menu > summary")).to_be_hidden()
    expect(page.get_by_role("heading", name="Stacks")).to_be_visible()
    expect(page.get_by_role("heading", name="Getting started")).to_be_visible()
    page.screenshot(path=str(tmp_path / "dashboard-desktop.png"), full_page=True)

    for path in PAGES:
        page.goto(f"{live_server.url}{path}")
        assert overflow(page) <= 0, f"{path} scrolls sideways at desktop width"

    search = page.get_by_role("searchbox", name="Search")
    search.fill("chatbot-prod")
    search.press("Enter")
    page.wait_for_url(f"{live_server.url}/stacks/{owner.stack.pk}/")


def test_at_phone_width_the_menu_opens_and_no_page_scrolls_sideways(
    live_server, page, owner, tmp_path
):
    page.set_viewport_size(PHONE)
    log_in(page, live_server.url, owner.username, owner.raw_password)
    servers = page.get_by_role("navigation", name="Main").get_by_role("link", name="Servers")
    expect(servers).to_be_hidden()
    page.get_by_text("Menu", exact=True).click()
    expect(servers).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.screenshot(path=str(tmp_path / "menu-phone.png"), full_page=True)
    servers.click()
    page.wait_for_url(f"{live_server.url}/servers/")

    for path in PAGES:
        page.goto(f"{live_server.url}{path}")
        assert overflow(page) <= 0, f"{path} scrolls sideways at phone width"
        page.screenshot(path=str(tmp_path / f"phone{path.replace('/', '-')}.png"), full_page=True)

    # The audit table scrolls inside its wrapper; its dates stay on one line.
    time_cell = page.locator("table.audit-table tbody td").first
    height = time_cell.evaluate("cell => cell.querySelector('time').getBoundingClientRect().height")
    line = time_cell.evaluate("cell => parseFloat(getComputedStyle(cell).lineHeight)")
    assert height < 1.5 * line, "the audit table's date wraps"


def test_dark_mode_follows_the_system(live_server, page, owner, tmp_path):
    page.set_viewport_size(DESKTOP)
    log_in(page, live_server.url, owner.username, owner.raw_password)
    page.emulate_media(color_scheme="light")
    light = background(page)
    page.emulate_media(color_scheme="dark")
    dark = background(page)
    assert light != dark
    assert dark != "rgb(255, 255, 255)"
    page.screenshot(path=str(tmp_path / "dashboard-dark.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/stacks/")
    page.screenshot(path=str(tmp_path / "stacks-dark-phone.png"), full_page=True)


def test_the_server_form_shows_only_the_fields_of_the_chosen_login(live_server, page, owner):
    page.set_viewport_size(DESKTOP)
    log_in(page, live_server.url, owner.username, owner.raw_password)
    page.goto(f"{live_server.url}/servers/new/")
    key = page.get_by_label("SSH private key")
    password = page.get_by_label("One-time password")
    # The panel generates a key pair by default: nothing to paste, no password.
    expect(key).to_be_hidden()
    expect(password).to_be_hidden()

    page.get_by_label("Paste a private key").check()
    expect(key).to_be_visible()
    expect(password).to_be_hidden()

    page.get_by_label("Log in once with a password").check()
    expect(password).to_be_visible()
    expect(key).to_be_hidden()


def test_without_javascript_the_server_form_shows_every_field(live_server, owner, browser_no_js):
    page = browser_no_js
    log_in(page, live_server.url, owner.username, owner.raw_password)
    page.goto(f"{live_server.url}/servers/new/")
    expect(page.get_by_label("SSH private key")).to_be_visible()
    expect(page.get_by_label("One-time password")).to_be_visible()
