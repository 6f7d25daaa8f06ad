"""A stack's life for real, on the SSH target with the local registry: deploy (with One API's
first-run setup), restart one service, upgrade to another version line, roll back, tear down
keeping the data, then tear down deleting it."""

import httpx
import pytest

from deployments.actions.stacks import (
    do_deploy_stack,
    do_restart_stack,
    do_rollback_stack,
    do_teardown_stack,
    do_upgrade_stack,
)
from deployments.choices import DeploymentAction, Health, RunStatus, StackStatus
from deployments.models import StackBackupSettings
from deployments.pipelines import runner
from deployments.stacks import versions
from deployments.stacks.compose import OVERRIDE_FILE
from deployments.stacks.endpoints import service_url
from deployments.stacks.secrets import ONEAPI_ACCESS_TOKEN, stack_secrets
from testkit.docker_engine import docker
from testkit.registry import MIRROR_PREFIX
from testkit.stacks import deployable_stack, project_containers, stack_target
from tests.test_service_tunnel import assert_published_only_fastgpt

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER = "test-worker:1"
NEXT_TAG = "v0.6.7-next"


@pytest.fixture
def stack(ssh_target_image, team, data_dir, settings):
    settings.STACK_HEALTH_TIMEOUT = 300
    with (
        stack_target(ssh_target_image, data_dir) as target,
        deployable_stack(team, target, data_dir) as stack,
    ):
        yield stack


@pytest.fixture
def next_line(monkeypatch):
    """A newer version line whose One API image differs, pushed to the local registry."""
    current = f"{MIRROR_PREFIX}/one-api:v0.6.7"
    docker("pull", current, timeout=300)
    docker("tag", current, f"{MIRROR_PREFIX}/one-api:{NEXT_TAG}")
    docker("push", f"{MIRROR_PREFIX}/one-api:{NEXT_TAG}", timeout=300)
    line = versions.LINES[versions.DEFAULT_LINE]
    images = {**line.images, "oneapi": versions.Image("one-api", NEXT_TAG)}
    monkeypatch.setitem(
        versions.LINES, "next", versions.VersionLine(key="next", label="Next", images=images)
    )
    yield "next"
    docker("rmi", f"{MIRROR_PREFIX}/one-api:{NEXT_TAG}", check=False)


def run(deployment):
    runner.run(deployment.run_id, WORKER)
    deployment.refresh_from_db()
    deployment.run.refresh_from_db()
    assert deployment.run.status == RunStatus.SUCCEEDED, deployment.run.error
    return deployment


def container_ids(stack) -> dict[str, str]:
    """Service -> (container id, start time): a recreate changes the id, a restart the time."""
    found = {}
    for service, names in project_containers(stack).items():
        assert len(names) == 1, f"{service} has {len(names)} containers"
        inspected = docker("inspect", "--format", "{{.Id}} {{.State.StartedAt}}", names[0])
        found[service] = inspected.stdout.decode()
    return found


def oneapi_login(stack, password: str) -> bool:
    with service_url(stack, "oneapi") as url:
        reply = httpx.post(
            f"{url}/api/user/login",
            json={"username": "root", "password": password},
            timeout=30,
        )
    return reply.json()["success"]


def test_a_stack_is_deployed_restarted_upgraded_rolled_back_and_torn_down(
    stack, operator, data_dir, next_line
):
    # Deploy: every service healthy, One API's default password replaced.
    first = run(do_deploy_stack(stack, user=operator))
    assert not oneapi_login(stack, "123456")
    assert oneapi_login(stack, stack_secrets(stack)["ONEAPI_ROOT_PASSWORD"])
    token = stack_secrets(stack)[ONEAPI_ACCESS_TOKEN]
    with service_url(stack, "oneapi") as url:
        me = httpx.get(f"{url}/api/user/self", headers={"Authorization": token})
    assert me.json()["data"]["username"] == "root"
    # One API and Xinference on the server's loopback only; FastGPT on every address.
    assert_published_only_fastgpt(stack)
    steps = {step.name: step.output for step in first.run.steps.all()}
    assert stack_secrets(stack)["ONEAPI_ROOT_PASSWORD"] not in "".join(steps.values())
    before = container_ids(stack)

    # Restart one service: only its container starts again; none is recreated.
    run(do_restart_stack(stack, service="oneapi", user=operator))
    after_restart = container_ids(stack)
    assert after_restart["oneapi"] != before["oneapi"]
    assert after_restart["oneapi"].split()[0] == before["oneapi"].split()[0]
    assert {s: v for s, v in after_restart.items() if s != "oneapi"} == {
        s: v for s, v in before.items() if s != "oneapi"
    }

    # Upgrade: the diff names the new image; only One API's container is recreated. The
    # backup an upgrade makes first is left out here: the MySQL test image has no mysqldump
    # (test_stack_backups.py checks the commands that step sends).
    StackBackupSettings.objects.create(stack=stack, before_upgrade=False)
    upgrade = run(do_upgrade_stack(stack, version_line=next_line, user=operator))
    assert f"+    image: {MIRROR_PREFIX}/one-api:{NEXT_TAG}" in upgrade.files_diff
    assert upgrade.version_line == next_line
    after_upgrade = container_ids(stack)
    assert after_upgrade["oneapi"].split()[0] != before["oneapi"].split()[0]
    assert after_upgrade["pg"] == before["pg"] and after_upgrade["mongo"] == before["mongo"]
    stack.refresh_from_db()
    services = {service.name: service for service in stack.services.all()}
    assert services["oneapi"].image == f"{MIRROR_PREFIX}/one-api:{NEXT_TAG}"

    # Roll back to the first deployment: its files and its version line come back.
    rollback = run(do_rollback_stack(stack, to=first, user=operator))
    assert rollback.action == DeploymentAction.ROLLBACK
    assert rollback.rendered_files == first.rendered_files
    stack.refresh_from_db()
    assert stack.version_line == versions.DEFAULT_LINE
    assert stack.services.get(name="oneapi").image == f"{MIRROR_PREFIX}/one-api:v0.6.7"
    assert all(service.health == Health.HEALTHY for service in stack.services.all())

    # Tear down, keeping the data: no container left, the databases' files stay.
    run(do_teardown_stack(stack, user=operator))
    assert project_containers(stack) == {}
    stack.refresh_from_db()
    assert stack.status == StackStatus.TORN_DOWN
    assert not stack.services.exists()
    assert (data_dir / "pg" / "data" / "PG_VERSION").exists()

    # Tear down deleting the data: the stack's folders and files go, the override stays.
    run(do_teardown_stack(stack, delete_data=True, confirm_name=stack.name, user=operator))
    assert not (data_dir / "pg").exists() and not (data_dir / "mysql").exists()
    assert not (data_dir / "docker-compose.yml").exists()
    assert (data_dir / OVERRIDE_FILE).exists()
    stack.refresh_from_db()
    assert stack.rendered_files == {}
