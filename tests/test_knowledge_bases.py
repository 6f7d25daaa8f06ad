"""Knowledge bases in the panel: created in the stack's FastGPT with the models chosen, files
streamed to the staging folder and checked one by one, imported by the import pipeline and
followed until trained, searched, imported again with other settings, deleted.

FastGPT is the stand-in, served from a thread; the stack's server is this machine's loopback.
"""

import hashlib
import io
import os
import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from deployments.actions import ActionError
from deployments.actions.knowledge import (
    do_create_knowledge_base,
    do_delete_knowledge_base,
    do_reimport_document,
    do_search,
    do_stage_upload,
    do_start_import,
)
from deployments.choices import DocumentStatus, Role, RunStatus, StackStatus, TrainingType
from deployments.knowledge import staging
from deployments.knowledge.documents import retry_options
from deployments.knowledge.training import stall_from_log
from deployments.models import AuditEvent, ChatApp, Document, KnowledgeBase
from deployments.stacks.secrets import stack_secrets
from deployments.tasks import sweep_staged_uploads
from testkit.factories import add_member, make_server, make_stack
from testkit.knowledge import CHAT, EMBEDDING, recorded, run_queued
from testkit.standins.client import call

HANDBOOK = (
    "The lighthouse keeper winds the clockwork lamp every evening at dusk.\n\n"
    "Spare wicks are kept in the blue cabinet beside the stairs."
)


def make_base(stack, user, name="handbook") -> KnowledgeBase:
    return do_create_knowledge_base(
        stack,
        name=name,
        intro="What keepers need",
        embedding_model=EMBEDDING,
        agent_model=CHAT,
        user=user,
    )


def stage(base, user, name: str, content: bytes) -> Document:
    return do_stage_upload(base, read=io.BytesIO(content).read, name=name, user=user)


def test_a_knowledge_base_is_made_in_fastgpt_with_both_models_sent(
    transactional_db, fastgpt_stack, operator
):
    base = make_base(fastgpt_stack, operator)
    assert base.fastgpt_dataset_id
    (create,) = recorded(fastgpt_stack.standin, "/api/core/dataset/create")
    # K1: without agentModel FastGPT would take llmModels[0], the plain chat model.
    assert create["body"]["agentModel"] == CHAT
    assert create["body"]["vectorModel"] == EMBEDDING
    assert recorded(fastgpt_stack.standin, "/api/core/dataset/update")[0]["body"]["intro"] == (
        "What keepers need"
    )
    assert AuditEvent.objects.filter(action="knowledge_base.create").exists()


def test_the_list_offers_the_models_fastgpt_lists_with_file_processing_ones_first(
    transactional_db, fastgpt_stack, operator, client
):
    client.force_login(operator)
    page = client.get(reverse("knowledge_list", args=[fastgpt_stack.pk]))
    form = page.context["form"]
    assert [value for value, _ in form.fields["agent_model"].choices] == [CHAT, "plain-chat"]
    assert [value for value, _ in form.fields["embedding_model"].choices] == [EMBEDDING]


def test_a_viewer_sees_the_knowledge_bases_but_cannot_create_one(
    transactional_db, fastgpt_stack, team, client
):
    viewer = add_member(team, role=Role.VIEWER)
    client.force_login(viewer)
    page = client.get(reverse("knowledge_list", args=[fastgpt_stack.pk]))
    assert page.status_code == 200 and page.context["form"] is None
    with pytest.raises(PermissionDenied):
        make_base(fastgpt_stack, viewer)


def test_another_teams_knowledge_base_is_not_found(
    transactional_db, fastgpt_stack, operator, other_team, client
):
    base = make_base(fastgpt_stack, operator)
    stranger = add_member(other_team, role=Role.OWNER)
    client.force_login(stranger)
    assert client.get(reverse("knowledge_detail", args=[base.pk])).status_code == 404
    upload = client.post(
        reverse("knowledge_upload", args=[base.pk]),
        data=b"text",
        content_type="application/octet-stream",
        headers={"X-Upload-Name": "a.txt"},
    )
    assert upload.status_code == 404


