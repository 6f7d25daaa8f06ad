"""An on-call owner on a phone (390x844), in English and in Chinese: the dashboard, the servers,
a server, a stack and a failed run fit the screen, the menu opens, and the page reads in the
owner's language."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from deployments.choices import PipelineKind, Role, RunStatus, StackStatus, StepStatus
from deployments.models import StepRun
from testkit.browser import log_in
from testkit.factories import add_member, make_run, make_server, make_stack, make_team, make_user

pytestmark = [pytest.mark.slow, pytest.mark.engine_agnostic]

PHONE = {"width": 390, "height": 844}
# A language, and words every page of it shows: the menu's button and a link in the menu.
LANGUAGES = {
    "en": {"menu": "Menu", "servers": "Servers"},
    "zh-hans": {"menu": "菜单", "servers": "服务器"},
}


@pytest.fixture
def owner(transactional_db):
    team = make_team("Alpha")
    user = make_user("owner-olga")
    add_member(team, user, role=Role.OWNER)
    server = make_server(team, name="gpu-with-a-rather-long-name-1", host="203.0.113.50")
    stack = make_stack(server, name="chatbot-production", status=StackStatus.RUNNING)
    started = timezone.now() - timedelta(minutes=4)
    run = make_run(
        team,
        status=RunStatus.FAILED,
        kind=PipelineKind.STACK_DEPLOY,
        params={"stack_id": stack.pk, "server_id": server.pk},
        error="The health wait ran out after 600 s: fastgpt never answered on port 3000.",
        started_at=started,
        finished_at=started + timedelta(minutes=3, seconds=12),
    )
    StepRun.objects.create(
        run=run,
        index=0,
        name="stack.pull",
        status=StepStatus.SUCCEEDED,
        output="Pulling fastgpt ... done\n" * 3,
        started_at=started,
        finished_at=started + timedelta(seconds=65),
    )
    StepRun.objects.create(
        run=run,
        index=1,
        name="stack.wait_healthy",
        status=StepStatus.FAILED,
        output="waiting for fastgpt: " + "connection refused " * 20,
        error="fastgpt never answered on port 3000.",
        started_at=started + timedelta(seconds=65),
        finished_at=started + timedelta(minutes=3, seconds=12),
    )
    user.pages = [
        "/",
        "/servers/",
        f"/servers/{server.pk}/",
        f"/stacks/{stack.pk}/",
        f"/runs/{run.pk}/",
    ]
    return user


def overflow(page) -> int:
    """How far the page reaches past the window's width (0: no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_owner_on_a_phone_reads_every_page_in_their_language_without_scrolling_sideways(
    live_server, page, owner, tmp_path, language
):
    words = LANGUAGES[language]
    page.set_viewport_size(PHONE)
    log_in(page, live_server.url, owner.username, owner.raw_password)
    page.context.add_cookies(
        [{"name": "django_language", "value": language, "url": live_server.url}]
    )
    menu = page.locator("details.menu")
    # The menu's link, not the breadcrumbs' one.
    servers = menu.locator("nav.sidebar").get_by_role("link", name=words["servers"], exact=True)
    for number, path in enumerate(owner.pages):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("html")).to_have_attribute("lang", language)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert overflow(page) <= 0, f"{path} scrolls sideways at phone width in {language}"
        page.screenshot(path=str(tmp_path / f"{language}-{number}.png"), full_page=True)

        expect(servers).to_be_hidden()
        menu.get_by_text(words["menu"], exact=True).click()
        expect(servers).to_be_visible()
        assert overflow(page) <= 0, f"{path}'s open menu scrolls sideways in {language}"
        if number == 0:
            page.screenshot(path=str(tmp_path / f"{language}-menu.png"), full_page=True)
