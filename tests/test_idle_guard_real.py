"""The idle guard's stop steps for real: a stack deployed on the SSH target, a model launched
in its real Xinference (MiniLM on the CPU). "Stop the models" terminates it there, "Stop the
stacks" stops the stack's containers (docker ps on the target says so), the power-off sends
`shutdown -h now` over the real SSH session, where a stand-in `shutdown` on the target records
what it was given and by whom (the target container cannot power off), and "Start again"
starts the containers and launches the model again."""

import pytest
from django.urls import reverse

from deployments.actions.idle import do_start_again
from deployments.actions.stacks import do_deploy_stack
from deployments.choices import Health, LaunchStatus, PipelineKind, RunStatus, StackStatus
from deployments.clients.oneapi import first_run_setup
from deployments.models import IdleGuard, IdleState, ModelLaunch
from deployments.pipelines import idle_steps
from deployments.stacks.endpoints import service_url
from deployments.stacks.render import project_name
from deployments.stacks.secrets import ONEAPI_ACCESS_TOKEN, save_obtained_secret, stack_secrets
from deployments.stacks.xinference_access import xinference_client
from testkit.factories import make_run
from testkit.real_launches import embedding_config, launched, run_to_end
from testkit.stacks import deployable_stack, stack_target, write_override

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER = "test-worker:1"
# Put first on the PATH that sudo and sshd give root: records who ran it, and with what.
SHUTDOWN_STANDIN = '#!/bin/sh\necho "$(id -u) $*" >> /var/log/shutdown-standin\n'


def target_containers(target, stack) -> dict[str, str]:
    """The stack's containers as `docker ps` on the target lists them: service -> state."""
    listing = target.exec(
        [
            "docker",
            "ps",
            "--all",
            "--filter",
            f"label=com.docker.compose.project={project_name(stack)}",
            "--format",
            '{{.Label "com.docker.compose.service"}} {{.State}}',
        ]
    ).stdout.decode()
    return dict(line.split(" ", 1) for line in listing.splitlines())


def running_models(stack) -> set[str]:
    with xinference_client(stack) as client:
        return set(client.models())


def run_step(guard, kind):
    run = make_run(
        guard.server.team, status=RunStatus.QUEUED, kind=kind, params={"server_id": guard.server_id}
    )
    run_to_end(run)
    guard.refresh_from_db()
    return run


def set_up_oneapi_again(stack) -> None:
    """What the real One API keeps in MySQL over a restart, the stand-in keeps in memory:
    it is set up again as the deploy set it up."""
    with service_url(stack, "oneapi") as url:
        token = first_run_setup(url, stack_secrets(stack)["ONEAPI_ROOT_PASSWORD"])
    save_obtained_secret(stack, ONEAPI_ACCESS_TOKEN, token)


def test_the_guard_stops_a_real_stack_and_its_model_and_start_again_brings_both_back(
    ssh_target_image, team, operator, data_dir, models_dir, settings, monkeypatch, client
):
    settings.STACK_HEALTH_TIMEOUT = 300
    sent: list[int] = []
    monkeypatch.setattr(idle_steps, "_send", sent.append)
    with (
        stack_target(ssh_target_image, data_dir) as target,
        deployable_stack(team, target, data_dir) as stack,
    ):
        write_override(data_dir, mounts=(models_dir,))
        run_to_end(do_deploy_stack(stack, user=operator).run)
        launch = launched(embedding_config(team, operator), stack, operator)
        assert launch.status == LaunchStatus.READY
        assert launch.model_uid in running_models(stack)
        guard = IdleGuard.objects.create(
            server=stack.server, enabled=True, stop_stacks=True, power_off=True, state="idle"
        )

        # Stop the models: terminated in Xinference, its container still up.
        run_step(guard, PipelineKind.IDLE_STOP_MODELS)
        assert launch.model_uid not in running_models(stack)
        assert guard.stopped_launches == [launch.pk]
        assert set(target_containers(target, stack).values()) == {"running"}

        # Stop the stacks: every container stopped (kept, not removed).
        run_step(guard, PipelineKind.IDLE_STOP_STACKS)
        states = target_containers(target, stack)
        assert set(states) == {"pg", "mongo", "sandbox", "fastgpt", "mysql", "oneapi", "xinference"}
        assert set(states.values()) == {"exited"}
        assert guard.stopped_stacks == [stack.pk]
        # Its page reads the stopped containers from the server (Docker calls their health
        # "unhealthy") and says the guard stopped them.
        client.force_login(operator)
        table = client.post(reverse("stack_services", args=[stack.pk]), HTTP_HX_REQUEST="true")
        assert "The idle guard stopped these containers" in table.content.decode()
        assert "Unhealthy" not in table.content.decode()
        assert {service.health for service in stack.services.all()} == {Health.UNHEALTHY}
        stack_page = client.get(reverse("stack_detail", args=[stack.pk])).content.decode()
        assert "Stopped by the idle guard" in stack_page

        # Power off: the exact command, run as root on the target.
        target.exec(
            ["sh", "-c", "cat > /usr/local/sbin/shutdown && chmod 755 /usr/local/sbin/shutdown"],
            input=SHUTDOWN_STANDIN,
        )
        IdleGuard.objects.filter(pk=guard.pk).update(state=IdleState.POWER_OFF_PENDING)
        run_step(guard, PipelineKind.IDLE_POWER_OFF)
        recorded = target.exec(["cat", "/var/log/shutdown-standin"]).stdout.decode()
        assert recorded == "0 -h now\n"

        # Start again: the containers run and are healthy, the model launches again.
        IdleGuard.objects.filter(pk=guard.pk).update(state=IdleState.STOPPED)
        again = do_start_again(stack.server, user=operator)
        run_to_end(again)
        assert set(target_containers(target, stack).values()) == {"running"}
        stack.refresh_from_db()
        assert stack.status == StackStatus.RUNNING
        assert all(service.health == Health.HEALTHY for service in stack.services.all())
        relaunch = ModelLaunch.objects.exclude(pk=launch.pk).get()
        assert sent == [relaunch.run_id]
        set_up_oneapi_again(stack)
        run_to_end(relaunch.run)
        relaunch.refresh_from_db()
        assert relaunch.status == LaunchStatus.READY
        assert launch.model_uid in running_models(stack)
        guard.refresh_from_db()
        assert guard.state == IdleState.WATCHING and guard.stopped_stacks == []