def test_files_are_imported_and_followed_until_trained_then_found_by_search(
    transactional_db, fastgpt_stack, operator, queued
):
    base = make_base(fastgpt_stack, operator)
    first = stage(base, operator, "lighthouse notes.md", HANDBOOK.encode())
    second = stage(base, operator, "50% off – 手册.txt", b"The ferry leaves the harbour at nine.")
    assert staging.staged_path(first.staged_file).read_bytes() == HANDBOOK.encode()

    do_start_import(
        base,
        document_ids=[first.pk, second.pk],
        training_type=TrainingType.CHUNK,
        chunk_size=300,
        user=operator,
    )
    (run,) = run_queued(queued)

    assert run.status == RunStatus.SUCCEEDED, run.error
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == DocumentStatus.READY
    assert first.data_amount >= 1 and first.training_amount == 0
    # Staged copies go once FastGPT has trained them.
    assert not first.staged_file and not list(staging.staging_dir().iterdir())
    names = {
        row["name"]
        for row in call(
            "POST",
            f"{fastgpt_stack.standin.url}/api/core/dataset/collection/list",
            json={"datasetId": base.fastgpt_dataset_id},
            headers={"token": _token(fastgpt_stack)},
        ).json()["data"]["data"]
    }
    # K6: names with % and non-ASCII characters arrive as they were.
    assert names == {"lighthouse notes.md", "50% off – 手册.txt"}
    hits = do_search(base, "Where are the spare wicks kept?", user=operator)
    assert hits and "blue cabinet" in hits[0].q
    assert hits[0].source_name == "lighthouse notes.md"


def _token(stack) -> str:
    password = stack_secrets(stack)["FASTGPT_ROOT_PASSWORD"]
    reply = call(
        "POST",
        f"{stack.standin.url}/api/support/user/account/loginByPassword",
        json={"username": "root", "password": hashlib.sha256(password.encode()).hexdigest()},
    )
    return reply.json()["data"]["token"]


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("../../etc/passwd.txt", b"x", "may not contain a path"),
        ("notes\\evil.txt", b"x", "may not contain a path"),
        ("bell\x07.txt", b"x", "control characters"),
        ("line\nbreak.md", b"x", "control characters"),
        ("empty.txt", b"", "is empty"),
        ("program.exe", b"MZ", "cannot read this kind of file"),
        ("noextension", b"x", "cannot read this kind of file"),
    ],
)
def test_a_bad_file_gets_its_own_error_and_nothing_is_kept(
    transactional_db, fastgpt_stack, operator, name, content, says
):
    base = make_base(fastgpt_stack, operator)
    with pytest.raises(ActionError, match=says):
        stage(base, operator, name, content)
    assert not Document.objects.exists()
    assert not list(staging.staging_dir().iterdir())


def test_a_file_over_the_limit_is_refused_while_it_streams(
    transactional_db, fastgpt_stack, operator, settings
):
    settings.DOCUMENT_UPLOAD_MAX_MB = 1
    base = make_base(fastgpt_stack, operator)
    with pytest.raises(ActionError, match="upload limit of 1 MB"):
        stage(base, operator, "big.txt", b"a" * (1024 * 1024 + 1))
    assert not list(staging.staging_dir().iterdir())
    # Exactly at the limit is fine.
    assert stage(base, operator, "fits.txt", b"a" * (1024 * 1024)).size_bytes == 1024 * 1024


def test_the_upload_view_streams_a_raw_body_and_answers_each_file_in_json(
    transactional_db, fastgpt_stack, operator, client
):
    base = make_base(fastgpt_stack, operator)
    client.force_login(operator)
    url = reverse("knowledge_upload", args=[base.pk])
    good = client.post(
        url,
        data=HANDBOOK.encode(),
        content_type="application/octet-stream",
        headers={"X-Upload-Name": quote("Keeper’s handbook.md")},
    )
    bad = client.post(
        url,
        data=b"x",
        content_type="application/octet-stream",
        headers={"X-Upload-Name": quote("../secret.txt")},
    )
    assert good.status_code == 200 and good.json()["name"] == "Keeper’s handbook.md"
    assert bad.status_code == 400 and "path" in bad.json()["error"]
    assert [document.name for document in base.documents.all()] == ["Keeper’s handbook.md"]


