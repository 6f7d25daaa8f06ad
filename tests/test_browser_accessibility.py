"""Every page a logged-in owner can open passes axe-core's accessibility check in chromium: no
violation of impact serious or critical, in the light and the dark colour scheme at desktop
width, and on a few key pages at phone width (the menu opened, too). So do the pages a visitor
sees before logging in and forms sent back with mistakes; and no page gives one id to two
elements.

The pages are walked, not listed: every route of the URL configuration whose GET the permission
matrix (tests/test_permission_matrix.py) lets an owner of team Alpha open is loaded with the
matrix's objects, so a new page is checked as soon as it has a route. A route the walk opens
that is not an HTML page fails the test unless SKIPPED says why it is not one.
"""

from urllib.parse import urlparse

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import resolve, reverse
from playwright.sync_api import expect

from testkit.permissions import reaches
from testkit.websockets import session_cookie
from tests import test_permission_matrix as matrix
from tests.test_permission_matrix import (
    ALLOWED,
    ANONYMOUS,
    APP_ROUTES,
    HTTP_ROUTES,
    LOGIN_ERROR_PAGE,
    OWNER,
    arguments,
    decision,
    outcome,
)

# The matrix's fixtures: its people by role, one object of each kind in team Alpha, no tasks run.
people, world, no_tasks = matrix.people, matrix.world, matrix.no_tasks

pytestmark = [
    pytest.mark.slow,
    pytest.mark.engine_agnostic,
    pytest.mark.django_db(transaction=True),
]

# Impacts that fail the check; axe-core's others are "minor" and "moderate".
FAILING_IMPACTS = {"serious", "critical"}

# Routes an owner may GET that are not pages a person reads, by URL name, and why. Routes whose
# GET nobody may send (actions: POST only), Django's admin (staff accounts only, not an owner)
# and pages of what does not exist here are left out by the matrix's decisions already;
# websocket routes are not in the URL configuration.
SKIPPED: dict[str, str] = {
    # JSON the log viewer polls when its websocket is down: no page of its own.
    "stack_logs_recent": "JSON for the log viewer",
    "stack_service_logs_recent": "JSON for the log viewer",
    # The steps table a run's page swaps in while the run goes on: checked inside run_detail.
    "run_steps": "a fragment of run_detail",
    # The results a knowledge base's search form swaps in under its query box.
    "knowledge_search": "a fragment of knowledge_detail",
}

# Key pages, checked at phone width as well, by URL name.
PHONE_PAGES = [
    "dashboard",
    "server_list",
    "stack_detail",
    "run_detail",
    "model_list",
    "model_create",
    "audit_list",
    "search",
    "usersessions_list",
]
PHONE_WIDTH = 390

SCHEMES = ("light", "dark")

# The name the walk gives the page a mistyped address shows.
NOT_FOUND_PAGE = "404 page"


def walked_routes(role: str = OWNER):
    """The routes `role` (an owner of Alpha, or an anonymous visitor) may GET."""
    for route in APP_ROUTES:
        # What a member of Alpha or a visitor gets does not depend on whether the route is about
        # an object of Alpha's.
        expected = outcome(decision(route)[0], role, about_alpha=True)
        if expected in (ALLOWED, LOGIN_ERROR_PAGE):
            yield route


def pages(objects: dict, role: str = OWNER) -> dict[str, str]:
    """The path of each route `role` may GET, filled with the world's objects, by URL name."""
    paths: dict[str, str] = {}
    for route in walked_routes(role):
        _get_needs, _post_needs, target = decision(route)
        values, _about_alpha = arguments(route, objects, target)
        path = route.path(values)
        assert reaches(route, path), f"{path} does not reach {route.name}"
        paths[route.name] = path
    return paths


def log_in_browser(page, base_url: str, user) -> None:
    cookie = session_cookie(user).decode().partition("=")[2]
    page.context.add_cookies([{"name": "sessionid", "value": cookie, "url": base_url}])


def serious_violations(page, axe: Axe, where: str) -> list[str]:
    """Each violation of a failing impact on the page as it is now, one line an element."""
    results = axe.run(page)
    lines = []
    for violation in results.response["violations"]:
        if violation["impact"] not in FAILING_IMPACTS:
            continue
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            snippet = node["html"].replace("\n", " ")[:200]
            lines.append(
                f"{where}: {violation['id']} ({violation['impact']}): {target}: {snippet}"
                f" ({violation['help']})"
            )
    return lines


def duplicate_ids(page, where: str) -> list[str]:
    """Each id that more than one element of the page has: a label or a link to it is ambiguous.
    (axe-core checks this only for ids that ARIA attributes name.)"""
    ids = page.evaluate(
        "() => { const seen = {}; for (const el of document.querySelectorAll('[id]')) {"
        " seen[el.id] = (seen[el.id] || 0) + 1; }"
        " return Object.keys(seen).filter(id => seen[id] > 1); }"
    )
    return [f"{where}: duplicate-id: #{id_} is on more than one element" for id_ in ids]


