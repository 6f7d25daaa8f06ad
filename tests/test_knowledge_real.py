"""Documents imported for real on a deployed stack: the FastGPT stand-in in the stack's own
container trains each chunk by calling the embedding model through One API (the stand-in) and
the real Xinference running MiniLM on the CPU, as FastGPT does.

A real PDF and a real Word file, made by libraries now, are imported and their sentences found
by the search test; once One API no longer routes the embedding model, training stops moving
and the panel fails the document with the reason it reads from the fastgpt container's log.
"""

from pathlib import Path

import pytest

from deployments.actions.knowledge import (
    do_add_source,
    do_create_knowledge_base,
    do_search,
    do_stage_upload,
    do_start_import,
)
from deployments.choices import DocumentSource, DocumentStatus, RunStatus, TrainingType
from deployments.clients.oneapi import OneAPIClient
from deployments.llm.wiring import CHANNEL_NAME
from deployments.models import Document
from deployments.stacks.endpoints import service_url
from deployments.stacks.secrets import ONEAPI_ACCESS_TOKEN, ONEAPI_FASTGPT_KEY, stack_secrets
from testkit.documents import make_docx, make_pdf
from testkit.real_launches import (
    chat_config,
    deployed,
    embedding_config,
    launched,
    output_of,
    run_to_end,
)
from testkit.workers import wait_until
from testkit.xinference_models import make_tiny_chat_model

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# One API's status of a channel switched off by hand.
CHANNEL_DISABLED = 2

PDF_SENTENCE = "The lighthouse keeper winds the clockwork lamp every evening at dusk."
DOCX_SENTENCE = "Spare wicks are kept in the blue cabinet beside the spiral stairs."


def stage_file(base, operator, path: Path) -> Document:
    with path.open("rb") as stream:
        return do_stage_upload(base, read=stream.read, name=path.name, user=operator)


def test_real_files_are_trained_through_the_embedding_model_and_found_by_search(
    ssh_target_image, team, operator, data_dir, models_dir, settings, tmp_path
):
    settings.STACK_HEALTH_TIMEOUT = 300
    settings.DOCUMENT_STAGING_DIR = tmp_path / "staging"
    settings.TRAINING_STALL_SECONDS = 20
    tiny = make_tiny_chat_model(models_dir / "tiny-chat")
    with deployed(ssh_target_image, team, operator, data_dir, models_dir, auth=False) as stack:
        # FastGPT needs a chat model to make a knowledge base, and MiniLM to embed its chunks.
        launched(chat_config(team, operator, tiny["folder"]), stack, operator)
        launched(embedding_config(team, operator), stack, operator)

        base = do_create_knowledge_base(
            stack,
            name="handbook",
            intro="",
            embedding_model="minilm",
            agent_model="tiny-chat",
            user=operator,
        )
        pdf = stage_file(base, operator, make_pdf(tmp_path / "keeper.pdf", PDF_SENTENCE))
        word = stage_file(
            base, operator, make_docx(tmp_path / "wicks.docx", "Keeper's handbook", DOCX_SENTENCE)
        )
        run = do_start_import(
            base,
            document_ids=[pdf.pk, word.pk],
            training_type=TrainingType.CHUNK,
            chunk_size=200,
            user=operator,
        )
        run_to_end(run)
        for document in (pdf, word):
            document.refresh_from_db()
            assert document.status == DocumentStatus.READY, document.error
            assert document.data_amount >= 1 and document.training_amount == 0
        assert "ready" in output_of(run)

        hits = do_search(base, "Where are the spare wicks kept?", user=operator)
        assert any("blue cabinet" in hit.q for hit in hits), hits
        hits = do_search(base, "When does the keeper wind the lamp?", user=operator)
        assert any("clockwork lamp" in hit.q for hit in hits), hits

        # Someone switches the model's channel off in One API's own pages: FastGPT still lists
        # MiniLM, its training calls get One API's "no channel" 503 and are retried, and the
        # panel notices that nothing moves and reads why in the fastgpt container's log.
        stack.refresh_from_db()  # the secrets the launches' wiring kept
        with (
            service_url(stack, "oneapi") as url,
            OneAPIClient(url, stack_secrets(stack)[ONEAPI_ACCESS_TOKEN]) as oneapi,
        ):
            (channel,) = oneapi.channels_named(CHANNEL_NAME)
            oneapi.update_channel({"id": channel["id"], "status": CHANNEL_DISABLED})
            # One API's relay reads channels from a cache it syncs every 10 s.
            relay_key = stack_secrets(stack)[ONEAPI_FASTGPT_KEY]
            wait_until(
                lambda: not oneapi.relay_routes(relay_key, "minilm", embedding=True)[0],
                timeout=60,
                what="One API to stop routing minilm",
                interval=1,
            )
        stuck_run = do_add_source(
            base,
            source=DocumentSource.TEXT,
            name="notes",
            text="A sentence that will never be embedded.",
            training_type=TrainingType.CHUNK,
            chunk_size=200,
            user=operator,
        )
        run_to_end(stuck_run, expect=RunStatus.FAILED)
        stuck = base.documents.get(name="notes")
        assert stuck.status == DocumentStatus.FAILED
        assert "no progress" in stuck.error
        assert "One API has no channel for the model “minilm”" in stuck.error, stuck.error
        assert "notes" in stuck_run.error
