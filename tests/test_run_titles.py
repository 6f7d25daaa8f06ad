"""Runs are titled by what they did to what ("Prepare gpu-1"), never by their internal kind."""

import pytest

from deployments.choices import DeploymentAction, PipelineKind
from deployments.llm.presets import PRESETS
from deployments.models import Deployment, KnowledgeBase, ModelLaunch
from deployments.models.pipelines import RUN_TITLES, run_title
from testkit.factories import make_run, make_server, make_stack, make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def stack():
    return make_stack(make_server(make_team("Alpha"), name="gpu-1"), name="chatbot")


def _deploy_run(stack, action):
    run = make_run(stack.team, kind=PipelineKind.STACK_DEPLOY, params={"stack_id": stack.pk})
    Deployment.objects.create(team=stack.team, stack=stack, run=run, action=action)
    return run


def test_every_pipeline_kind_has_a_title():
    titled = {key[0] if isinstance(key, tuple) else key for key in RUN_TITLES}
    assert titled == set(PipelineKind.values)


def test_preparing_a_server_is_titled_with_the_server():
    team = make_team()
    server = make_server(team, name="gpu-1")
    run = make_run(team, kind=PipelineKind.SERVER_PREPARE, params={"server_id": server.pk})
    assert run.title == "Prepare gpu-1"


@pytest.mark.parametrize(
    ("action", "title"),
    [
        (DeploymentAction.DEPLOY, "Deploy stack chatbot on gpu-1"),
        (DeploymentAction.UPGRADE, "Upgrade stack chatbot on gpu-1"),
        (DeploymentAction.ROLLBACK, "Roll back stack chatbot on gpu-1"),
    ],
)
def test_a_deploy_is_titled_by_its_action_stack_and_server(stack, action, title):
    assert _deploy_run(stack, action).title == title


def test_restart_and_teardown_name_the_stack_and_a_restarted_service(stack):
    params = {"stack_id": stack.pk}
    all_of_it = make_run(stack.team, kind=PipelineKind.STACK_RESTART, params=params)
    one = make_run(
        stack.team, kind=PipelineKind.STACK_RESTART, params={**params, "service": "fastgpt"}
    )
    teardown = make_run(stack.team, kind=PipelineKind.STACK_TEARDOWN, params=params)
    assert all_of_it.title == "Restart stack chatbot on gpu-1"
    assert one.title == "Restart fastgpt of stack chatbot"
    assert teardown.title == "Tear down stack chatbot on gpu-1"


def test_a_model_launch_and_its_termination_name_the_model_and_the_stack(stack):
    config = PRESETS["qwen2-instruct-7b"].build(stack.team)
    config.save()
    launch = ModelLaunch.objects.create(team=stack.team, stack=stack, model_uid="qwen2", llm=config)
    params = {"launch_id": launch.pk, "stack_id": stack.pk}
    launched = make_run(stack.team, kind=PipelineKind.MODEL_LAUNCH, params=params)
    terminated = make_run(stack.team, kind=PipelineKind.MODEL_TERMINATE, params=params)
    assert launched.title == "Launch model qwen2 on chatbot"
    assert terminated.title == "Terminate model qwen2 on chatbot"


def test_imports_chatbots_and_providers_name_what_they_work_on(stack):
    base = KnowledgeBase.objects.create(
        team=stack.team, stack=stack, name="Handbook", embedding_model="m3e", agent_model="qwen"
    )
    imported = make_run(
        stack.team,
        kind=PipelineKind.DATASET_IMPORT,
        params={"knowledge_base_id": base.pk, "stack_id": stack.pk},
    )
    published = make_run(
        stack.team,
        kind=PipelineKind.CHATBOT_PUBLISH,
        params={"stack_id": stack.pk, "name": "Helpdesk"},
    )
    synced = make_run(stack.team, kind=PipelineKind.PROVIDERS_SYNC, params={"stack_id": stack.pk})
    assert imported.title == "Import documents into Handbook"
    assert published.title == "Publish chatbot Helpdesk on chatbot"
    assert synced.title == "Update remote model providers on chatbot"


def test_a_run_whose_object_is_gone_or_of_another_team_falls_back_to_its_kind(stack):
    other = make_run(
        make_team("Beta"), kind=PipelineKind.SERVER_PREPARE, params={"server_id": stack.server_id}
    )
    gone = make_run(stack.team, kind=PipelineKind.STACK_TEARDOWN, params={"stack_id": 99999})
    assert other.title == "Prepare server"
    assert gone.title == "Tear down stack"


def test_an_unknown_kind_is_titled_as_stored():
    assert run_title("no.such.kind", {"server": "gpu-1"}) == "no.such.kind"
