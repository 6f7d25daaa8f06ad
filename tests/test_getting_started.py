"""The dashboard's checklist follows the tutorial, read from the team's real objects."""

import pytest
from django.urls import reverse

from deployments.choices import LaunchStatus, PipelineKind, Role, RunStatus, StackStatus
from deployments.getting_started import checklist
from deployments.models import (
    ChatApp,
    KnowledgeBase,
    LLMModelConfig,
    ModelLaunch,
    ShareLink,
)
from testkit.factories import add_member, make_run, make_server, make_stack

ORDER = ["server", "prepare", "stack", "deploy", "models", "knowledge", "chatbot"]


def done_keys(user) -> list[str]:
    return [step.key for step in checklist(user).steps if step.done]


def launch_ready_model(stack):
    config = LLMModelConfig.objects.create(
        team=stack.team, model="qwen-chat", xinference_model_name="qwen2.5-instruct"
    )
    return ModelLaunch.objects.create(
        team=stack.team, stack=stack, llm=config, model_uid="qwen-chat", status=LaunchStatus.READY
    )


def test_the_steps_follow_the_tutorial_in_order(operator):
    assert [step.key for step in checklist(operator).steps] == ORDER


def test_a_new_team_starts_at_adding_a_server(operator):
    steps = checklist(operator)
    assert done_keys(operator) == []
    assert steps.next_step.key == "server"
    assert steps.next_step.url == reverse("server_create")
    assert not steps.complete


def test_an_added_server_makes_preparing_it_the_next_step(team, operator):
    server = make_server(team)
    steps = checklist(operator)
    assert done_keys(operator) == ["server"]
    assert steps.next_step.key == "prepare"
    assert steps.next_step.url == reverse("server_detail", args=[server.pk])


def test_a_failed_prepare_does_not_count(team, operator):
    server = make_server(team)
    make_run(
        team,
        status=RunStatus.FAILED,
        kind=PipelineKind.SERVER_PREPARE,
        params={"server_id": server.pk},
    )
    assert checklist(operator).next_step.key == "prepare"


def test_a_prepared_server_makes_creating_a_stack_next(team, operator):
    server = make_server(team)
    make_run(team, kind=PipelineKind.SERVER_PREPARE, params={"server_id": server.pk})
    steps = checklist(operator)
    assert done_keys(operator) == ["server", "prepare"]
    assert steps.next_step.url == reverse("stack_create")


def test_a_stack_not_deployed_yet_links_to_its_page(team, operator):
    stack = make_stack(make_server(team))
    steps = checklist(operator)
    # The stack shows the server was ready enough: the steps behind it count as done.
    assert done_keys(operator) == ["server", "prepare", "stack"]
    assert steps.next_step.key == "deploy"
    assert steps.next_step.url == reverse("stack_detail", args=[stack.pk])


def test_after_a_deploy_come_models_then_a_knowledge_base_then_a_chatbot(team, operator):
    stack = make_stack(make_server(team), status=StackStatus.RUNNING)
    assert checklist(operator).next_step.key == "models"
    assert checklist(operator).next_step.url == reverse("model_list")

    launch_ready_model(stack)
    steps = checklist(operator)
    assert steps.next_step.key == "knowledge"
    assert steps.next_step.url == reverse("knowledge_list", args=[stack.pk])

    base = KnowledgeBase.objects.create(
        team=team, stack=stack, name="manuals", embedding_model="m3e", agent_model="qwen"
    )
    steps = checklist(operator)
    assert steps.next_step.key == "chatbot"
    assert steps.next_step.url == reverse("chatbot_publish", args=[stack.pk])

    app = ChatApp.objects.create(team=team, stack=stack, name="bot", chat_model="qwen")
    app.knowledge_bases.add(base)
    ShareLink.objects.create(app=app, name="public")
    steps = checklist(operator)
    assert steps.complete
    assert steps.next_step is None
    assert steps.done_count == len(ORDER)


def test_a_launch_not_ready_is_not_done(team, operator):
    stack = make_stack(make_server(team), status=StackStatus.RUNNING)
    launch = launch_ready_model(stack)
    launch.status = LaunchStatus.FAILED
    launch.save(update_fields=["status"])
    assert checklist(operator).next_step.key == "models"


def test_another_teams_progress_does_not_count(team, other_team, operator):
    stack = make_stack(make_server(other_team), status=StackStatus.RUNNING)
    launch_ready_model(stack)
    assert done_keys(operator) == []


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.OWNER])
def test_the_teams_where_the_user_can_act_count(team, role):
    user = add_member(team, role=role)
    make_server(team)
    assert done_keys(user) == ["server"]


def test_a_viewer_has_nothing_to_do(team, viewer):
    make_server(team)
    assert done_keys(viewer) == []
