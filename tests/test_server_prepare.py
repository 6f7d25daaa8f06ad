"""Preparing a server for real: the prepare pipeline against the SSH target container."""

import pytest

from deployments.actions.servers import do_prepare_server
from deployments.choices import RunStatus, StepStatus
from deployments.models import Server
from deployments.pipelines import runner
from testkit.factories import make_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER = "test-worker:1"


def target_server(team, target, user="root") -> Server:
    return make_server(
        team,
        host=target.host,
        ssh_port=target.port,
        ssh_user=user,
        ssh_private_key=target.key.private_openssh,
    )


def prepare(server, user):
    run = do_prepare_server(server, user=user)
    runner.run(run.pk, WORKER)
    run.refresh_from_db()
    return run


def step_summary(run) -> list[tuple[str, str]]:
    return [(step.name, step.status) for step in run.steps.order_by("index", "attempt")]


def test_preparing_a_server_without_docker_installs_it_and_checks_again(ssh_target, team, operator):
    ssh_target.exec(["apt-get", "remove", "-y", "-q", "docker.io"])
    assert ssh_target.exec(["sh", "-c", "command -v docker"], check=False).returncode != 0
    server = target_server(team, ssh_target)

    run = prepare(server, operator)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [status for _, status in step_summary(run)] == [StepStatus.SUCCEEDED] * 6
    install = run.steps.get(name="install docker engine")
    assert "apt-get install" in install.output and "docker.io" in install.output
    assert ssh_target.exec(["sh", "-c", "command -v docker"]).returncode == 0
    server.refresh_from_db()
    assert server.facts["docker"]["server_version"]
    nvidia = run.steps.get(name="install nvidia container toolkit")
    assert "No NVIDIA GPU" in nvidia.output


def test_preparing_again_changes_nothing(ssh_target, team, operator):
    server = target_server(team, ssh_target)
    run = prepare(server, operator)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "nothing to do" in run.steps.get(name="install docker engine").output
    assert "nothing to do" in run.steps.get(name="install compose").output
    assert "no restart" in run.steps.get(name="restart docker").output


def test_a_user_whose_sudo_needs_a_password_gets_told_how_to_fix_it(ssh_target, team, operator):
    ssh_target.authorize_key("limited", ssh_target.key.public_openssh)
    server = target_server(team, ssh_target, user="limited")

    run = prepare(server, operator)

    assert run.status == RunStatus.FAILED
    assert step_summary(run) == [("connect", StepStatus.FAILED)]
    assert "needs a password for sudo" in run.error
    assert "sudoers" in run.error


def test_a_deploy_user_with_passwordless_sudo_can_prepare(ssh_target, team, operator):
    server = target_server(team, ssh_target, user="deploy")
    run = prepare(server, operator)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "Connected as deploy" in run.steps.get(name="connect").output
