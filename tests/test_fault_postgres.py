"""PostgreSQL restarted under a real worker while a step of its run is under way: the worker's
connections come back by themselves, the run goes on from where it was and succeeds, each step
once, its events numbered without a gap, and the panel still serves pages from it.

The machine's PostgreSQL serves every test run on it, so this test restarts a server of its own
(testkit/private_postgres.py), whatever database the rest of the tests use: the worker, the web
server and the process that queues the run are pointed at it, and the test reads it in plain SQL.
"""

import os
import subprocess
import sys

import httpx
import pytest
from django.conf import settings

from deployments.choices import EventKind, RunStatus, StepStatus
from testkit.asgi_server import AsgiServer, log_in
from testkit.pipelines import journal_lines
from testkit.private_postgres import PrivatePostgres, binaries
from testkit.private_redis import PrivateRedis
from testkit.workers import Worker, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.engine_agnostic]


@pytest.fixture
def private_postgres():
    if binaries() is None:
        pytest.skip("PostgreSQL's server is not installed here (/usr/lib/postgresql/*/bin)")
    with PrivatePostgres() as server:
        yield server


@pytest.fixture
def private_redis():
    with PrivateRedis() as server:
        yield server


@pytest.fixture
def panel_env(private_postgres, private_redis):
    """What the panel's processes of this test run with: the private servers."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "testkit.settings",
        "DATABASE_URL": private_postgres.url,
        "REDIS_URL": private_redis.url,
        "PIPELINE_HEARTBEAT_SECONDS": "1",
    }


@pytest.fixture
def panel(panel_env, tmp_path):
    """A worker and a web server of the panel, on its database once migrated: (worker, web)."""
    # Neither reads the database before it has work: they start while the migrations run.
    worker = Worker(tmp_path / "worker.log", env=panel_env).spawn()
    web = AsgiServer(tmp_path / "web.log", env=panel_env).spawn()
    try:
        manage(panel_env, "migrate", "--verbosity", "0", "--skip-checks")
        yield worker.wait_ready(), web.wait_ready()
    finally:
        web.stop()
        worker.kill()  # idle by then: nothing to finish, and a warm shutdown takes seconds


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


START_RUN = """
from deployments.actions.pipelines import do_start_run
from testkit.factories import add_member, make_team, make_user
from testkit.pipelines import STEPS
team, user = make_team(), make_user()
add_member(team, user)
run = do_start_run(team=team, kind=STEPS, params={params!r}, user=user)
print(run.pk, user.username, user.raw_password)
"""


def start_run(env: dict, params: dict) -> tuple[int, str, str]:
    """Queue a run of the test pipeline from a process of the panel, as a page would; the run's
    id, and the name and password of a member of its team."""
    output = manage(env, "shell", "-c", START_RUN.format(params=params))
    run_id, username, password = output.split()[-3:]
    return int(run_id), username, password


def run_page(base_url: str, run_id: int, username: str, password: str) -> httpx.Response:
    """The run's page, read by a member who logs in first (both read the database)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        logged_in = log_in(client, username, password)
        assert logged_in.status_code == 302, logged_in.text[-2000:]
        return client.get(f"/runs/{run_id}/")


