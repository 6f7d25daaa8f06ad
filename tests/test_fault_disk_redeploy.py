"""A deploy that met a full disk, retried once there is room again, brings the whole stack up:
every service healthy, one container each, every file whole. The stack's data directory is a
small file system of this machine's own, so the engine's bind mounts land on it as the
target's files do."""

import math
import subprocess

import pytest

from deployments.actions.pipelines import do_retry_run
from deployments.actions.stacks import do_deploy_stack
from deployments.choices import Health, RunStatus, StackStatus, StepStatus
from deployments.pipelines import runner
from deployments.stacks.files import stack_files
from testkit.pipelines import step_rows
from testkit.stacks import deployable_stack, project_containers, stack_target

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER = "test-worker:1"
PAGE = 4096
# Room for the databases' first start; a tmpfs takes memory only for what is written to it.
DISK = "2g"


@pytest.fixture
def small_disk(data_dir):
    """data_dir on a tmpfs of DISK, mounted before the target sees the folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0755", "tmpfs", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(f"no file system can be mounted here: {mounted.stderr.strip()}")
    try:
        yield data_dir
    finally:
        subprocess.run(["umount", "--lazy", str(data_dir)], capture_output=True, check=False)


@pytest.fixture
def target(ssh_target_image, small_disk):
    with stack_target(ssh_target_image, small_disk) as target:
        yield target


def fill_leaving(folder, pages: int) -> None:
    """Fill the folder's file system, then free PAGES pages of it."""
    filler = folder / ".filler"
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={filler}", f"bs={PAGE}"], capture_output=True, check=False
    )
    subprocess.run(["truncate", "-s", f"-{pages * PAGE}", str(filler)], check=True)


def test_a_deploy_retried_after_a_full_disk_brings_the_whole_stack_up(
    target, small_disk, team, operator, settings
):
    settings.STACK_HEALTH_TIMEOUT = 300
    with deployable_stack(team, target, small_disk) as stack:
        files = stack_files(stack).files
        first = next(iter(files))
        fill_leaving(small_disk, math.ceil(len(files[first].encode()) / PAGE))

        run = do_deploy_stack(stack, user=operator).run
        runner.run(run.pk, WORKER)
        run.refresh_from_db()
        assert run.status == RunStatus.FAILED
        assert "no space left on the disk that holds" in run.error, run.error

        (small_disk / ".filler").unlink()
        do_retry_run(run, user=operator)
        runner.run(run.pk, WORKER)
        run.refresh_from_db()

        assert run.status == RunStatus.SUCCEEDED, run.error
        rows = step_rows(run)
        assert rows[2:4] == [
            (2, "upload files", 1, StepStatus.FAILED),
            (2, "upload files", 2, StepStatus.SUCCEEDED),
        ]
        # Each step after the failed one ran once, on the retry.
        assert [row[2] for row in rows[4:]] == [2] * len(rows[4:])
        assert all(row[3] == StepStatus.SUCCEEDED for row in rows[4:])
        for name, content in files.items():
            assert (small_disk / name).read_text() == content, name
        services = {service.name: service for service in stack.services.all()}
        assert all(service.health == Health.HEALTHY for service in services.values())
        assert {name: len(ids) for name, ids in project_containers(stack).items()} == {
            name: 1 for name in services
        }
        stack.refresh_from_db()
        assert stack.status == StackStatus.RUNNING