def test_a_document_whose_chunks_are_all_too_long_fails_saying_so(
    transactional_db, fastgpt_stack, operator, queued
):
    base = make_base(fastgpt_stack, operator)
    # One paragraph of 2000 characters: over maxToken x 1.3 for m3e-base (512), never trained.
    document = stage(base, operator, "wall.txt", ("word " * 400).encode())
    do_start_import(
        base,
        document_ids=[document.pk],
        training_type=TrainingType.CHUNK,
        chunk_size=3000,
        user=operator,
    )
    (run,) = run_queued(queued)
    document.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert document.status == DocumentStatus.FAILED
    assert "longer than the embedding model takes" in document.error
    assert document.over_token_chunks == 1
    # The one-click retry halves the chunk size, and the file is still there for it.
    (smaller,) = retry_options(document)[:1]
    assert smaller.chunk_size == 1500 and document.staged_file

    do_reimport_document(
        document, training_type=smaller.training_type, chunk_size=300, user=operator
    )
    (again,) = run_queued(queued)
    assert again.status == RunStatus.SUCCEEDED, again.error
    (retried,) = base.documents.all()
    assert retried.status == DocumentStatus.READY and retried.chunk_size == 300


def test_deleting_a_knowledge_base_needs_its_name_typed_and_deletes_it_in_fastgpt(
    transactional_db, fastgpt_stack, operator
):
    base = make_base(fastgpt_stack, operator)
    with pytest.raises(ActionError, match="Type the knowledge base's name"):
        do_delete_knowledge_base(base, confirm_name="Handbook", user=operator)
    do_delete_knowledge_base(base, confirm_name="handbook", user=operator)
    assert not KnowledgeBase.objects.exists()
    (deleted,) = recorded(fastgpt_stack.standin, "/api/core/dataset/delete")
    assert base.fastgpt_dataset_id in deleted["path"]


def test_fastgpt_unreachable_shows_a_sentence_in_the_page(transactional_db, team, operator, client):
    stack = make_stack(make_server(team, host="127.0.0.1"), status=StackStatus.RUNNING)
    stack.fastgpt_port = 9  # discard: nothing answers there
    stack.save()
    client.force_login(operator)
    page = client.get(reverse("knowledge_list", args=[stack.pk]))
    assert page.status_code == 200
    assert "Could not reach FastGPT" in page.content.decode()


def test_a_stall_in_the_log_is_told_in_words(db, team):
    stack = make_stack(make_server(team))
    base = KnowledgeBase.objects.create(
        team=team, stack=stack, name="kb", embedding_model=EMBEDDING, agent_model=CHAT
    )
    document = Document(knowledge_base=base, name="a.txt")
    not_routed = (
        '[Error] 2024-08-01 10:00:00 生成向量错误 {"error":{"message":"当前分组 default 下对于'
        '模型 m3e-base 无可用渠道 (request id: 1)","type":"one_api_error"}}'
    )
    stall = stall_from_log("starting\n" + not_routed + "\n", document)
    assert "no channel for the model “m3e-base”" in stall.reason
    assert "无可用渠道" in stall.evidence
    too_long = "[Error] embedding failed: This model's maximum context length is 512 tokens"
    assert "smaller chunk size" in stall_from_log(too_long, document).reason
    assert "gives no reason" in stall_from_log("all quiet\n", document).reason


def test_the_page_follows_training_only_while_documents_are_unfinished(
    transactional_db, fastgpt_stack, operator, client, queued
):
    base = make_base(fastgpt_stack, operator)
    document = stage(base, operator, "notes.txt", HANDBOOK.encode())
    client.force_login(operator)
    do_start_import(
        base,
        document_ids=[document.pk],
        training_type=TrainingType.CHUNK,
        chunk_size=300,
        user=operator,
    )
    page = client.get(reverse("knowledge_detail", args=[base.pk]))
    assert page.context["following"] is True
    assert 'hx-trigger="every 1s"' in page.content.decode()
    run_queued(queued)
    page = client.get(reverse("knowledge_detail", args=[base.pk]))
    assert page.context["following"] is False
    assert "Trained" in page.content.decode()


def test_staged_files_live_only_under_the_staging_folder(settings, tmp_path):
    settings.DOCUMENT_STAGING_DIR = tmp_path
    for bad in ("../x.txt", "a/b.txt", ".hidden", ""):
        with pytest.raises(ValueError):
            staging.staged_path(bad)
    assert staging.staged_path("abc.txt") == Path(tmp_path) / "abc.txt"


