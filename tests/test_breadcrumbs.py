"""Breadcrumbs on the detail pages: each says where the page is and links the way back up."""

import re
from html import unescape

import pytest
from django.urls import reverse

from deployments.choices import DeploymentAction, LaunchStatus, PipelineKind, Role
from deployments.models import KnowledgeBase, LLMModelConfig, Membership, ModelLaunch, Service
from testkit.factories import add_member, make_deployment, make_run, make_server, make_stack

TRAIL = re.compile(r'<nav class="breadcrumbs" aria-label="Breadcrumb"><ol>(.*?)</ol></nav>', re.S)
CRUMB = re.compile(r'<li( aria-current="page")?>(?:<a href="([^"]*)">)?(.*?)(?:</a>)?</li>', re.S)


def trail(client, url: str) -> list[tuple[str, str | None]]:
    """The page's breadcrumbs: (text, link) each, the current page's link None."""
    response = client.get(url)
    assert response.status_code == 200, url
    found = TRAIL.search(response.content.decode())
    assert found, f"no breadcrumbs on {url}"
    crumbs = []
    for current, href, text in CRUMB.findall(found.group(1)):
        text = unescape(" ".join(text.split()))
        assert bool(current) == (not href), f"{url}: {text!r} is current and a link, or neither"
        crumbs.append((text, unescape(href) if href else None))
    return crumbs


@pytest.fixture
def stack(team):
    return make_stack(make_server(team, name="gpu-1"), name="chatbot")


@pytest.fixture
def stack_home(stack):
    return [
        ("Stacks", reverse("stack_list")),
        ("chatbot", reverse("stack_detail", args=[stack.pk])),
    ]


def test_server_pages_lead_back_to_the_servers(client, team, operator):
    server = make_server(team, name="gpu-1")
    client.force_login(operator)
    servers = ("Servers", reverse("server_list"))
    assert trail(client, reverse("server_detail", args=[server.pk])) == [servers, ("gpu-1", None)]
    assert trail(client, reverse("server_edit", args=[server.pk])) == [
        servers,
        ("gpu-1", reverse("server_detail", args=[server.pk])),
        ("Edit", None),
    ]
    assert trail(client, reverse("server_create")) == [servers, ("Add a server", None)]


def test_stack_page_and_its_confirmations_lead_back_to_the_stack(
    client, stack, stack_home, operator
):
    make_deployment(stack, user=operator, rendered_files={})
    stack.rendered_files = {"docker-compose.yml": "services: {}\n"}
    stack.save(update_fields=["rendered_files"])
    client.force_login(operator)
    assert trail(client, reverse("stack_detail", args=[stack.pk])) == [
        ("Stacks", reverse("stack_list")),
        ("chatbot", None),
    ]
    for name, last in [
        ("stack_upgrade", "Upgrade"),
        ("stack_restart", "Restart all"),
        ("stack_teardown", "Tear down"),
    ]:
        assert trail(client, reverse(name, args=[stack.pk])) == [*stack_home, (last, None)]


def test_deployment_page_leads_back_to_its_stack(client, stack, stack_home, operator):
    deployment = make_deployment(stack, user=operator, action=DeploymentAction.UPGRADE)
    client.force_login(operator)
    assert trail(client, reverse("deployment_detail", args=[deployment.pk])) == [
        *stack_home,
        (f"Upgrade #{deployment.pk}", None),
    ]


def test_log_pages_lead_back_to_their_stack(client, stack, stack_home, operator):
    service = Service.objects.create(stack=stack, name="fastgpt", container_name="chatbot-fastgpt")
    client.force_login(operator)
    assert trail(client, reverse("stack_logs", args=[stack.pk])) == [*stack_home, ("Logs", None)]
    assert trail(client, reverse("stack_service_logs", args=[service.pk])) == [
        *stack_home,
        ("Logs of fastgpt", None),
    ]


def test_launch_page_and_its_run_lead_back_to_the_stack(client, team, stack, stack_home, operator):
    config = LLMModelConfig.objects.create(
        team=team, model="qwen-chat", xinference_model_name="qwen2.5-instruct"
    )
    launch = ModelLaunch.objects.create(
        team=team, stack=stack, llm=config, model_uid="qwen-chat", status=LaunchStatus.READY
    )
    run = make_run(
        team, kind=PipelineKind.MODEL_LAUNCH, params={"launch_id": launch.pk, "stack_id": stack.pk}
    )
    client.force_login(operator)
    launch_url = reverse("model_launch_detail", args=[launch.pk])
    assert trail(client, launch_url) == [*stack_home, ("Launch of qwen-chat", None)]
    assert trail(client, reverse("run_detail", args=[run.pk])) == [
        *stack_home,
        ("Launch of qwen-chat", launch_url),
        (f"Run #{run.pk}", None),
    ]


def test_an_import_run_leads_back_through_its_knowledge_base(
    client, team, stack, stack_home, operator
):
    base = KnowledgeBase.objects.create(team=team, stack=stack, name="handbook")
    run = make_run(
        team,
        kind=PipelineKind.DATASET_IMPORT,
        params={"knowledge_base_id": base.pk, "stack_id": stack.pk},
    )
    client.force_login(operator)
    assert trail(client, reverse("run_detail", args=[run.pk])) == [
        *stack_home,
        ("Knowledge bases", reverse("knowledge_list", args=[stack.pk])),
        ("handbook", reverse("knowledge_detail", args=[base.pk])),
        (f"Run #{run.pk}", None),
    ]


def test_a_server_run_leads_back_to_its_server(client, team, operator):
    server = make_server(team, name="gpu-2")
    run = make_run(team, kind=PipelineKind.SERVER_PREPARE, params={"server_id": server.pk})
    client.force_login(operator)
    assert trail(client, reverse("run_detail", args=[run.pk])) == [
        ("Servers", reverse("server_list")),
        ("gpu-2", reverse("server_detail", args=[server.pk])),
        (f"Run #{run.pk}", None),
    ]


def test_a_run_never_names_another_teams_object(client, team, other_team, operator):
    theirs = make_server(other_team, name="beta-only")
    run = make_run(team, kind=PipelineKind.SERVER_PREPARE, params={"server_id": theirs.pk})
    client.force_login(operator)
    assert trail(client, reverse("run_detail", args=[run.pk])) == [(f"Run #{run.pk}", None)]


def test_team_pages_lead_back_to_the_teams(client, team, owner):
    member = add_member(team, role=Role.VIEWER)
    membership = Membership.objects.get(team=team, user=member)
    client.force_login(owner)
    teams = [("Dashboard", reverse("dashboard")), ("Teams", reverse("team_list"))]
    assert trail(client, reverse("team_detail", args=[team.pk])) == [*teams, (team.name, None)]
    remove_url = reverse("team_member_remove", args=[team.pk, membership.pk])
    assert trail(client, remove_url) == [
        *teams,
        (team.name, reverse("team_detail", args=[team.pk])),
        (f"Remove {member.username}", None),
    ]
