"""The dashboard leads with stacks and their health, runs under way and the last failures; login
rows stay on the Audit page; the getting-started checklist shows until every step is done."""

from django.urls import reverse

from deployments import audit
from deployments.choices import Health, PipelineKind, Role, RunStatus, StackStatus
from deployments.models import (
    ChatApp,
    KnowledgeBase,
    LLMModelConfig,
    ModelLaunch,
    Service,
    ShareLink,
)
from testkit.factories import add_member, make_run, make_server, make_stack, make_team


def dashboard(client, user):
    client.force_login(user)
    response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    return response


def test_stacks_show_with_their_health_those_in_trouble_first(client, team, viewer):
    server = make_server(team, name="gpu-a")
    calm = make_stack(server, name="calm", status=StackStatus.RUNNING)
    sick = make_stack(server, name="sick", status=StackStatus.DEGRADED)
    Service.objects.create(stack=calm, name="fastgpt", health=Health.HEALTHY)
    Service.objects.create(stack=sick, name="fastgpt", health=Health.HEALTHY)
    Service.objects.create(stack=sick, name="mongo", health=Health.UNHEALTHY)
    response = dashboard(client, viewer)
    assert [stack.name for stack in response.context["stacks"]] == ["sick", "calm"]
    html = response.content.decode()
    assert "1 of 2 services healthy" in html
    assert "1 of 1 services healthy" in html
    assert "Degraded" in html


def test_runs_under_way_and_the_last_failures_show_of_the_users_teams_only(
    client, team, other_team, viewer
):
    under_way = make_run(team, status=RunStatus.RUNNING, kind=PipelineKind.MODEL_LAUNCH)
    failed = make_run(
        team, status=RunStatus.FAILED, kind=PipelineKind.SERVER_PREPARE, error="No route to host"
    )
    make_run(team, status=RunStatus.SUCCEEDED, kind=PipelineKind.STACK_DEPLOY)
    foreign = make_run(
        other_team, status=RunStatus.FAILED, kind=PipelineKind.STACK_DEPLOY, error="beta-only"
    )
    response = dashboard(client, viewer)
    assert [run.pk for run in response.context["running"]] == [under_way.pk]
    assert [run.pk for run in response.context["failures"]] == [failed.pk]
    html = response.content.decode()
    assert reverse("run_detail", args=[under_way.pk]) in html
    assert "No route to host" in html
    assert "beta-only" not in html
    assert reverse("run_detail", args=[foreign.pk]) not in html


def test_login_rows_stay_on_the_audit_page(client, team, operator):
    audit.record("login", actor=operator)
    audit.record("logout", actor=operator)
    server = make_server(team, name="gpu-logged")
    audit.record("server.create", actor=operator, target=server)
    response = dashboard(client, operator)
    actions = [event.action for event in response.context["events"]]
    assert actions == ["server.create"]
    html = response.content.decode()
    assert "Logged in" not in html and "Logged out" not in html
    assert "Server added" in html
    audit_html = client.get(reverse("audit_list")).content.decode()
    assert "Logged in" in audit_html and "Logged out" in audit_html


def test_a_new_team_sees_the_checklist_with_adding_a_server_as_the_next_step(client, operator):
    html = dashboard(client, operator).content.decode()
    assert "Getting started" in html
    assert "0 of 7 done" in html
    assert f'class="button" href="{reverse("server_create")}"' in html
    assert "Next: Add a server" in html


def test_the_checklist_moves_on_as_the_team_does(client, team, operator):
    server = make_server(team, name="gpu-new")
    html = dashboard(client, operator).content.decode()
    assert "1 of 7 done" in html
    assert f'class="button" href="{reverse("server_detail", args=[server.pk])}"' in html


def test_the_checklist_is_gone_once_every_step_is_done(client, team, operator):
    stack = make_stack(make_server(team), status=StackStatus.RUNNING)
    config = LLMModelConfig.objects.create(team=team, model="chat", xinference_model_name="q")
    ModelLaunch.objects.create(team=team, stack=stack, llm=config, model_uid="chat", status="ready")
    KnowledgeBase.objects.create(
        team=team, stack=stack, name="kb", embedding_model="m3e", agent_model="q"
    )
    app = ChatApp.objects.create(team=team, stack=stack, name="bot", chat_model="chat")
    ShareLink.objects.create(app=app, name="public")
    response = dashboard(client, operator)
    assert response.context["checklist"] is None
    assert "Getting started" not in response.content.decode()


def test_a_viewer_is_not_shown_the_checklist(client, team, viewer):
    response = dashboard(client, viewer)
    assert response.context["checklist"] is None


def test_no_stack_names_the_next_step(client, team, operator):
    html = dashboard(client, operator).content.decode()
    assert "No stacks yet." in html
    assert "add a server first" in html
    make_server(team)
    html = dashboard(client, operator).content.decode()
    assert f'<a href="{reverse("stack_create")}">Add a stack</a>' in html


def test_the_stacks_of_other_teams_do_not_show(client, team, viewer):
    beta = make_team("Beta")
    make_stack(make_server(beta, name="gpu-beta"), name="beta-stack")
    add_member(beta, role=Role.OWNER)
    html = dashboard(client, viewer).content.decode()
    assert "beta-stack" not in html