def test_a_knowledge_base_a_chat_app_answers_from_is_not_deleted(
    transactional_db, fastgpt_stack, operator
):
    base = make_base(fastgpt_stack, operator)
    app = ChatApp.objects.create(
        team=base.team, stack=fastgpt_stack, name="Keeper bot", chat_model=CHAT
    )
    app.knowledge_bases.set([base])
    with pytest.raises(ActionError, match="“Keeper bot”"):
        do_delete_knowledge_base(base, confirm_name="handbook", user=operator)
    assert KnowledgeBase.objects.filter(pk=base.pk).exists()
    assert not recorded(fastgpt_stack.standin, "/api/core/dataset/delete")


def test_the_search_box_shows_the_chunks_found_with_their_source_and_scores(
    transactional_db, fastgpt_stack, operator, client, queued
):
    base = make_base(fastgpt_stack, operator)
    document = stage(base, operator, "lighthouse.md", HANDBOOK.encode())
    do_start_import(
        base,
        document_ids=[document.pk],
        training_type=TrainingType.CHUNK,
        chunk_size=300,
        user=operator,
    )
    run_queued(queued)
    client.force_login(operator)
    url = reverse("knowledge_search", args=[base.pk])
    found = client.get(
        url, {"text": "Where are the spare wicks kept?"}, headers={"HX-Request": "true"}
    )
    html = found.content.decode()
    assert 'id="search-results"' in html and "blue cabinet" in html
    assert "lighthouse.md" in html
    nothing = client.get(url, {"text": "zebra quantum"}, headers={"HX-Request": "true"})
    assert "Nothing in this knowledge base matches" in nothing.content.decode()


def test_every_label_on_the_knowledge_base_page_names_a_field_of_its_own(
    transactional_db, fastgpt_stack, operator, client
):
    base = make_base(fastgpt_stack, operator)
    client.force_login(operator)
    html = client.get(reverse("knowledge_detail", args=[base.pk])).content.decode()
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for target in re.findall(r'<label for="([^"]+)"', html):
        assert target in ids


def send_pieces(client, url: str, name: str, content: bytes, piece: int, **headers):
    """Send `content` as the page does: in pieces, each with the token the last answer gave."""
    offset, token, answer = 0, "", None
    while offset < len(content) or offset == 0:
        answer = client.post(
            url,
            data=content[offset : offset + piece],
            content_type="application/octet-stream",
            headers={
                "X-Upload-Name": quote(name),
                "X-Upload-Size": str(len(content)),
                "X-Upload-Offset": str(offset),
                "X-Upload-Token": token,
                **headers,
            },
        )
        body = answer.json()
        if answer.status_code != 200 or "next" not in body:
            return answer
        offset, token = body["received"], body["next"]
    return answer


def test_a_file_sent_in_pieces_is_put_together_in_order(
    transactional_db, fastgpt_stack, operator, client
):
    base = make_base(fastgpt_stack, operator)
    client.force_login(operator)
    content = HANDBOOK.encode() * 50
    answer = send_pieces(
        client, reverse("knowledge_upload", args=[base.pk]), "notes.md", content, piece=1000
    )
    assert answer.status_code == 200, answer.content
    document = base.documents.get(pk=answer.json()["id"])
    assert document.size_bytes == len(content)
    assert staging.staged_path(document.staged_file).read_bytes() == content


def test_pieces_out_of_order_or_with_someone_elses_token_keep_nothing(
    transactional_db, fastgpt_stack, operator, client, team
):
    base = make_base(fastgpt_stack, operator)
    url = reverse("knowledge_upload", args=[base.pk])
    client.force_login(operator)
    headers = {"X-Upload-Name": "notes.md", "X-Upload-Size": "10"}
    first = client.post(
        url,
        data=b"12345",
        content_type="application/octet-stream",
        headers={**headers, "X-Upload-Offset": "0"},
    ).json()
    skipped = client.post(
        url,
        data=b"890",
        content_type="application/octet-stream",
        headers={**headers, "X-Upload-Offset": "7", "X-Upload-Token": first["next"]},
    )
    assert skipped.status_code == 400 and "out of order" in skipped.json()["error"]
    assert not list(staging.staging_dir().iterdir())

    first = client.post(
        url,
        data=b"12345",
        content_type="application/octet-stream",
        headers={**headers, "X-Upload-Offset": "0"},
    ).json()
    colleague = add_member(team, role=Role.OPERATOR)
    client.force_login(colleague)
    stolen = client.post(
        url,
        data=b"67890",
        content_type="application/octet-stream",
        headers={**headers, "X-Upload-Offset": "5", "X-Upload-Token": first["next"]},
    )
    assert stolen.status_code == 400 and "no longer known" in stolen.json()["error"]
    assert not base.documents.exists()


