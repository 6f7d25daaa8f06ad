"""Every page a logged-in owner can open passes axe-core's accessibility check in chromium: no
violation of impact serious or critical, in the light and the dark colour scheme at desktop
width, and on a few key pages at phone width (the menu opened, too).

The pages are walked, not listed: every route of the URL configuration whose GET the permission
matrix (tests/test_permission_matrix.py) lets an owner of team Alpha open is loaded with the
matrix's objects, so a new page is checked as soon as it has a route. A route the walk opens
that is not an HTML page fails the test unless SKIPPED says why it is not one.
"""

from urllib.parse import urlparse

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import resolve, reverse

from testkit.permissions import reaches
from testkit.websockets import session_cookie
from tests import test_permission_matrix as matrix
from tests.test_permission_matrix import (
    ALLOWED,
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

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

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
PHONE_PAGES = ["dashboard", "server_list", "stack_detail", "run_detail", "model_create", "search"]
PHONE_WIDTH = 390

SCHEMES = ("light", "dark")


def walked_routes():
    """The routes an owner of Alpha may GET, and the status each should answer."""
    for route in APP_ROUTES:
        # What an owner of Alpha gets does not depend on whether the route is about an object.
        expected = outcome(decision(route)[0], OWNER, about_alpha=True)
        if expected in (ALLOWED, LOGIN_ERROR_PAGE):
            yield route


def pages(objects: dict) -> dict[str, str]:
    """The path of each walked route, filled with the world's objects, by URL name."""
    paths: dict[str, str] = {}
    for route in walked_routes():
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


def test_every_page_an_owner_opens_has_no_serious_accessibility_violation(
    live_server, page, people, world, no_tasks
):
    log_in_browser(page, live_server.url, people[OWNER])
    axe = Axe()
    found: list[str] = []
    checked: set[str] = set()
    paths = pages(world)
    # The 404 page a mistyped address shows, too.
    paths["404 page"] = "/no-such-page/"
    for name, path in paths.items():
        if name in SKIPPED:
            continue
        page.emulate_media(color_scheme="light")
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None, f"{name} ({path}) gave no response"
        status = response.status
        landed = urlparse(page.url).path
        if name == "404 page":
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
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            found += serious_violations(page, axe, f"{name} {path} ({scheme})")
    assert reverse("dashboard") in checked
    assert found == [], "\n".join(["Serious or critical accessibility violations:", *found])


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
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            found += serious_violations(page, axe, f"{name} {paths[name]} ({scheme}, phone)")
    # The menu opened: its search, navigation and account.
    page.get_by_text("Menu").click()
    navigation = page.get_by_role("navigation", name="Main")
    assert navigation.is_visible()
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme)
        found += serious_violations(page, axe, f"the menu ({scheme}, phone)")
    assert found == [], "\n".join(["Serious or critical accessibility violations:", *found])
