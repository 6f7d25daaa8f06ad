"""Documents imported for real on a deployed stack: the FastGPT stand-in in the stack's own
container trains each chunk by calling the embedding model through One API (the stand-in) and
the real Xinference running MiniLM on the CPU, as FastGPT does.

A real PDF and a real Word file, made by libraries now, are imported and their sentences found
by the search test; once One API no longer routes the embedding model, training stops moving
and the panel fails the document with the reason it reads from the fastgpt container's log.

Then, on the same stack (a deploy, two model launches, imports and a failed one behind it, and a
remote provider added with a marker key), the secret scan: no secret the panel knows of the
stack is in a stored text, a page or polled partial, a log line or a run's socket.
"""

import asyncio
import secrets
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from deployments.actions.knowledge import (
    do_add_source,
    do_create_knowledge_base,
    do_search,
    do_stage_upload,
    do_start_import,
)
from deployments.actions.providers import do_add_provider
from deployments.choices import DocumentSource, DocumentStatus, RunStatus, TrainingType
from deployments.clients.oneapi import OneAPIClient
from deployments.llm.wiring import CHANNEL_NAME
from deployments.logs import polls
from deployments.models import (
    Document,
    EmbeddingModelConfig,
    LLMModelConfig,
    Membership,
    ModelLaunch,
    PipelineRun,
    RemoteProvider,
    Service,
)
from deployments.pipelines import runner
from deployments.stacks.endpoints import service_url
from deployments.stacks.secrets import ONEAPI_ACCESS_TOKEN, ONEAPI_FASTGPT_KEY, stack_secrets
from testkit.documents import make_docx, make_pdf
from testkit.permissions import http_routes
from testkit.real_launches import (
    WORKER,
    chat_config,
    deployed,
    embedding_config,
    launched,
    output_of,
    run_to_end,
)
from testkit.secret_scan import (
    SecretScan,
    known_secrets,
    page_paths,
    scan_log_socket,
    scan_pages,
    scan_polled_log_lines,
    scan_run_socket,
    scan_stored_texts,
)
from testkit.workers import wait_until
from testkit.xinference_models import make_tiny_chat_model
from tests.test_permission_matrix import FIXED_ARGUMENTS, MATRIX, NOT_SERVED, OBJECT_ARGUMENTS

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# One API's status of a channel switched off by hand.
CHANNEL_DISABLED = 2

PDF_SENTENCE = "The lighthouse keeper winds the clockwork lamp every evening at dusk."
DOCX_SENTENCE = "Spare wicks are kept in the blue cabinet beside the spiral stairs."


def stage_file(base, operator, path: Path) -> Document:
    with path.open("rb") as stream:
        return do_stage_upload(base, read=stream.read, name=path.name, user=operator)


def test_real_files_are_trained_found_by_search_and_no_secret_of_the_runs_reaches_anyone(
    ssh_target_image,
    team,
    owner,
    operator,
    viewer,
    data_dir,
    models_dir,
    settings,
    tmp_path,
    monkeypatch,
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

        # The recent-lines JSON is served from a loop of this test's own, ended with it.
        poll_loop = polls.LoopThread()
        monkeypatch.setattr(polls, "own_loop", lambda: poll_loop)
        try:
            scan_after_the_runs(stack, operator=operator, owner=owner, viewer=viewer)
        finally:
            poll_loop.close()


# The secret scan

# Polled as parts of their pages (htmx asks with HX-Request).
PARTIALS = ("knowledge_detail", "model_launch_detail", "run_steps", "chatbot_progress")
# What the scan must at least have searched, so that it cannot pass on nothing.
FLOORS = {
    "stored text": 100,
    "page": 80,
    "partial": 10,
    "log line": 200,
    "polled log line": 50,
    "run frame": 5,
    "masked FastGPT root-init line": 1,
    "masked FastGPT root-init line, polled": 1,
}


def add_marker_provider(stack, operator) -> str:
    """A remote provider whose key is a marker, synced into One API for real: its channel test
    fails (nothing answers at its address), with One API's message kept by the panel."""
    key = f"sk-marker{secrets.token_hex(20)}"
    _provider, run = do_add_provider(
        stack,
        data={
            "name": "marker",
            "channel_type": 1,
            "base_url": "http://127.0.0.1:9/v1",
            "api_key": key,
            "model_names": ["marker-model"],
            "dataset_process": False,
            "max_context": 4096,
        },
        user=operator,
    )
    runner.run(run.pk, WORKER)
    run.refresh_from_db()
    assert run.is_terminal, run.status
    return key


def scanned_objects(stack) -> dict[str, list]:
    """Every object of the stack's team a page is about, by the permission matrix's names."""
    team_id = stack.team_id
    return {
        "team": [stack.team],
        "server": [stack.server],
        "stack": [stack],
        "service": list(Service.objects.filter(stack=stack)),
        "deployment": list(stack.deployments.all()),
        "run": list(PipelineRun.objects.filter(team_id=team_id)),
        "launch": list(ModelLaunch.objects.filter(stack=stack)),
        "model_config": list(LLMModelConfig.objects.filter(team_id=team_id)),
        "knowledge_base": list(stack.knowledge_bases.all()),
        "document": list(Document.objects.filter(knowledge_base__stack=stack)),
        "provider": list(RemoteProvider.objects.filter(stack=stack)),
        "membership": list(Membership.objects.filter(team_id=team_id)),
    }


def scan_after_the_runs(stack, *, operator, owner, viewer) -> None:
    marker = add_marker_provider(stack, operator)
    scan = SecretScan(known_secrets(stack, markers={"remote provider key": marker}))
    assert marker in scan.secrets.values()

    scan_stored_texts(scan)

    # Every route of the panel but Django's admin, whose GET shows something; the logs'
    # recent-lines JSON is read below, line by line.
    routes = [
        route
        for route in http_routes()
        if not route.name.startswith("admin:")
        and MATRIX.get(route.name, ("",))[0] != NOT_SERVED
        and route.name not in ("stack_logs_recent", "stack_service_logs_recent")
    ]
    objects = scanned_objects(stack)
    walk = {
        "pk_of": {name: target for name, (_get, _post, target) in MATRIX.items()},
        "object_arguments": OBJECT_ARGUMENTS,
        "fixed_arguments": FIXED_ARGUMENTS,
    }
    pages = page_paths(routes, objects, **walk)
    embedding = EmbeddingModelConfig.objects.filter(team_id=stack.team_id)
    pages += [reverse("model_detail", args=["embedding", config.pk]) for config in embedding]
    partials = page_paths(routes, objects, names=PARTIALS, **walk)
    for user in (owner, viewer):
        client = Client()
        client.force_login(user)
        scan_pages(scan, client, pages)
        scan_pages(scan, client, partials, partial=True)
    client = Client()
    client.force_login(viewer)
    scan_polled_log_lines(scan, client, reverse("stack_logs_recent", args=[stack.pk]))
    for service in objects["service"]:
        scan_polled_log_lines(scan, client, reverse("stack_service_logs_recent", args=[service.pk]))

    async def sockets():
        await scan_log_socket(scan, stack, viewer)
        for run in objects["run"]:
            await scan_run_socket(scan, run.pk, viewer)

    asyncio.run(sockets())

    scan.assert_clean(FLOORS)