def test_a_postgres_restart_mid_step_is_ridden_out_and_the_run_succeeds(
    private_postgres, panel_env, panel, tmp_path
):
    worker, web = panel
    journal, release = tmp_path / "journal.txt", tmp_path / "release"
    run_id, username, password = start_run(
        panel_env, {"journal": str(journal), "block_at": 1, "release": str(release)}
    )
    db = private_postgres.connect()

    def one(sql: str, *args):
        return db.execute(sql, args).fetchone()

    def step_running() -> bool:
        row = one("SELECT status FROM deployments_steprun WHERE run_id = %s AND index = 1", run_id)
        return row is not None and row[0] == StepStatus.RUNNING

    def beat_since(moment) -> bool:
        sql = "SELECT heartbeat_at > %s FROM deployments_pipelinerun WHERE id = %s"
        return one(sql, moment, run_id)[0]

    wait_until(step_running, 30, "step 'second' to start")
    (step_seen_at,) = one("SELECT now()")
    # A beat while the step blocks: the heartbeat holds a connection the restart will drop.
    wait_until(lambda: beat_since(step_seen_at), 15, "a heartbeat during the step")

    private_postgres.restart()
    db = private_postgres.connect()
    (restarted_at,) = one("SELECT now()")
    # The worker beats again, on a new connection, while its step still blocks.
    wait_until(lambda: beat_since(restarted_at), 15, "a heartbeat after the restart")
    release.touch()
    # The restart did reach the worker: the beat on the connection it dropped failed.
    assert f"Heartbeat of run {run_id} failed" in worker.log

    def finished():
        (status,) = one("SELECT status FROM deployments_pipelinerun WHERE id = %s", run_id)
        return status if status not in (RunStatus.QUEUED, RunStatus.RUNNING) else None

    assert wait_until(finished, 30, "the run to end") == RunStatus.SUCCEEDED, one(
        "SELECT error FROM deployments_pipelinerun WHERE id = %s", run_id
    )
    assert journal_lines(journal) == [
        "0 first attempt=1",
        "1 second attempt=1",
        "2 third attempt=1",
    ]
    steps = db.execute(
        "SELECT index, attempt, status FROM deployments_steprun WHERE run_id = %s"
        " ORDER BY index, attempt",
        (run_id,),
    ).fetchall()
    assert steps == [(index, 1, StepStatus.SUCCEEDED) for index in range(3)]
    seqs = [
        seq
        for (seq,) in db.execute(
            "SELECT seq FROM deployments_pipelineevent WHERE run_id = %s ORDER BY seq", (run_id,)
        )
    ]
    assert seqs == list(range(1, 15))  # started, 4 a step, finished
    kinds = db.execute(
        "SELECT kind FROM deployments_pipelineevent WHERE run_id = %s AND seq IN (1, 14)"
        " ORDER BY seq",
        (run_id,),
    ).fetchall()
    assert kinds == [(EventKind.RUN_STARTED,), (EventKind.RUN_FINISHED,)]

    # The web server, up all along, serves pages from the restarted database.
    page = run_page(web.url, run_id, username, password)
    assert page.status_code == 200
    assert "data-run-status>Succeeded<" in page.text
    db.close()


def test_a_step_that_ends_while_postgres_is_down_is_recorded_once_it_is_back(
    private_postgres, panel_env, panel, tmp_path
):
    """The outcome is written again until the database answers: the run goes on to its end,
    with each step once, instead of waiting for the reaper to call its worker dead."""
    worker, _web = panel
    journal, release = tmp_path / "journal.txt", tmp_path / "release"
    run_id, _username, _password = start_run(
        panel_env, {"journal": str(journal), "block_at": 1, "release": str(release)}
    )
    db = private_postgres.connect()

    def step_running() -> bool:
        sql = "SELECT status FROM deployments_steprun WHERE run_id = %s AND index = 1"
        row = db.execute(sql, (run_id,)).fetchone()
        return row is not None and row[0] == StepStatus.RUNNING

    wait_until(step_running, 30, "step 'second' to start")
    db.close()
    private_postgres.stop()
    release.touch()  # the step ends while nothing answers
    outcome = "Could not write the outcome of step 'second'"
    wait_until(lambda: outcome in worker.log, 30, "a failed write of the step's outcome")
    private_postgres.start()
    db = private_postgres.connect()

    def finished():
        sql = "SELECT status, error FROM deployments_pipelinerun WHERE id = %s"
        status, error = db.execute(sql, (run_id,)).fetchone()
        return (status, error) if status not in (RunStatus.QUEUED, RunStatus.RUNNING) else None

    assert wait_until(finished, 60, "the run to end") == (RunStatus.SUCCEEDED, "")
    assert journal_lines(journal) == [
        "0 first attempt=1",
        "1 second attempt=1",
        "2 third attempt=1",
    ]
    steps = db.execute(
        "SELECT index, attempt, status, output FROM deployments_steprun WHERE run_id = %s"
        " ORDER BY index, attempt",
        (run_id,),
    ).fetchall()
    assert [row[:3] for row in steps] == [(index, 1, StepStatus.SUCCEEDED) for index in range(3)]
    # The line the step wrote while the database was away is in its output.
    assert steps[1][3].splitlines() == ["second: starting", "second: done"]
    seqs = [
        seq
        for (seq,) in db.execute(
            "SELECT seq FROM deployments_pipelineevent WHERE run_id = %s ORDER BY seq", (run_id,)
        )
    ]
    assert seqs == list(range(1, len(seqs) + 1))  # numbered without a gap
    db.close()