def test_a_file_declared_over_the_limit_is_refused_before_any_piece_is_kept(
    transactional_db, fastgpt_stack, operator, client, settings
):
    settings.DOCUMENT_UPLOAD_MAX_MB = 1
    base = make_base(fastgpt_stack, operator)
    client.force_login(operator)
    answer = client.post(
        reverse("knowledge_upload", args=[base.pk]),
        data=b"x" * 100,
        content_type="application/octet-stream",
        headers={
            "X-Upload-Name": "big.txt",
            "X-Upload-Size": str(2 * 1024 * 1024),
            "X-Upload-Offset": "0",
        },
    )
    assert answer.status_code == 400 and "upload limit of 1 MB" in answer.json()["error"]
    assert not list(staging.staging_dir().iterdir())
    # A piece that runs past the declared size is refused too.
    overrun = client.post(
        reverse("knowledge_upload", args=[base.pk]),
        data=b"x" * 100,
        content_type="application/octet-stream",
        headers={"X-Upload-Name": "small.txt", "X-Upload-Size": "10", "X-Upload-Offset": "0"},
    )
    assert overrun.status_code == 400 and "more arrived" in overrun.json()["error"]
    assert not list(staging.staging_dir().iterdir())


def test_staged_files_nothing_will_import_are_swept_once_their_tokens_expire(
    transactional_db, fastgpt_stack, operator
):
    base = make_base(fastgpt_stack, operator)
    waiting = stage(base, operator, "waiting.txt", b"kept for its import")
    abandoned, _ = staging.receive_piece(
        io.BytesIO(b"half").read, name="half.txt", total=10, offset=0
    )
    old = time.time() - staging.TOKEN_MAX_AGE - 60
    for name in (waiting.staged_file, abandoned):
        os.utime(staging.staged_path(name), (old, old))
    assert sweep_staged_uploads() == 1
    assert staging.staged_path(waiting.staged_file).exists()
    assert not staging.staged_path(abandoned).exists()


def failed(document: Document, hours_ago: float) -> Document:
    document.status = DocumentStatus.FAILED
    document.error = "Training stood still."
    document.finished_at = timezone.now() - timedelta(hours=hours_ago)
    document.save()
    return document


def test_a_failed_documents_copy_is_kept_for_an_import_again_then_swept(
    transactional_db, client, fastgpt_stack, operator, settings
):
    settings.DOCUMENT_RETRY_HOURS = 24
    base = make_base(fastgpt_stack, operator)
    recent = failed(stage(base, operator, "recent.txt", b"failed an hour ago"), hours_ago=1)
    stale = failed(stage(base, operator, "stale.txt", b"failed two days ago"), hours_ago=48)
    stale_file = staging.staged_path(stale.staged_file)

    sweep_staged_uploads()

    recent.refresh_from_db()
    stale.refresh_from_db()
    assert staging.staged_path(recent.staged_file).exists()
    assert retry_options(recent)
    assert stale.staged_file == "" and not stale_file.exists()
    assert retry_options(stale) == []
    client.force_login(operator)
    page = client.get(reverse("knowledge_detail", args=[base.pk])).content.decode()
    assert "The file is kept until" in page
    assert "upload it again to import it with other settings" in page
    assert page.count("Import again") == len(retry_options(recent))


def test_a_failed_chatbots_files_are_kept_for_its_retry_then_swept(
    transactional_db, fastgpt_stack, operator, settings
):
    from deployments.choices import PipelineKind
    from testkit.factories import make_run

    settings.DOCUMENT_RETRY_HOURS = 24
    names = []
    for hours_ago in (1, 48):
        staged, _ = staging.receive_piece(
            io.BytesIO(b"chatbot file").read, name="bot.txt", total=12, offset=0
        )
        old = time.time() - staging.TOKEN_MAX_AGE - 60
        os.utime(staging.staged_path(staged), (old, old))
        make_run(
            fastgpt_stack.team,
            status=RunStatus.FAILED,
            kind=PipelineKind.CHATBOT_PUBLISH,
            params={"stack_id": fastgpt_stack.pk, "files": [{"staged": staged}]},
            finished_at=timezone.now() - timedelta(hours=hours_ago),
        )
        names.append(staged)

    assert sweep_staged_uploads() == 1
    assert staging.staged_path(names[0]).exists()
    assert not staging.staged_path(names[1]).exists()
