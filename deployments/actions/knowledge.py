"""Knowledge bases and their documents: create and delete them in the stack's FastGPT, stage
uploads, start imports, import again with other settings. Operators act; viewers see and search.
"""

from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from .. import access, audit
from ..choices import DocumentSource, DocumentStatus, PipelineKind, Role, RunStatus
from ..clients.fastgpt import FastGPTError, SearchHit
from ..errors import PanelError
from ..knowledge import bases, documents, staging
from ..models import Document, KnowledgeBase, PipelineRun, Stack
from . import ActionError, require_deployed
from .pipelines import do_start_run

UNDER_WAY = (RunStatus.QUEUED, RunStatus.RUNNING)


def _imports_under_way(base: KnowledgeBase) -> bool:
    return PipelineRun.objects.filter(
        kind=PipelineKind.DATASET_IMPORT,
        params__knowledge_base_id=base.pk,
        status__in=UNDER_WAY,
    ).exists()


def do_create_knowledge_base(
    stack: Stack,
    *,
    name: str,
    intro: str,
    embedding_model: str,
    agent_model: str,
    user,
    request=None,
) -> KnowledgeBase:
    """Make the dataset in FastGPT, then keep its row."""
    access.require_role(user, stack.team_id, Role.OPERATOR)
    require_deployed(stack)
    if KnowledgeBase.objects.filter(stack=stack, name=name).exists():
        raise ActionError(
            _("Stack “%(stack)s” already has a knowledge base called “%(name)s”.")
            % {"stack": stack.name, "name": name}
        )
    base = KnowledgeBase(
        team_id=stack.team_id,
        stack=stack,
        name=name,
        intro=intro,
        embedding_model=embedding_model,
        agent_model=agent_model,
        created_by=user,
    )
    try:
        base.fastgpt_dataset_id = bases.create_dataset(base)
    except (FastGPTError, PanelError) as error:
        raise ActionError(str(error)) from error
    try:
        with transaction.atomic():
            base.save()
            audit.record(
                "knowledge_base.create",
                actor=user,
                request=request,
                target=base,
                details={"stack": stack.name, "embedding": embedding_model, "agent": agent_model},
            )
    except IntegrityError:
        bases.delete_dataset(base)
        raise ActionError(
            _("Another knowledge base called “%(name)s” was just made.") % {"name": name}
        ) from None
    return base


def do_delete_knowledge_base(base: KnowledgeBase, *, confirm_name: str, user, request=None):
    access.require_role(user, base.team_id, Role.OPERATOR)
    if confirm_name != base.name:
        raise ActionError(_("Type the knowledge base's name to delete it."))
    if _imports_under_way(base):
        raise ActionError(_("An import into this knowledge base is under way: wait or cancel it."))
    apps = sorted(base.chat_apps.values_list("name", flat=True))
    if apps:
        # Their published graphs name the dataset: they would search nothing.
        raise ActionError(
            _("Chat apps %(apps)s answer from this knowledge base: change or delete them first.")
            % {"apps": ", ".join(f"“{name}”" for name in apps)}
        )
    try:
        bases.delete_dataset(base)
    except (FastGPTError, PanelError) as error:
        raise ActionError(str(error)) from error
    for staged in base.documents.exclude(staged_file="").values_list("staged_file", flat=True):
        staging.discard(staged)
    with transaction.atomic():
        audit.record(
            "knowledge_base.delete",
            actor=user,
            request=request,
            target=base,
            details={"stack": base.stack.name, "documents": base.documents.count()},
        )
        base.delete()


def do_stage_upload(
    base: KnowledgeBase, *, read: Callable[[int], bytes], name: str, user
) -> Document:
    """Stream an upload to the staging folder as a document waiting to be imported."""
    access.require_role(user, base.team_id, Role.OPERATOR)
    try:
        staged, size = staging.receive(read, name)
    except staging.BadUpload as error:
        raise ActionError(str(error)) from error
    return Document.objects.create(
        knowledge_base=base,
        source=DocumentSource.FILE,
        name=name,
        size_bytes=size,
        staged_file=staged,
        uploaded_by=user,
    )


def do_stage_piece(
    base: KnowledgeBase, *, read: Callable[[int], bytes], piece: staging.Piece, user
) -> tuple[Document | None, staging.Received]:
    """One piece of a file sent in pieces; its document once the last piece is in."""
    access.require_role(user, base.team_id, Role.OPERATOR)
    try:
        received = staging.take_piece(read, piece, target=f"knowledge:{base.pk}", user_id=user.pk)
    except staging.BadUpload as error:
        raise ActionError(str(error)) from error
    if not received.done:
        return None, received
    document = Document.objects.create(
        knowledge_base=base,
        source=DocumentSource.FILE,
        name=piece.name,
        size_bytes=received.size,
        staged_file=received.staged,
        uploaded_by=user,
    )
    return document, received


