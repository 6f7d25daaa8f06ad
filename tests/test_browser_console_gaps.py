"""In chromium, the console's gaps stay mended: "Add a stack" without a server names the next
step; destructive actions look dangerous and are offered only where they apply; removing a
member asks first; the upgrade page does not apply the line already running; each published
port is listed once; the audit table's times stay on one line; a failed run reads in words."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from deployments import audit
from deployments.choices import (
    DeploymentAction,
    PipelineKind,
    Role,
    RunStatus,
    StackStatus,
    StepStatus,
)
from deployments.clients.ssh.errors import SSHError
from deployments.models import Deployment, Membership, Service, StepRun
from deployments.pipelines import error_text
from deployments.stacks.services import record_services
from testkit.browser import log_in
from testkit.factories import (
    add_member,
    make_deployment,
    make_run,
    make_server,
    make_stack,
    make_team,
    make_user,
)

pytestmark = [pytest.mark.slow, pytest.mark.engine_agnostic]

DANGER = re.compile(r"\bdanger\b")
FILES = {"docker-compose.yml": "services:\n  fastgpt: {}\n"}


@pytest.fixture
def alpha(transactional_db):
    return make_team("Alpha")


def sign_in(page, live_server, team, username="op-otto", role=Role.OPERATOR):
    user = add_member(team, make_user(username), role=role)
    log_in(page, live_server.url, username, user.raw_password)
    return user


def running_stack(team, **fields):
    stack = make_stack(
        make_server(team, name="gpu-1", host="203.0.113.7"),
        name="chatbot",
        status=StackStatus.RUNNING,
        rendered_files=FILES,
        **fields,
    )
    make_deployment(stack)
    return stack


def colour(locator) -> str:
    return locator.evaluate("element => getComputedStyle(element).color")


def test_add_a_stack_without_a_server_names_the_next_step_with_a_link(live_server, alpha, page):
    sign_in(page, live_server, alpha)
    page.goto(f"{live_server.url}/stacks/new/")
    expect(page.get_by_text("your teams have no server yet")).to_be_visible()
    expect(page.locator("main select")).to_have_count(0)
    page.get_by_role("link", name="Add a server", exact=True).click()
    page.wait_for_url(f"{live_server.url}/servers/new/")


def test_destructive_actions_look_dangerous_and_apply_only_where_they_can(live_server, alpha, page):
    sign_in(page, live_server, alpha)
    fresh = make_stack(make_server(alpha, name="gpu-2"), name="fresh")
    page.goto(f"{live_server.url}/stacks/{fresh.pk}/")
    actions = page.locator(".heading")
    expect(actions.get_by_role("button", name="Deploy", exact=True)).to_be_visible()
    expect(actions.get_by_role("link", name="Tear down")).to_have_count(0)

    stack = running_stack(alpha)
    page.goto(f"{live_server.url}/stacks/{stack.pk}/")
    deploy = actions.get_by_role("button", name="Deploy", exact=True)
    teardown = actions.get_by_role("link", name="Tear down")
    expect(teardown).to_have_class(DANGER)
    assert colour(teardown) != colour(deploy)

    make_deployment(stack, action=DeploymentAction.TEARDOWN)
    stack.status = StackStatus.TORN_DOWN
    stack.save()
    page.reload()
    expect(deploy).to_be_visible()
    delete_data = actions.get_by_role("link", name="Delete data")
    expect(delete_data).to_have_class(DANGER)
    assert colour(delete_data) != colour(deploy)
    expect(actions.get_by_role("link", name="Tear down")).to_have_count(0)
    expect(actions.get_by_role("link", name="Upgrade")).to_have_count(0)


def test_remove_member_asks_first_and_cancel_removes_nobody(live_server, alpha, page):
    sign_in(page, live_server, alpha, username="owner-olga", role=Role.OWNER)
    add_member(alpha, make_user("op-otto"))
    page.goto(f"{live_server.url}/teams/{alpha.pk}/")
    page.get_by_role("link", name="Remove op-otto").click()
    expect(page.get_by_role("heading", name="Remove op-otto from team Alpha?")).to_be_visible()
    expect(page.get_by_role("button", name="Remove")).to_have_class(DANGER)
    assert Membership.objects.filter(team=alpha, user__username="op-otto").exists()

    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(f"{live_server.url}/teams/{alpha.pk}/")
    expect(page.get_by_role("link", name="Remove op-otto")).to_be_visible()
    assert Membership.objects.filter(team=alpha).count() == 2


def test_the_upgrade_page_says_the_running_line_is_current_and_offers_no_apply(
    live_server, alpha, page
):
    sign_in(page, live_server, alpha)
    stack = running_stack(alpha)
    page.goto(f"{live_server.url}/stacks/{stack.pk}/upgrade/")
    page.get_by_label("Version line").select_option(stack.version_line)
    page.get_by_role("button", name="Show the changes").click()
    expect(page.locator("#already-current")).to_contain_text(
        f"The stack is on {stack.version_line} already"
    )
    expect(page.get_by_role("button", name="Apply the upgrade")).to_have_count(0)


def docker_container(name: str, ports: dict) -> dict:
    """A container as `docker inspect` describes it, trimmed to what the panel reads."""
    return {
        "Name": f"/chatbot-{name}-1",
        "Config": {"Image": f"{name}:1", "Labels": {"com.docker.compose.service": name}},
        "State": {"Status": "running", "Health": {"Status": "healthy"}},
        "NetworkSettings": {"Ports": ports},
        "RestartCount": 0,
    }


def test_the_stack_page_lists_each_published_port_once(live_server, alpha, page):
    sign_in(page, live_server, alpha)
    stack = running_stack(alpha)
    # Docker reports a port published on every address twice: IPv4 and IPv6.
    both = [{"HostIp": "0.0.0.0", "HostPort": "3100"}, {"HostIp": "::", "HostPort": "3100"}]  # noqa: S104
    record_services(stack, [docker_container("fastgpt", {"3000/tcp": both})])
    # A row recorded before the fix, with both bindings, until the next refresh.
    Service.objects.create(stack=stack, name="oneapi", ports=["3101->3000/tcp"] * 2)
    page.goto(f"{live_server.url}/stacks/{stack.pk}/")
    expect(page.locator("td", has_text="3100->3000/tcp")).to_have_text("3100->3000/tcp")
    expect(page.locator("td", has_text="3101->3000/tcp")).to_have_text("3101->3000/tcp")


def test_the_audit_tables_times_stay_on_one_line_at_desktop_width(live_server, alpha, page):
    sign_in(page, live_server, alpha, username="owner-olga", role=Role.OWNER)
    server = make_server(alpha, name="gpu-with-a-rather-long-name-for-a-server")
    details = {f"setting_{n}": "a rather long value that takes room" for n in range(8)}
    audit.record("server.update", actor=make_user("olga"), target=server, details=details)
    page.goto(f"{live_server.url}/audit/")
    row = page.locator("table.audit-table tbody tr", has_text="gpu-with-a-rather").first
    expect(row.locator("time")).to_be_visible()
    # The time's height against that of the one-word "Who" cell's text in the same row.
    time_height, word_height = row.evaluate(
        """row => {
            const range = document.createRange();
            range.selectNodeContents(row.cells[1]);
            return [row.querySelector("time").getBoundingClientRect().height,
                    range.getBoundingClientRect().height];
        }"""
    )
    assert 0 < time_height < 1.5 * word_height, (time_height, word_height)


def test_a_failed_run_shows_its_human_title_and_the_error_in_words(live_server, alpha, page):
    sign_in(page, live_server, alpha)
    stack = make_stack(make_server(alpha, name="gpu-1"), name="chatbot")
    now = timezone.now()
    # The step's error as the runner stores it: described, not the exception's repr.
    error = error_text.describe(SSHError("docker compose up exited with 1.", kind="command"))
    run = make_run(
        alpha,
        status=RunStatus.FAILED,
        kind=PipelineKind.STACK_DEPLOY,
        params={"stack_id": stack.pk, "server_id": stack.server_id},
        error=f"Step 'start services' failed: {error}",
        started_at=now,
        finished_at=now,
    )
    Deployment.objects.create(team=alpha, stack=stack, run=run, action=DeploymentAction.DEPLOY)
    StepRun.objects.create(
        run=run,
        index=0,
        name="start services",
        status=StepStatus.FAILED,
        error=error,
        started_at=now,
        finished_at=now,
    )
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Deploy stack chatbot on gpu-1")
    expect(page.locator("pre.error").first).to_contain_text(
        "A command on the server failed: docker compose up exited with 1."
    )
    main = page.locator("main").inner_text()
    assert "SSHError" not in main
    assert "stack.deploy" not in main and "stack_deploy" not in main
