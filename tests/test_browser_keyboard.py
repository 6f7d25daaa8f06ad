"""In chromium, with the keyboard alone: the first Tab offers to skip to the content, Tab reaches
the main navigation and the search, the phone menu opens with Enter, and forms are filled and sent
with Tab, typing and Enter. Whatever has the focus shows it."""

import pytest
from playwright.sync_api import Locator, Page, expect

from deployments.choices import Role
from deployments.models import Server
from testkit.browser import log_in
from testkit.factories import add_member, make_server, make_team, make_user

pytestmark = [pytest.mark.slow, pytest.mark.engine_agnostic]

# More Tabs than any page here needs to reach what a test looks for.
TAB_LIMIT = 60


def focused(page: Page) -> str:
    return page.evaluate(
        "() => { const el = document.activeElement;"
        " const name = el.getAttribute('aria-label') || el.textContent || el.name || '';"
        " return `${el.tagName} ${name.trim().slice(0, 40)}`; }"
    )


def tab_to(page: Page, target: Locator, *, backwards: bool = False) -> None:
    """Press Tab until `target` has the focus; fail, naming what Tab reached, if it never does."""
    reached = []
    for _ in range(TAB_LIMIT):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
        reached.append(focused(page))
    pytest.fail(f"Tab never reached {target}; it reached: {reached}")


def has_focus(target: Locator) -> bool:
    return target.evaluate("el => el === document.activeElement")


def focus_outline(target: Locator) -> tuple[str, float]:
    """The outline the focused element shows: its style and width in pixels."""
    return target.evaluate(
        "el => { const s = getComputedStyle(el);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"
    )


def assert_focus_is_visible(target: Locator) -> None:
    style, width = focus_outline(target)
    assert style != "none" and width >= 2, f"{target} shows no focus ({style}, {width}px)"


@pytest.fixture
def operator_login(live_server, transactional_db):
    team = make_team("Alpha")
    operator = add_member(team, make_user("ops-olga"), role=Role.OPERATOR)
    make_server(team, name="gpu-1", host="203.0.113.7")
    return operator


def test_the_first_tab_offers_to_skip_to_the_content_and_enter_goes_there(
    live_server, operator_login, page
):
    log_in(page, live_server.url, "ops-olga", operator_login.raw_password)
    page.goto(f"{live_server.url}/servers/")

    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert has_focus(skip), f"the first Tab reached {focused(page)}"
    expect(skip).to_be_in_viewport()
    assert_focus_is_visible(skip)
    page.keyboard.press("Enter")

    main = page.get_by_role("main")
    assert has_focus(main), f"the focus is on {focused(page)}"
    # The next Tab goes on from the content, past the menu.
    page.keyboard.press("Tab")
    inside_main = page.evaluate(
        "() => document.querySelector('main').contains(document.activeElement)"
    )
    assert inside_main, f"the next Tab reached {focused(page)}"


def test_a_keyboard_user_reaches_the_main_navigation_and_searches_from_the_top_bar(
    live_server, operator_login, page
):
    log_in(page, live_server.url, "ops-olga", operator_login.raw_password)

    navigation = page.get_by_role("navigation", name="Main")
    servers = navigation.get_by_role("link", name="Servers")
    tab_to(page, servers)
    assert_focus_is_visible(servers)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Servers", level=1)).to_be_visible()

    search = page.get_by_role("banner").get_by_role("searchbox")
    tab_to(page, search)
    assert_focus_is_visible(search)
    page.keyboard.type("gpu-1")
    page.keyboard.press("Enter")
    # The one server of that name: the search opens it.
    expect(page.get_by_role("heading", name="Server gpu-1")).to_be_visible()


def test_at_phone_width_the_menu_opens_with_enter_and_its_links_are_reached_by_tab(
    live_server, operator_login, page
):
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, live_server.url, "ops-olga", operator_login.raw_password)

    menu = page.locator("details.menu")
    stacks = page.get_by_role("navigation", name="Main").get_by_role("link", name="Stacks")
    expect(stacks).to_be_hidden()
    summary = menu.locator("summary")
    tab_to(page, summary)
    assert_focus_is_visible(summary)
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("open", "")
    expect(stacks).to_be_visible()

    tab_to(page, page.get_by_role("banner").get_by_role("searchbox"))
    tab_to(page, stacks)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Stacks", level=1)).to_be_visible()


def test_a_keyboard_user_logs_in_and_adds_a_server_with_tab_typing_and_enter(
    live_server, operator_login, page
):
    page.goto(f"{live_server.url}/login/")
    tab_to(page, page.get_by_label("Username"))
    page.keyboard.type("ops-olga")
    page.keyboard.press("Tab")
    assert has_focus(page.get_by_label("Password")), f"Tab after the username: {focused(page)}"
    page.keyboard.type(operator_login.raw_password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/servers/new/")
    tab_to(page, page.get_by_label("Name"))
    page.keyboard.type("gpu-2")
    tab_to(page, page.get_by_label("Host"))
    page.keyboard.type("gpu-2.example.com")
    submit = page.get_by_role("button", name="Add server")
    tab_to(page, submit)
    assert_focus_is_visible(submit)
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Server gpu-2")).to_be_visible()
    assert Server.objects.filter(name="gpu-2", host="gpu-2.example.com").exists()
