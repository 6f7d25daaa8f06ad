"""A whole stack deployed for real: the SSH target, images from the local registry, every
service healthy (real PostgreSQL/pgvector, MariaDB and Xinference; stand-ins for the rest)."""

import re
import subprocess

import pytest
import yaml

from deployments.actions.stacks import do_deploy_stack
from deployments.choices import Health, RunStatus, StackStatus, StepStatus
from deployments.pipelines import runner
from deployments.stacks.compose import OVERRIDE_FILE
from testkit.registry import MIRROR_PREFIX
from testkit.stacks import deployable_stack, project_containers, stack_target

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER = "test-worker:1"


@pytest.fixture
def target(ssh_target_image, data_dir):
    with stack_target(ssh_target_image, data_dir) as target:
        yield target


@pytest.fixture
def stack(target, team, data_dir, settings):
    settings.STACK_HEALTH_TIMEOUT = 300
    with deployable_stack(team, target, data_dir) as stack:
        yield stack


def docker(*argv: str) -> str:
    return subprocess.run(
        ["docker", *argv], capture_output=True, text=True, check=False, timeout=300
    ).stdout


@pytest.fixture
def sandbox_image_absent():
    """The sandbox image removed from this engine (every tag), so the deploy really pulls it
    from the registry layer by layer; its build tag is put back afterwards."""
    mirror = f"{MIRROR_PREFIX}/fastgpt-sandbox:v4.8.8"
    built = docker(
        "images",
        "--filter",
        "reference=controlpanel-test/stack-fastgpt-sandbox",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ).split()
    docker("rmi", mirror, *built)
    yield
    for tag in built:
        docker("tag", mirror, tag)


def test_a_stack_deploys_and_every_service_becomes_healthy(stack, operator, sandbox_image_absent):
    deployment = do_deploy_stack(stack, user=operator)
    runner.run(deployment.run_id, WORKER)

    deployment.refresh_from_db()
    run = deployment.run
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    pull = run.steps.get(name="pull images").output
    assert f"{MIRROR_PREFIX}/fastgpt:v4.8.8-fix2" in pull
    assert "fastgpt-sandbox:v4.8.8: layer" in pull and "layers done)" in pull
    # Bytes as well as layers: the pull ran with a terminal, so docker reported them.
    assert re.search(r"fastgpt-sandbox:v4.8.8: .*[\d.]+ [kMG]?B of [\d.]+ [kMG]?B downloaded", pull)
    services = {service.name: service for service in stack.services.all()}
    assert set(services) == {"pg", "mongo", "sandbox", "fastgpt", "mysql", "oneapi", "xinference"}
    assert all(service.health == Health.HEALTHY for service in services.values())
    assert services["fastgpt"].container_name
    assert any(str(stack.fastgpt_port) in port for port in services["fastgpt"].ports)
    stack.refresh_from_db()
    assert stack.status == StackStatus.RUNNING
    assert stack.rendered_files == deployment.rendered_files
    assert {name: len(names) for name, names in project_containers(stack).items()} == {
        name: 1 for name in services
    }


def test_a_broken_service_is_named_with_its_last_log_lines(stack, operator, data_dir, settings):
    # One API cannot parse this DSN: it logs a fatal line and exits, again and again.
    override = yaml.safe_load((data_dir / OVERRIDE_FILE).read_text())
    override["services"]["oneapi"] = {"environment": {"SQL_DSN": "not-a-dsn"}}
    (data_dir / OVERRIDE_FILE).write_text(yaml.safe_dump(override))
    settings.STACK_HEALTH_TIMEOUT = 90

    deployment = do_deploy_stack(stack, user=operator)
    runner.run(deployment.run_id, WORKER)

    run = deployment.run
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.steps.get(name="wait until healthy").status == StepStatus.FAILED
    first_line = run.error.splitlines()[0]
    assert first_line.endswith("Not healthy after 90 s: oneapi.")
    assert "Last lines of oneapi" in run.error
    assert "invalid DSN" in run.error
    stack.refresh_from_db()
    assert stack.status == StackStatus.DEGRADED
