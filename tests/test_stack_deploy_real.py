"""A whole stack deployed for real: the SSH target, images from the local registry, every
service healthy (real PostgreSQL/pgvector, MariaDB and Xinference; stand-ins for the rest)."""

import subprocess

import pytest
import yaml

from deployments.actions.stacks import do_deploy_stack
from deployments.choices import Device, Health, Registry, RunStatus, StackStatus
from deployments.pipelines import runner
from deployments.pipelines.stack_deploy import OVERRIDE_FILE
from deployments.stacks.render import project_name
from testkit.factories import make_server, make_stack
from testkit.registry import MIRROR_PREFIX, ensure_registry
from testkit.target import SSHTarget, free_port
from testkit.xinference_env import venv_volume

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER = "test-worker:1"


@pytest.fixture
def data_dir(tmp_path):
    # The target's compose runs against this machine's engine, which resolves bind mounts
    # here: the data directory must be the same path on both sides.
    path = tmp_path / "stack"
    path.mkdir()
    return path


@pytest.fixture
def target(ssh_target_image, data_dir):
    with SSHTarget(ssh_target_image, mounts=[(str(data_dir), str(data_dir))]) as target:
        yield target


@pytest.fixture
def stack(target, team, data_dir, settings):
    ensure_registry()
    settings.STACK_HEALTH_TIMEOUT = 300
    server = make_server(
        team, host=target.host, ssh_port=target.port, ssh_private_key=target.key.private_openssh
    )
    stack = make_stack(
        server,
        data_dir=str(data_dir),
        registry=Registry.CUSTOM,
        registry_prefix=MIRROR_PREFIX,
        xinference_device=Device.CPU,
        fastgpt_port=free_port(),
        oneapi_port=free_port(),
        xinference_port=free_port(),
    )
    # The test image mounts its Python environment instead of carrying it; that, and auth
    # off as on the 0.16 line, go in the operator's override file, which deploys keep.
    override = {
        "services": {
            "xinference": {
                "volumes": [venv_volume()],
                "environment": {"XINFERENCE_AUTH_ADVANCED": "false"},
            }
        }
    }
    (data_dir / OVERRIDE_FILE).write_text(yaml.safe_dump(override))
    yield stack
    _down(stack, target)


def _down(stack, target):
    target.exec(
        [
            "docker-compose",
            "--project-name",
            project_name(stack),
            "--project-directory",
            stack.data_dir,
            "--file",
            f"{stack.data_dir}/docker-compose.yml",
            "down",
            "--volumes",
            "--timeout",
            "5",
        ],
        check=False,
        timeout=300,
    )


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
    services = {service.name: service for service in stack.services.all()}
    assert set(services) == {"pg", "mongo", "sandbox", "fastgpt", "mysql", "oneapi", "xinference"}
    assert all(service.health == Health.HEALTHY for service in services.values())
    assert services["fastgpt"].container_name
    assert any(str(stack.fastgpt_port) in port for port in services["fastgpt"].ports)
    stack.refresh_from_db()
    assert stack.status == StackStatus.RUNNING
    assert stack.rendered_files == deployment.rendered_files
