"""A worker killed (SIGKILL) in the middle of a document import, while FastGPT trains the file:
the reaper fails the run in words, the document is not left importing for ever, and a retry on
another worker resumes at the step it stopped at, so FastGPT gets the file once and the document
ends ready. FastGPT is the stand-in, served from a thread on loopback; the workers are real
Celery workers in processes of their own."""

import io
import re

import pytest
from django.urls import reverse

from deployments.actions.knowledge import (
    do_create_knowledge_base,
    do_stage_upload,
    do_start_import,
)
from deployments.actions.pipelines import do_retry_run
from deployments.choices import (
    DocumentStatus,
    EventKind,
    RunStatus,
    StackStatus,
    StepStatus,
    TrainingType,
)
from deployments.models import Document, StepRun
from deployments.pipelines import reaper
from testkit.factories import make_server, make_stack
from testkit.knowledge import CHAT, EMBEDDING, recorded, standin_fastgpt
from testkit.workers import wait_until, worker_starter

pytestmark = pytest.mark.django_db(transaction=True)

HANDBOOK = "The lighthouse keeper winds the clockwork lamp every evening at dusk."
# Long enough a training that the worker is killed while the panel follows it.
TRAINING_SECONDS = 6
STALE_AFTER = 5
DEADLINE = 120
CLASS_NAME = re.compile(r"Traceback|\w+(Error|Exception)\b|<class ")


@pytest.fixture
def start_worker(tmp_path, settings):
    """start_worker() starts one worker that sees the test's staging folder."""
    staging = tmp_path / "staging"
    settings.DOCUMENT_STAGING_DIR = staging
    settings.PIPELINE_STALE_AFTER = STALE_AFTER
    env = {
        "DOCUMENT_STAGING_DIR": str(staging),
        "TRAINING_POLL_SECONDS": "1",
        "PIPELINE_HEARTBEAT_SECONDS": "1",
    }
    with worker_starter(tmp_path, env) as start:
        yield start


def test_an_import_whose_worker_is_killed_while_fastgpt_trains_resumes_and_sends_the_file_once(
    team, operator, tmp_path, start_worker, client
):
    stack = make_stack(make_server(team, host="127.0.0.1"), status=StackStatus.RUNNING)
    with standin_fastgpt(stack, tmp_path, training_seconds=TRAINING_SECONDS) as fastgpt:
        worker = start_worker()
        base = do_create_knowledge_base(
            stack,
            name="handbook",
            intro="What keepers need",
            embedding_model=EMBEDDING,
            agent_model=CHAT,
            user=operator,
        )
        document = do_stage_upload(
            base, read=io.BytesIO(HANDBOOK.encode()).read, name="notes.md", user=operator
        )
        run = do_start_import(
            base,
            document_ids=[document.pk],
            training_type=TrainingType.CHUNK,
            chunk_size=300,
            user=operator,
        )

        # Killed once the file is in FastGPT and the panel follows its training.
        wait_until(
            lambda: StepRun.objects.filter(
                run=run, name="follow training", status=StepStatus.RUNNING
            ).exists(),
            DEADLINE,
            "the import to follow the training",
            0.1,
        )
        worker.kill()

        wait_until(reaper.reap_stale_runs, 60, "the reaper to fail the run", 0.5)
        run.refresh_from_db()
        assert run.status == RunStatus.FAILED
        assert run.error.startswith(
            "The worker running this stopped responding during step 'follow training' "
        )
        assert run.error.endswith("Retry to resume from that step.")
        assert not CLASS_NAME.search(run.error), run.error
        client.force_login(operator)
        page = client.get(reverse("knowledge_detail", args=[base.pk]))
        assert page.status_code == 200
        assert not CLASS_NAME.search(page.content.decode())

        start_worker()
        do_retry_run(run, user=operator)

        def ended():
            run.refresh_from_db()
            return run.status not in (RunStatus.QUEUED, RunStatus.RUNNING)

        wait_until(ended, DEADLINE, "the retried import to end", 0.5)
        assert run.status == RunStatus.SUCCEEDED, run.error
        resumed = run.events.filter(kind=EventKind.RUN_STARTED).last()
        assert "at step 'follow training' (attempt 2)" in resumed.message
        # FastGPT got the file once: the resumed run followed the training it had started.
        assert len(recorded(fastgpt, "/api/core/dataset/collection/create/localFile")) == 1
        document = Document.objects.get(pk=document.pk)
        assert document.status == DocumentStatus.READY
        assert document.data_amount >= 1
