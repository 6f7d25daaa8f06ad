"""An invitation from end to end in chromium: an owner invites an address with a role and copies
the link shown once; someone else opens it in a browser of their own, creates an account and is
a member with that role; the owner's team page lists them; the link never works again.

The link's token rides after "#": the page's script sends it in a POST, so no address the
browser asks for holds it."""

import re

import pytest
from playwright.sync_api import expect

from deployments.choices import Role
from deployments.models import Membership
from testkit.browser import log_in
from testkit.factories import add_member, make_team, make_user

pytestmark = pytest.mark.slow

UNUSABLE = "This invitation link is not valid: ask a team owner for a new one."


def watched_context(page, requested: list[str], errors: list[str]):
    """A browser context of its own (no cookies shared with `page`) that notes every address it
    requests and every console error (chromium reports a CSP violation as one)."""
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    context.on("request", lambda request: requested.append(request.url))
    context.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    return context


def test_an_invited_person_opens_the_link_creates_an_account_and_joins_with_the_role(
    live_server, transactional_db, page, tmp_path, settings
):
    settings.EMAIL_HOST = ""
    team = make_team("Alpha")
    owner = make_user("owner-olga")
    add_member(team, owner, role=Role.OWNER)
    log_in(page, live_server.url, "owner-olga", owner.raw_password)

    page.goto(f"{live_server.url}/teams/{team.pk}/")
    invite = page.locator(f"form[action='/teams/{team.pk}/invitations/new/']")
    invite.get_by_label("Role").select_option("operator")
    invite.get_by_label("E-mail (optional)").fill("newcomer@example.com")
    invite.get_by_role("button", name="Create invitation").click()
    link_field = page.locator("#invitation-url")
    link = link_field.input_value()
    assert link.startswith(f"{live_server.url}/invitations/accept/#")
    token = link.partition("#")[2]
    assert len(token) >= 40
    page.screenshot(path=str(tmp_path / "invitation-link.png"), full_page=True)

    requested: list[str] = []
    errors: list[str] = []
    newcomer_browser = watched_context(page, requested, errors)
    try:
        newcomer = newcomer_browser.new_page()
        newcomer.goto(link)
        expect(newcomer.get_by_role("heading", name="Join team Alpha as operator?")).to_be_visible()
        assert "#" not in newcomer.url
        expect(newcomer.get_by_role("button", name="Open invitation")).to_be_hidden()
        expect(newcomer.get_by_label("E-mail (optional)")).to_have_value("newcomer@example.com")
        newcomer.get_by_label("Username").fill("newcomer")
        newcomer.get_by_label(re.compile(r"^Password:?$")).fill("a long pass phrase 4 u")
        newcomer.get_by_label("Password confirmation").fill("a long pass phrase 4 u")
        newcomer.get_by_role("button", name="Create account and join").click()
        expect(newcomer.locator(".messages")).to_contain_text("You joined team Alpha as operator.")
        expect(newcomer.get_by_role("heading", name="Team Alpha")).to_be_visible()
        newcomer.screenshot(path=str(tmp_path / "joined.png"), full_page=True)
    finally:
        newcomer_browser.close()

    membership = Membership.objects.get(team=team, user__username="newcomer")
    assert membership.role == Role.OPERATOR
    # Only the fragment held the token, and browsers do not send it.
    assert requested and all(token not in url for url in requested)
    assert errors == []

    page.goto(f"{live_server.url}/teams/{team.pk}/")
    row = page.get_by_role("row").filter(has_text="newcomer")
    expect(row).to_be_visible()
    expect(row.get_by_role("combobox")).to_have_value("operator")

    again_requested: list[str] = []
    late_browser = watched_context(page, again_requested, [])
    try:
        late = late_browser.new_page()
        late.goto(link)
        expect(late.locator("main")).to_contain_text(UNUSABLE)
        expect(late.locator("main")).not_to_contain_text("Alpha")
    finally:
        late_browser.close()
    assert all(token not in url for url in again_requested)
    assert Membership.objects.filter(team=team).count() == 2