def in_both_schemes(page, axe: Axe, where: str) -> list[str]:
    """The page's serious and critical violations in the light and the dark colour scheme, and
    its duplicate ids."""
    found = duplicate_ids(page, where)
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme)
        found += serious_violations(page, axe, f"{where} ({scheme})")
    page.emulate_media(color_scheme="light")
    return found


def walk(page, base_url: str, paths: dict[str, str]) -> tuple[list[str], set[str]]:
    """Open every path and check the page it lands on; the violations, and the paths checked."""
    axe = Axe()
    found: list[str] = []
    checked: set[str] = set()
    for name, path in paths.items():
        if name in SKIPPED:
            continue
        response = page.goto(f"{base_url}{path}")
        assert response is not None, f"{name} ({path}) gave no response"
        status = response.status
        landed = urlparse(page.url).path
        if name == NOT_FOUND_PAGE:
            assert status == 404, f"{path} answered {status}"
        elif resolve(landed).url_name == "socialaccount_login_error":
            # The page of a third-party login that failed answers 401.
            assert status == 401, f"{name} ({path}) answered {status}"
        else:
            assert status < 400, (
                f"{name} ({path}) answered {status}: add it to SKIPPED if it is no page"
            )
        content_type = response.headers.get("content-type", "")
        assert content_type.startswith("text/html"), (
            f"{name} ({path}) is {content_type}, not a page: add it to SKIPPED with the reason"
        )
        # A page that sends elsewhere (the login page, once logged in) is checked where it lands,
        # once.
        if landed in checked:
            continue
        checked.add(landed)
        found += in_both_schemes(page, axe, f"{name} {path}")
    return found, checked


def report(found: list[str]) -> str:
    return "\n".join(["Serious or critical accessibility violations:", *found])


def test_skipped_routes_are_routes_the_walk_would_open():
    names = {route.name for route in HTTP_ROUTES}
    walked = {route.name for route in walked_routes()}
    assert set(SKIPPED) <= names, f"Not routes any more: {sorted(set(SKIPPED) - names)}"
    assert set(SKIPPED) <= walked, f"Not opened by an owner: {sorted(set(SKIPPED) - walked)}"
    assert set(PHONE_PAGES) <= walked - set(SKIPPED)
    # The walk reaches every area, and pages of objects.
    assert {"dashboard", "stack_detail", "knowledge_detail", "app_detail", "account_index"} <= (
        walked
    )
    # A visitor's walk: the login and the pages of the password reset.
    assert {"login", "account_reset_password", "invitation_accept"} <= set(
        route.name for route in walked_routes(ANONYMOUS)
    )


def test_every_page_an_owner_opens_has_no_serious_accessibility_violation(
    live_server, page, people, world, no_tasks
):
    log_in_browser(page, live_server.url, people[OWNER])
    paths = pages(world)
    # The 404 page a mistyped address shows, too.
    paths[NOT_FOUND_PAGE] = "/no-such-page/"

    found, checked = walk(page, live_server.url, paths)

    assert {reverse("dashboard"), reverse("stack_detail", args=[world["stack"].pk])} <= checked
    assert found == [], report(found)


def test_every_page_a_visitor_opens_before_logging_in_has_no_serious_accessibility_violation(
    live_server, page, world, no_tasks
):
    found, checked = walk(page, live_server.url, pages(world, ANONYMOUS))

    assert reverse("login") in checked
    assert found == [], report(found)


def test_forms_sent_with_mistakes_have_no_serious_accessibility_violation(
    live_server, page, people, world, no_tasks
):
    axe = Axe()
    page.goto(f"{live_server.url}{reverse('login')}")
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("main .errorlist, main .error").first).to_be_visible()
    found = in_both_schemes(page, axe, "login, a wrong password")

    log_in_browser(page, live_server.url, people[OWNER])
    page.goto(f"{live_server.url}{reverse('server_create')}")
    page.get_by_role("button", name="Add server").click()
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    found += in_both_schemes(page, axe, "server_create, sent empty")

    assert found == [], report(found)


def test_key_pages_at_phone_width_have_no_serious_accessibility_violation(
    live_server, page, people, world, no_tasks
):
    log_in_browser(page, live_server.url, people[OWNER])
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    axe = Axe()
    found: list[str] = []
    paths = pages(world)
    for name in PHONE_PAGES:
        response = page.goto(f"{live_server.url}{paths[name]}")
        assert response is not None and response.status < 400, f"{name} did not open"
        found += in_both_schemes(page, axe, f"{name} {paths[name]} (phone)")
    # The menu opened: its search, navigation and account.
    page.get_by_text("Menu").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    found += in_both_schemes(page, axe, "the menu (phone)")

    assert found == [], report(found)
