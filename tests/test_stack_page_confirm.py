"""Destructive actions look so (the danger class, an icon) and ask first: "Restart all" on the
stack page and "Remove" on the team page lead to a page that asks, served without script."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from deployments.choices import DeploymentAction, Role, StackStatus
from deployments.models import Deployment, Membership
from testkit.factories import add_member, make_deployment, make_server, make_stack

FILES = {"docker-compose.yml": "services:\n  fastgpt: {}\n"}


@pytest.fixture
def running(team):
    stack = make_stack(make_server(team), status=StackStatus.RUNNING, rendered_files=FILES)
    make_deployment(stack)
    return stack


def test_restart_all_on_the_stack_page_is_a_link_to_a_question_not_a_form(
    client, running, operator
):
    client.force_login(operator)
    html = client.get(reverse("stack_detail", args=[running.pk])).content.decode()
    url = reverse("stack_restart", args=[running.pk])
    header = html.split('<div class="heading">', 1)[1].split("</div>", 1)[0]
    assert f'href="{url}"' in header
    assert f'action="{url}"' not in header


def test_the_restart_question_starts_nothing_and_its_button_restarts_all(client, running, operator):
    client.force_login(operator)
    url = reverse("stack_restart", args=[running.pk])
    before = Deployment.objects.count()
    question = client.get(url)
    html = question.content.decode()
    assert question.status_code == 200
    assert f"Restart every service of stack {running.name}?" in html
    assert f'<form method="post" action="{url}">' in html
    assert re.search(r'<button type="submit" class="danger">.*Restart all</button>', html, re.S)
    assert Deployment.objects.count() == before
    response = client.post(url)
    restart = Deployment.objects.get(action=DeploymentAction.RESTART)
    assert response.url == reverse("deployment_detail", args=[restart.pk])
    assert restart.run.params["service"] == ""


def test_viewers_get_no_restart_question(client, running, viewer):
    client.force_login(viewer)
    assert client.get(reverse("stack_restart", args=[running.pk])).status_code == 403


def test_teardown_is_styled_as_danger_with_an_icon(client, running, operator):
    client.force_login(operator)
    html = client.get(reverse("stack_detail", args=[running.pk])).content.decode()
    link = re.search(r'<a class="button danger" href="[^"]*teardown/">(.*?)</a>', html, re.S)
    assert link and "<svg" in link.group(1) and "Tear down" in link.group(1)
    page = client.get(reverse("stack_teardown", args=[running.pk])).content.decode()
    assert re.search(r'<button type="submit" class="danger"><svg.*Tear down', page, re.S)


def test_the_danger_class_is_styled_for_links_and_buttons():
    with open(finders.find("css/app.css")) as css:
        text = css.read()
    assert re.search(r"a\.button\.danger[^{]*\{[^}]*color: var\(--bad\)", text)


def test_remove_on_the_team_page_leads_to_a_question(client, team, owner):
    member = add_member(team, role=Role.OPERATOR)
    membership = Membership.objects.get(team=team, user=member)
    client.force_login(owner)
    url = reverse("team_member_remove", args=[team.pk, membership.pk])
    html = client.get(reverse("team_detail", args=[team.pk])).content.decode()
    assert f'<a class="button danger" href="{url}">' in html
    assert f'action="{url}"' not in html

    question = client.get(url).content.decode()
    assert f"Remove {member.username} from team {team.name}?" in question
    assert f'<form method="post" action="{url}">' in question
    assert Membership.objects.filter(pk=membership.pk).exists()

    client.post(url)
    assert not Membership.objects.filter(pk=membership.pk).exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_only_owners_get_the_remove_question(client, team, owner, role):
    user = add_member(team, role=role)
    membership = Membership.objects.get(team=team, user=owner)
    client.force_login(user)
    response = client.get(reverse("team_member_remove", args=[team.pk, membership.pk]))
    assert response.status_code == 403
