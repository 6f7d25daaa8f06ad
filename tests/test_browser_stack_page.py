"""In chromium: an owner sees FastGPT's login on the stack page after typing their own password
(a wrong one is refused with a sentence), the login is gone again after a reload, and "Restart
all" asks before anything restarts."""

import pytest
from playwright.sync_api import expect

from deployments.choices import Role, StackStatus
from deployments.models import Deployment
from deployments.stacks.secrets import stack_secrets
from testkit.browser import log_in
from testkit.factories import add_member, make_server, make_stack, make_team, make_user

pytestmark = pytest.mark.slow


def deployed_stack(team):
    stack = make_stack(
        make_server(team, name="gpu-1", host="203.0.113.7"),
        name="chatbot",
        status=StackStatus.RUNNING,
        rendered_files={"docker-compose.yml": "services:\n  fastgpt: {}\n"},
        fastgpt_port=3100,
    )
    return stack, stack_secrets(stack)


def test_an_owner_reveals_fastgpts_login_with_their_password_and_a_reload_hides_it(
    live_server, transactional_db, page, tmp_path
):
    team = make_team("Alpha")
    owner = add_member(team, make_user("owner-olga"), role=Role.OWNER)
    stack, secrets = deployed_stack(team)
    root_password = secrets["FASTGPT_ROOT_PASSWORD"]
    log_in(page, live_server.url, "owner-olga", owner.raw_password)

    page.goto(f"{live_server.url}/stacks/{stack.pk}/")
    expect(page.get_by_role("link", name="http://203.0.113.7:3100")).to_be_visible()
    box = page.locator("#login-fastgpt")
    box.get_by_text("Show the FastGPT login").click()
    box.get_by_label("Your password").fill("not-my-password")
    box.get_by_role("button", name="Show login").click()
    expect(page.locator("#login-fastgpt")).to_contain_text("That is not your password")
    assert root_password not in page.content()

    box = page.locator("#login-fastgpt")
    box.get_by_label("Your password").fill(owner.raw_password)
    box.get_by_role("button", name="Show login").click()
    expect(page.locator("#login-fastgpt")).to_contain_text(root_password)
    # htmx swapped the box in place: the page's address is still the stack page's.
    assert page.url == f"{live_server.url}/stacks/{stack.pk}/"
    page.screenshot(path=str(tmp_path / "login-revealed.png"), full_page=True)

    page.reload()
    expect(page.locator("#login-fastgpt")).to_contain_text("Show the FastGPT login")
    assert root_password not in page.content()


def test_restart_all_asks_first_and_cancel_restarts_nothing(
    live_server, transactional_db, page, tmp_path
):
    team = make_team("Alpha")
    add_member(team, make_user("op-otto", "Right-pw-1"), role=Role.OPERATOR)
    stack, _ = deployed_stack(team)
    log_in(page, live_server.url, "op-otto", "Right-pw-1")

    page.goto(f"{live_server.url}/stacks/{stack.pk}/")
    page.get_by_role("link", name="Restart all").click()
    expect(
        page.get_by_role("heading", name="Restart every service of stack chatbot?")
    ).to_be_visible()
    expect(page.get_by_role("button", name="Restart all")).to_be_visible()
    page.screenshot(path=str(tmp_path / "restart-question.png"), full_page=True)
    assert not Deployment.objects.filter(stack=stack).exists()

    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Stack chatbot")).to_be_visible()
    assert not Deployment.objects.filter(stack=stack).exists()


def test_once_the_throttle_locks_the_box_says_how_long_to_wait(
    live_server, transactional_db, page, settings
):
    settings.AXES_FAILURE_LIMIT = 2
    team = make_team("Alpha")
    owner = add_member(team, make_user("owner-olga"), role=Role.OWNER)
    stack, secrets = deployed_stack(team)
    log_in(page, live_server.url, "owner-olga", owner.raw_password)

    page.goto(f"{live_server.url}/stacks/{stack.pk}/")
    page.locator("#login-fastgpt").get_by_text("Show the FastGPT login").click()
    for password in ("not-my-password", "nor-this-one"):
        box = page.locator("#login-fastgpt")
        box.get_by_label("Your password").fill(password)
        box.get_by_role("button", name="Show login").click()
        expect(page.locator("#login-fastgpt [role=alert]")).to_be_visible()
    # The answer is a 429, which htmx would not show by itself (static/js/stack_page.js).
    expect(page.locator("#login-fastgpt")).to_contain_text("Too many failed logins")
    box = page.locator("#login-fastgpt")
    box.get_by_label("Your password").fill(owner.raw_password)
    box.get_by_role("button", name="Show login").click()
    expect(page.locator("#login-fastgpt")).to_contain_text("Too many failed logins")
    assert secrets["FASTGPT_ROOT_PASSWORD"] not in page.content()
