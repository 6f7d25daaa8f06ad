"""The deploy pipeline's first steps against the real SSH target: files, modes, named failures."""

import pytest

from deployments.actions import ActionError
from deployments.actions.stacks import do_deploy_stack, do_teardown_stack
from deployments.choices import Registry, RunStatus, StackStatus, StepStatus
from deployments.models import Deployment
from deployments.pipelines import runner
from deployments.stacks.secrets import stack_secrets
from testkit.factories import make_server, make_stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER = "test-worker:1"


@pytest.fixture
def stack(ssh_target, team, tmp_path):
    server = make_server(
        team,
        host=ssh_target.host,
        ssh_port=ssh_target.port,
        ssh_private_key=ssh_target.key.private_openssh,
    )
    data_dir = tmp_path / "stack"
    # An image no registry has: the pull step must name it and suggest another registry.
    return make_stack(
        server,
        data_dir=str(data_dir),
        registry=Registry.CUSTOM,
        registry_prefix="127.0.0.1:9/nowhere",
    )


def deploy(stack, user) -> Deployment:
    deployment = do_deploy_stack(stack, user=user)
    runner.run(deployment.run_id, WORKER)
    deployment.refresh_from_db()
    deployment.run.refresh_from_db()
    return deployment


def test_the_files_are_written_with_secrets_private_and_a_failed_pull_names_the_image(
    ssh_target, stack, operator
):
    deployment = deploy(stack, operator)

    run = deployment.run
    assert run.status == RunStatus.FAILED
    statuses = {step.name: step.status for step in run.steps.all()}
    assert statuses == {
        "check server": StepStatus.SUCCEEDED,
        "render files": StepStatus.SUCCEEDED,
        "upload files": StepStatus.SUCCEEDED,
        "pull images": StepStatus.FAILED,
    }
    assert "Pulling 127.0.0.1:9/nowhere/" in run.error
    assert "choose another one" in run.error
    listing = ssh_target.exec(["ls", "-la", stack.data_dir]).stdout.decode()
    assert "docker-compose.yml" in listing and "config.json" in listing
    env_mode = ssh_target.exec(["stat", "-c", "%a", f"{stack.data_dir}/.env"]).stdout.decode()
    assert env_mode.strip() == "600"
    remote_env = ssh_target.exec(["cat", f"{stack.data_dir}/.env"]).stdout.decode()
    assert stack_secrets(stack)["PG_PASSWORD"] in remote_env
    # What the team sees: the diff and files, secrets masked.
    assert "+PG_PASSWORD=********" in deployment.files_diff
    assert stack_secrets(stack)["PG_PASSWORD"] not in deployment.files_diff
    assert "docker-compose.yml" in deployment.rendered_files
    output = "\n".join(step.output for step in run.steps.all())
    assert stack_secrets(stack)["PG_PASSWORD"] not in output


def test_a_second_action_is_refused_while_one_is_under_way(stack, operator):
    first = do_deploy_stack(stack, user=operator)
    assert stack.active_deployment() == first
    with pytest.raises(ActionError, match="under way"):
        do_deploy_stack(stack, user=operator)
    with pytest.raises(ActionError, match="under way"):
        do_teardown_stack(stack, user=operator)
    assert Deployment.objects.count() == 1
    stack.refresh_from_db()
    # "Deploying" comes from the run, so a run that ends (or is reaped) cannot leave it.
    assert stack.status == StackStatus.DRAFT


def test_a_server_without_docker_is_sent_to_prepare_first(ssh_target, stack, operator):
    ssh_target.exec(["apt-get", "remove", "-y", "-q", "docker.io"])
    deployment = deploy(stack, operator)
    assert deployment.run.status == RunStatus.FAILED
    assert "Prepare server" in deployment.run.error