def _start_import(base: KnowledgeBase, picked: list[Document], *, user, request) -> PipelineRun:
    run = do_start_run(
        team=base.team,
        kind=PipelineKind.DATASET_IMPORT,
        params={"knowledge_base_id": base.pk, "stack_id": base.stack_id},
        user=user,
        request=request,
    )
    Document.objects.filter(pk__in=[document.pk for document in picked]).update(run=run)
    audit.record(
        "knowledge_base.import",
        actor=user,
        request=request,
        target=base,
        details={"documents": [document.name for document in picked], "run": run.pk},
    )
    return run


def do_start_import(
    base: KnowledgeBase,
    *,
    document_ids: list[int],
    training_type: str,
    chunk_size: int,
    chunk_splitter: str = "",
    user,
    request=None,
) -> PipelineRun:
    """Import staged documents with these chunk settings, in one run."""
    access.require_role(user, base.team_id, Role.OPERATOR)
    require_deployed(base.stack)
    with transaction.atomic():
        picked = list(
            Document.objects.select_for_update().filter(
                knowledge_base=base,
                pk__in=document_ids,
                status=DocumentStatus.PENDING,
                run__isnull=True,
            )
        )
        if not picked:
            raise ActionError(_("There is no uploaded document waiting to be imported."))
        Document.objects.filter(pk__in=[document.pk for document in picked]).update(
            training_type=training_type, chunk_size=chunk_size, chunk_splitter=chunk_splitter
        )
        return _start_import(base, picked, user=user, request=request)


def do_add_source(
    base: KnowledgeBase,
    *,
    source: str,
    name: str,
    text: str = "",
    training_type: str,
    chunk_size: int,
    chunk_splitter: str = "",
    user,
    request=None,
) -> PipelineRun:
    """Import pasted text (named `name`) or a web page (its URL in `name`) at once."""
    access.require_role(user, base.team_id, Role.OPERATOR)
    require_deployed(base.stack)
    with transaction.atomic():
        document = Document.objects.create(
            knowledge_base=base,
            source=source,
            name=name,
            text=text,
            size_bytes=len(text.encode()),
            training_type=training_type,
            chunk_size=chunk_size,
            chunk_splitter=chunk_splitter,
            uploaded_by=user,
        )
        return _start_import(base, [document], user=user, request=request)


def do_reimport_document(
    document: Document, *, training_type: str, chunk_size: int, user, request=None
) -> PipelineRun:
    """Import a failed document again with other settings: its stuck chunks are deleted from
    FastGPT, and a new document takes its place (and its staged file)."""
    base = document.knowledge_base
    access.require_role(user, base.team_id, Role.OPERATOR)
    require_deployed(base.stack)
    if document.status != DocumentStatus.FAILED:
        raise ActionError(_("Only a failed document can be imported again."))
    if document.source == DocumentSource.FILE and not document.staged_file:
        raise ActionError(_("The panel no longer has this file: upload it again."))
    if document.fastgpt_collection_id:
        try:
            documents.delete_collection(document)
        except (FastGPTError, PanelError) as error:
            raise ActionError(str(error)) from error
    with transaction.atomic():
        again = Document.objects.create(
            knowledge_base=base,
            source=document.source,
            name=document.name,
            text=document.text,
            size_bytes=document.size_bytes,
            staged_file=document.staged_file,
            training_type=training_type,
            chunk_size=chunk_size,
            chunk_splitter=document.chunk_splitter,
            uploaded_by=user,
        )
        document.delete()
        return _start_import(base, [again], user=user, request=request)


def do_delete_document(document: Document, *, user, request=None) -> None:
    base = document.knowledge_base
    access.require_role(user, base.team_id, Role.OPERATOR)
    if document.run_id and document.run.status in UNDER_WAY and not document.is_finished:
        raise ActionError(_("This document is being imported: cancel the import first."))
    try:
        documents.delete(document)
    except (FastGPTError, PanelError) as error:
        raise ActionError(str(error)) from error
    audit.record(
        "document.delete",
        actor=user,
        request=request,
        target=base,
        details={"document": document.name},
    )


def do_search(base: KnowledgeBase, text: str, *, user) -> list[SearchHit]:
    """FastGPT's search test: the chunks a question finds, best first. Viewers may."""
    access.require_role(user, base.team_id, Role.VIEWER)
    try:
        return bases.search(base, text)
    except (FastGPTError, PanelError) as error:
        raise ActionError(str(error)) from error
