"""Restart, upgrade, roll back and tear down: what each action checks before it starts a run,
and the pages that lead to them. The runs themselves are tested for real in
test_stack_lifecycle_real.py."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from deployments.actions import ActionError
from deployments.actions.stacks import (
    do_deploy_stack,
    do_restart_stack,
    do_rollback_stack,
    do_teardown_stack,
    do_upgrade_stack,
)
from deployments.choices import DeploymentAction, Registry, RunStatus, StackStatus
from deployments.models import AuditEvent, Deployment
from deployments.pipelines.stack_teardown import data_paths
from deployments.stacks import versions
from deployments.stacks.files import stack_files
from deployments.stacks.render import COMPOSE_FILE, ENV_FILE, render
from deployments.stacks.secrets import stack_secrets
from testkit.factories import make_deployment, make_server, make_stack

pytestmark = pytest.mark.django_db


@pytest.fixture
def stack(team):
    return make_stack(make_server(team), data_dir="/srv/llm")


@pytest.fixture
def running(stack):
    """A stack whose deploy succeeded, as far as its status says (no deployment recorded)."""
    stack.status = StackStatus.RUNNING
    stack.save()
    return stack


@pytest.fixture
def deployed(stack, operator):
    """A stack with one successful deployment whose files it runs."""
    files = render(stack, stack_secrets(stack)).shown()
    deployment = make_deployment(
        stack,
        user=operator,
        rendered_files=files,
        version_line=stack.version_line,
        stack_settings=stack.settings_snapshot(),
    )
    stack.rendered_files = files
    stack.save()
    return deployment


@pytest.fixture
def second_line(monkeypatch):
    """Another version line, as a newer release would add: One API moves on."""
    line = versions.LINES[versions.DEFAULT_LINE]
    images = {**line.images, "oneapi": versions.Image("one-api", "v0.6.8", docker_hub="x/one-api")}
    newer = versions.VersionLine(key="next", label="Next line", images=images)
    monkeypatch.setitem(versions.LINES, "next", newer)
    return newer


def test_an_upgrade_moves_the_version_line_and_deploys(stack, operator, second_line):
    deployment = do_upgrade_stack(stack, version_line="next", user=operator)
    stack.refresh_from_db()
    assert stack.version_line == "next"
    assert deployment.action == DeploymentAction.UPGRADE
    assert deployment.run.kind == "stack.deploy"
    event = AuditEvent.objects.get(action="stack.upgrade")
    assert event.details["from"] == versions.DEFAULT_LINE and event.details["to"] == "next"


def test_an_unknown_version_line_is_refused_and_nothing_changes(stack, operator):
    with pytest.raises(ValidationError, match="Unknown version line"):
        do_upgrade_stack(stack, version_line="nope", user=operator)
    stack.refresh_from_db()
    assert stack.version_line == versions.DEFAULT_LINE
    assert not Deployment.objects.exists()


@pytest.mark.parametrize(
    "action",
    [
        lambda stack, user: do_upgrade_stack(stack, version_line="next", user=user),
        lambda stack, user: do_restart_stack(stack, user=user),
        lambda stack, user: do_teardown_stack(stack, user=user),
    ],
)
def test_viewers_cannot_act_on_a_stack(deployed, viewer, action, second_line):
    with pytest.raises(PermissionDenied):
        action(deployed.stack, viewer)
    assert Deployment.objects.count() == 1


def test_deleting_data_needs_the_stack_name_typed(running, operator):
    stack = running
    with pytest.raises(ValidationError, match="Type the stack's name"):
        do_teardown_stack(stack, delete_data=True, confirm_name="wrong", user=operator)
    assert not Deployment.objects.exists()
    deployment = do_teardown_stack(stack, delete_data=True, confirm_name=stack.name, user=operator)
    assert deployment.run.params["delete_data"] is True


def test_a_teardown_keeps_data_unless_asked(running, operator):
    deployment = do_teardown_stack(running, user=operator)
    assert deployment.run.params == {"stack_id": running.pk, "delete_data": False}


def test_a_restart_needs_a_deployed_stack_and_a_known_service(stack, deployed, operator):
    with pytest.raises(ActionError, match="no service “nginx”"):
        do_restart_stack(stack, service="nginx", user=operator)
    deployment = do_restart_stack(stack, service="oneapi", user=operator)
    assert deployment.run.params["service"] == "oneapi"
    assert deployment.run.kind == "stack.restart"


def test_a_stack_never_deployed_cannot_be_restarted(stack, operator):
    with pytest.raises(ActionError, match="not been deployed"):
        do_restart_stack(stack, user=operator)


def test_a_rollback_restores_the_settings_and_writes_the_old_files(
    stack, deployed, operator, second_line
):
    stack.version_line, stack.registry, stack.registry_prefix = "next", Registry.CUSTOM, "r:5000/m"
    stack.save()
    deployment = do_rollback_stack(stack, to=deployed, user=operator)
    stack.refresh_from_db()
    assert (stack.version_line, stack.registry) == (versions.DEFAULT_LINE, Registry.DOCKER_HUB)
    assert deployment.run.params["files_from"] == deployed.pk
    files = stack_files(stack).files
    assert files[COMPOSE_FILE] == deployed.rendered_files[COMPOSE_FILE]
    # What was recorded carries masked secrets; the .env written is the real one.
    assert stack_secrets(stack)["PG_PASSWORD"] in files[ENV_FILE]
    assert "********" not in files[ENV_FILE]


def test_only_succeeded_deployments_of_the_same_stack_can_be_rolled_back_to(
    stack, deployed, operator, team
):
    failed = make_deployment(stack, status=RunStatus.FAILED, rendered_files={"a": "b"})
    other = make_deployment(make_stack(stack.server), rendered_files={"a": "b"})
    for target in (failed, other):
        with pytest.raises(ActionError, match="Only an earlier successful"):
            do_rollback_stack(stack, to=target, user=operator)


def test_teardown_deletes_only_the_stacks_own_folders_and_files(deployed):
    paths = data_paths(deployed.stack)
    assert "/srv/llm" not in paths
    assert all(path.startswith("/srv/llm/") for path in paths)
    assert {"/srv/llm/pg", "/srv/llm/mongo", "/srv/llm/mysql", "/srv/llm/docker-compose.yml"} <= (
        set(paths)
    )
    assert "/srv/llm/docker-compose.override.yml" not in paths


# Pages ----------------------------------------------------------------------------------


def test_the_upgrade_page_shows_the_diff_before_anything_is_applied(
    client, deployed, operator, second_line
):
    client.force_login(operator)
    url = reverse("stack_upgrade", args=[deployed.stack.pk])
    page = client.get(url, {"version_line": "next"}).content.decode()
    assert f"Now: <strong>{versions.DEFAULT_LINE}</strong>" in page
    assert '<span class="del">-    image: justsong/one-api:v0.6.7</span>' in page
    assert '<span class="add">+    image: x/one-api:v0.6.8</span>' in page
    assert Deployment.objects.count() == 1
    response = client.post(url, {"version_line": "next"})
    upgrade = Deployment.objects.get(action=DeploymentAction.UPGRADE)
    assert response.url == reverse("deployment_detail", args=[upgrade.pk])


def test_the_teardown_page_names_the_missing_confirmation(client, running, operator):
    stack = running
    client.force_login(operator)
    response = client.post(
        reverse("stack_teardown", args=[stack.pk]), {"delete_data": "on", "confirm_name": "x"}
    )
    assert response.status_code == 200
    assert f"Type the stack&#x27;s name, “{stack.name}”" in response.content.decode()
    assert not Deployment.objects.exists()


def test_a_second_action_while_one_runs_is_explained_on_the_stack_page(client, deployed, operator):
    client.force_login(operator)
    do_restart_stack(deployed.stack, user=operator)
    response = client.post(reverse("stack_restart", args=[deployed.stack.pk]), follow=True)
    page = response.content.decode()
    assert "Another action on this stack is under way" in page
    assert "Restart under way" in page


def test_a_deploy_waits_for_a_model_launch_on_the_stack(stack, operator):
    from deployments.actions.launches import do_cancel_launch, do_launch_model
    from deployments.choices import StackStatus
    from deployments.llm.presets import PRESETS

    stack.status = StackStatus.RUNNING
    stack.save()
    config = PRESETS["m3e-base"].build(stack.team)
    config.save()
    launch = do_launch_model(config, stack=stack, user=operator)
    with pytest.raises(ActionError, match="A model is being launched or terminated"):
        do_deploy_stack(stack, user=operator)
    assert not Deployment.objects.exists()
    do_cancel_launch(launch, user=operator)
    assert do_deploy_stack(stack, user=operator).run.status == RunStatus.QUEUED


def test_the_rollback_button_shows_only_on_earlier_deployments_that_can_be_rolled_back_to(
    client, stack, deployed, operator
):
    client.force_login(operator)
    failed = make_deployment(stack, status=RunStatus.FAILED)
    current = make_deployment(stack, rendered_files=deployed.rendered_files)
    good = client.get(reverse("deployment_detail", args=[deployed.pk])).content.decode()
    bad = client.get(reverse("deployment_detail", args=[failed.pk])).content.decode()
    now = client.get(reverse("deployment_detail", args=[current.pk])).content.decode()
    assert "Roll back to these files" in good
    assert "Roll back to these files" not in bad
    # The stack runs the latest deploy's files already: nothing to roll back to.
    assert "Roll back to these files" not in now
    assert "What the stack runs now" in now


def test_refreshing_services_needs_the_operator_role(client, stack, viewer):
    client.force_login(viewer)
    response = client.post(reverse("stack_services", args=[stack.pk]))
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="stack.refresh_services").exists()


def test_refreshing_services_of_an_unreachable_server_says_why(client, team, operator):
    server = make_server(team, host="127.0.0.1", ssh_port=9)
    stack = make_stack(server)
    client.force_login(operator)
    response = client.post(
        reverse("stack_services", args=[stack.pk]), headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert f"Could not read the containers from {server.name}" in page
    assert '<section id="services"' in page


@pytest.fixture
def broker_down():
    """The Celery app pointed at a port nothing listens on, as when Redis is down."""
    from kombu import pools

    from controlpanel.celery import app

    def connect(url):
        # Connection and producer pools are cached per app and per URL: start them afresh.
        app.pool.force_close_all()
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None
        app.conf.broker_url = url

    working = app.conf.broker_url
    connect("redis://127.0.0.1:9/0")
    yield
    connect(working)


@pytest.mark.django_db(transaction=True)
def test_an_action_while_the_broker_is_down_keeps_its_run_queued_for_the_reaper(
    client, team, operator, broker_down
):
    stack = make_stack(make_server(team), status=StackStatus.RUNNING)
    client.force_login(operator)
    response = client.post(reverse("stack_teardown", args=[stack.pk]), {})
    deployment = Deployment.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("deployment_detail", args=[deployment.pk])
    deployment.run.refresh_from_db()
    assert deployment.run.status == RunStatus.QUEUED


@pytest.mark.parametrize("start", [do_deploy_stack, do_teardown_stack], ids=["deploy", "teardown"])
def test_a_deploy_or_teardown_waits_for_an_import_on_the_stacks_knowledge_base(
    running, operator, start
):
    stack = running
    from deployments.choices import PipelineKind
    from deployments.models import KnowledgeBase
    from testkit.factories import make_run

    base = KnowledgeBase.objects.create(
        team=stack.team, stack=stack, name="Handbook", embedding_model="m3e", agent_model="qwen"
    )
    # Imports queued before runs carried their stack id name only the knowledge base.
    run = make_run(
        stack.team,
        status=RunStatus.RUNNING,
        kind=PipelineKind.DATASET_IMPORT,
        params={"knowledge_base_id": base.pk},
    )
    with pytest.raises(ActionError, match="“Import documents” is under way on this stack"):
        start(stack, user=operator)
    assert not Deployment.objects.exists()
    run.status = RunStatus.SUCCEEDED
    run.save()
    assert start(stack, user=operator).run.status == RunStatus.QUEUED


def test_a_deploy_waits_for_a_chatbot_being_published_on_the_stack_only(stack, operator):
    from deployments.choices import PipelineKind
    from testkit.factories import make_run

    other = make_stack(stack.server, name="other", data_dir="/srv/other")
    make_run(
        stack.team,
        status=RunStatus.QUEUED,
        kind=PipelineKind.CHATBOT_PUBLISH,
        params={"stack_id": other.pk},
    )
    assert do_deploy_stack(stack, user=operator).run.status == RunStatus.QUEUED
    with pytest.raises(ActionError, match="“Publish a chatbot” is under way on this stack"):
        do_deploy_stack(other, user=operator)


def test_knowledge_work_waits_for_a_deploy_of_the_stack(stack, operator):
    from deployments.actions.knowledge import do_create_knowledge_base
    from deployments.choices import StackStatus

    stack.status = StackStatus.RUNNING
    stack.save()
    do_deploy_stack(stack, user=operator)
    with pytest.raises(ActionError, match="An action on stack “.*” is under way"):
        do_create_knowledge_base(
            stack,
            name="Handbook",
            intro="",
            embedding_model="m3e",
            agent_model="qwen",
            user=operator,
        )
