"""The stack page offers only the actions that apply, and the actions refuse the others: no
teardown of a stack never deployed; after a teardown, Deploy (and deleting the kept data) but
neither Tear down nor Upgrade; no upgrade to the line already running."""

import pytest
from django.urls import reverse

from deployments.actions import ActionError
from deployments.actions.stacks import (
    do_restart_stack,
    do_teardown_stack,
    do_upgrade_stack,
    offered_actions,
)
from deployments.choices import DeploymentAction, RunStatus, StackStatus
from deployments.models import AuditEvent, Deployment
from deployments.stacks import versions
from testkit.factories import make_deployment, make_server, make_stack

FILES = {"docker-compose.yml": "services:\n  fastgpt: {}\n"}


@pytest.fixture
def second_line(monkeypatch):
    line = versions.LINES[versions.DEFAULT_LINE]
    newer = versions.VersionLine(key="next", label="Next line", images=dict(line.images))
    monkeypatch.setitem(versions.LINES, "next", newer)
    return newer


@pytest.fixture
def fresh(team):
    """Created, never deployed."""
    return make_stack(make_server(team))


@pytest.fixture
def running(team):
    stack = make_stack(make_server(team), status=StackStatus.RUNNING, rendered_files=FILES)
    make_deployment(stack)
    return stack


@pytest.fixture
def torn_down(running):
    """Torn down with its data (and so its files) kept."""
    make_deployment(running, action=DeploymentAction.TEARDOWN)
    running.status = StackStatus.TORN_DOWN
    running.save()
    return running


def header_actions(client, user, stack) -> str:
    client.force_login(user)
    html = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
    return html.split('<div class="heading">', 1)[1].split("</div>", 1)[0]


def nothing_started(before: int) -> bool:
    return Deployment.objects.count() == before


def test_a_running_stack_offers_every_action(client, running, operator):
    header = header_actions(client, operator, running)
    for name in ("stack_deploy", "stack_restart", "stack_upgrade", "stack_teardown"):
        assert reverse(name, args=[running.pk]) in header, name


def test_a_stack_never_deployed_offers_no_teardown(client, fresh, operator):
    header = header_actions(client, operator, fresh)
    assert reverse("stack_deploy", args=[fresh.pk]) in header
    assert reverse("stack_teardown", args=[fresh.pk]) not in header
    assert "Tear down" not in header


def test_a_teardown_of_a_stack_never_deployed_is_refused_with_a_sentence(client, fresh, operator):
    client.force_login(operator)
    response = client.post(reverse("stack_teardown", args=[fresh.pk]), {}, follow=True)
    assert "This stack was never deployed: there is nothing to tear down." in (
        response.content.decode()
    )
    assert not Deployment.objects.exists()
    assert not AuditEvent.objects.filter(action="stack.teardown").exists()
    page = client.get(reverse("stack_teardown", args=[fresh.pk]), follow=True)
    assert page.redirect_chain[-1][0] == reverse("stack_detail", args=[fresh.pk])


def test_a_failed_first_deploy_still_offers_teardown(client, fresh, operator):
    # It may have started containers before it failed.
    make_deployment(fresh, status=RunStatus.FAILED)
    assert offered_actions(fresh).teardown
    assert reverse("stack_teardown", args=[fresh.pk]) in header_actions(client, operator, fresh)


def test_a_torn_down_stack_offers_deploy_but_neither_teardown_nor_upgrade(
    client, torn_down, operator
):
    header = header_actions(client, operator, torn_down)
    assert reverse("stack_deploy", args=[torn_down.pk]) in header
    assert reverse("stack_upgrade", args=[torn_down.pk]) not in header
    assert reverse("stack_restart", args=[torn_down.pk]) not in header
    assert "Tear down" not in header and "Upgrade" not in header
    # Its data was kept: deleting it is what is left.
    assert "Delete data" in header


def test_the_actions_refuse_a_torn_down_stack(torn_down, operator, second_line):
    before = Deployment.objects.count()
    with pytest.raises(ActionError, match="torn down already"):
        do_teardown_stack(torn_down, user=operator)
    with pytest.raises(ActionError, match="torn down: deploy it first, then upgrade"):
        do_upgrade_stack(torn_down, version_line="next", user=operator)
    with pytest.raises(ActionError, match="torn down: deploy it to start"):
        do_restart_stack(torn_down, user=operator)
    assert nothing_started(before)
    torn_down.refresh_from_db()
    assert torn_down.version_line == versions.DEFAULT_LINE


def test_posts_of_actions_that_do_not_apply_get_a_message_and_start_nothing(
    client, torn_down, operator, second_line
):
    client.force_login(operator)
    before = Deployment.objects.count()
    for name, data, sentence in [
        ("stack_teardown", {}, "torn down already"),
        ("stack_upgrade", {"version_line": "next"}, "torn down: deploy it first"),
        ("stack_restart", {}, "torn down: deploy it to start"),
    ]:
        response = client.post(reverse(name, args=[torn_down.pk]), data, follow=True)
        assert sentence in response.content.decode(), name
    assert nothing_started(before)


def test_the_kept_data_of_a_torn_down_stack_can_still_be_deleted(torn_down, operator):
    deployment = do_teardown_stack(
        torn_down, delete_data=True, confirm_name=torn_down.name, user=operator
    )
    assert deployment.run.params["delete_data"] is True


def test_nothing_is_left_to_delete_once_the_data_went(torn_down, operator, client):
    torn_down.rendered_files = {}
    torn_down.save()
    assert not offered_actions(torn_down).delete_data
    with pytest.raises(ActionError, match="nothing is left to remove"):
        do_teardown_stack(torn_down, delete_data=True, confirm_name=torn_down.name, user=operator)


def test_a_deploy_after_a_teardown_makes_teardown_apply_again(torn_down, client, operator):
    # Deploying again leaves the status until it succeeds; its containers may run already.
    make_deployment(torn_down, status=RunStatus.FAILED)
    offers = offered_actions(torn_down)
    assert offers.teardown and offers.upgrade


def test_the_upgrade_page_says_the_running_line_is_current_and_offers_no_apply(
    client, running, operator
):
    client.force_login(operator)
    url = reverse("stack_upgrade", args=[running.pk])
    html = client.get(url, {"version_line": running.version_line}).content.decode()
    assert f"The stack is on {running.version_line} already" in html
    assert "Apply the upgrade" not in html
    assert 'method="post"' not in html.split("<main", 1)[1]


def test_applying_the_running_line_is_refused(client, running, operator):
    client.force_login(operator)
    before = Deployment.objects.count()
    response = client.post(
        reverse("stack_upgrade", args=[running.pk]), {"version_line": running.version_line}
    )
    assert response.status_code == 200
    assert "already: choose another version line" in response.content.decode()
    assert nothing_started(before)
    with pytest.raises(Exception, match="already: choose another version line"):
        do_upgrade_stack(running, version_line=running.version_line, user=operator)


def test_another_line_still_shows_its_diff_and_applies(client, running, operator, second_line):
    client.force_login(operator)
    url = reverse("stack_upgrade", args=[running.pk])
    assert "Apply the upgrade" in client.get(url, {"version_line": "next"}).content.decode()
    response = client.post(url, {"version_line": "next"})
    upgrade = Deployment.objects.get(action=DeploymentAction.UPGRADE)
    assert response.url == reverse("deployment_detail", args=[upgrade.pk])
