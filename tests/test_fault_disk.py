"""The server's disk filling up in the middle of a deploy: the stack's data directory is a
small file system of the SSH target's own, full but for room for the first file. The deploy
fails at writing the files with a reason in words, leaves no file half-written and nothing
taken as deployed, and a retry once there is room again writes every file whole."""

import math

import pytest
from django.urls import reverse

from deployments.actions.pipelines import do_retry_run
from deployments.actions.stacks import do_deploy_stack
from deployments.choices import Device, Registry, RunStatus, StackStatus, StepStatus
from deployments.pipelines import runner
from deployments.stacks.files import stack_files
from deployments.stacks.render import project_name
from testkit.docker_engine import docker
from testkit.factories import make_server, make_stack
from testkit.pipelines import step_rows
from testkit.target import SSHTarget, free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER = "test-worker:1"
DATA_DIR = "/srv/stack"
PAGE = 4096
DISK = 256 * PAGE


@pytest.fixture
def target(ssh_target_image):
    with SSHTarget(ssh_target_image, tmpfs=[(DATA_DIR, DISK)]) as target:
        yield target


@pytest.fixture
def stack(target, team):
    server = make_server(
        team, host=target.host, ssh_port=target.port, ssh_private_key=target.key.private_openssh
    )
    # Nothing listens at this registry: the deploy is not meant to get past pulling here.
    return make_stack(
        server,
        data_dir=DATA_DIR,
        registry=Registry.CUSTOM,
        registry_prefix=f"127.0.0.1:{free_port()}/mirror",
        xinference_device=Device.CPU,
        fastgpt_port=free_port(),
        oneapi_port=free_port(),
        xinference_port=free_port(),
    )


def fill_leaving(target: SSHTarget, pages: int) -> None:
    """Fill the data directory's file system, then free PAGES pages of it."""
    script = (
        f"dd if=/dev/zero of={DATA_DIR}/.filler bs={PAGE} 2>/dev/null || true; "
        f"truncate -s -{pages * PAGE} {DATA_DIR}/.filler"
    )
    target.exec(["sh", "-c", script])


def files_on_server(target: SSHTarget) -> dict[str, str]:
    """Every file of the data directory but the filler: name -> content."""
    script = f'cd {DATA_DIR} && for f in * .*; do [ -f "$f" ] && echo "$f"; done; true'
    names = target.exec(["sh", "-c", script]).stdout.decode().split()
    return {
        name: target.exec(["cat", f"{DATA_DIR}/{name}"]).stdout.decode()
        for name in names
        if name != ".filler"
    }


def project_containers(stack) -> list[str]:
    label = f"label=com.docker.compose.project={project_name(stack)}"
    return docker("ps", "--all", "--quiet", "--filter", label).stdout.decode().split()


def run_here(run) -> None:
    runner.run(run.pk, WORKER)
    run.refresh_from_db()


def test_a_disk_full_mid_deploy_fails_in_words_leaves_no_half_file_and_a_retry_writes_all(
    target, stack, operator, queued, client
):
    files = stack_files(stack).files
    first, *others = files
    fill_leaving(target, math.ceil(len(files[first].encode()) / PAGE))

    deployment = do_deploy_stack(stack, user=operator)
    run = deployment.run
    run_here(run)

    assert run.status == RunStatus.FAILED
    assert run.steps.get(attempt=1, status=StepStatus.FAILED).name == "upload files"
    failed = next(name for name in others if name not in files_on_server(target))
    assert run.error == (
        "Step 'upload files' failed: A command on the server failed: Cannot write "
        f"{DATA_DIR}/{failed} on {target.host}:{target.port}: no space left on the disk that "
        f"holds {DATA_DIR}. Free some space there, then retry."
    )
    # A file on the server is whole or absent; nothing is left under a temporary name.
    written = files_on_server(target)
    assert written == {name: files[name] for name in written}, sorted(written)
    assert set(written) < set(files)
    # Nothing is taken as deployed.
    stack.refresh_from_db()
    assert stack.status != StackStatus.RUNNING
    assert stack.rendered_files == {}
    assert project_containers(stack) == []
    client.force_login(operator)
    page = client.get(reverse("stack_detail", args=[stack.pk]))
    assert page.status_code == 200
    page = client.get(reverse("run_detail", args=[run.pk]), follow=True)
    assert page.status_code == 200
    assert "no space left on the disk" in page.content.decode()

    target.exec(["rm", f"{DATA_DIR}/.filler"])
    do_retry_run(run, user=operator)
    run_here(run)

    assert step_rows(run)[:5] == [
        (0, "check server", 1, StepStatus.SUCCEEDED),
        (1, "render files", 1, StepStatus.SUCCEEDED),
        (2, "upload files", 1, StepStatus.FAILED),
        (2, "upload files", 2, StepStatus.SUCCEEDED),
        (3, "pull images", 2, StepStatus.FAILED),
    ]
    assert run.error.startswith("Step 'pull images' failed: Pulling "), run.error
    assert files_on_server(target) == files
    stack.refresh_from_db()
    assert stack.status != StackStatus.RUNNING
    assert project_containers(stack) == []
