"""Import documents into a knowledge base: send each to FastGPT, then follow its training.

Params: {"knowledge_base_id": id}; the documents are those whose `run` is this run. Each
document stands alone: a file FastGPT refuses, or one whose training stops moving, fails with
its reason while the others go on. Both steps can run again: a document FastGPT already has is
not sent twice, and a finished one is not followed.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.utils.translation import gettext as _

from ..choices import DocumentStatus, PipelineKind
from ..clients.fastgpt import FastGPTError
from ..knowledge import documents
from ..knowledge.session import signed_in_fastgpt
from ..knowledge.training import stall_reason
from ..models import Document, KnowledgeBase
from .registry import register
from .steps import Pipeline, StepContext, StepFailed


def knowledge_base_of(ctx: StepContext) -> KnowledgeBase:
    return KnowledgeBase.objects.select_related("stack__server").get(
        pk=ctx.params["knowledge_base_id"]
    )


def documents_of(ctx: StepContext, *statuses: str) -> list[Document]:
    return list(
        Document.objects.filter(run_id=ctx.run.pk, status__in=statuses)
        .select_related("knowledge_base__stack__server")
        .order_by("id")
    )


def _send_one(ctx: StepContext, fastgpt, document: Document) -> None:
    document.status = DocumentStatus.UPLOADING
    document.save(update_fields=["status"])
    try:
        result = documents.send(fastgpt, document)
    except FastGPTError as error:
        if not error.permanent:
            # FastGPT may be restarting: the step fails and a retry sends it again.
            document.status = DocumentStatus.PENDING
            document.save(update_fields=["status"])
            raise StepFailed(str(error)) from error
        documents.fail(document, str(error))
        documents.drop_staged_copy(document)
        ctx.log(_("%(name)s: refused: %(error)s") % {"name": document.name, "error": error})
        return
    documents.record_created(document, result)
    ctx.log(
        _(
            "%(name)s: %(inserted)s chunks queued for training, %(over)s too long, "
            "%(repeated)s repeated, %(errors)s empty."
        )
        % {
            "name": document.name,
            "inserted": result.inserted,
            "over": result.over_token,
            "repeated": result.repeated,
            "errors": result.errors,
        }
    )
    if document.status == DocumentStatus.FAILED:
        ctx.log(f"{document.name}: {document.error}")


def send_documents(ctx: StepContext) -> str:
    base = knowledge_base_of(ctx)
    waiting = documents_of(ctx, DocumentStatus.PENDING, DocumentStatus.UPLOADING)
    if not waiting:
        return _("Every document is already in FastGPT.")
    with signed_in_fastgpt(base.stack) as fastgpt:
        for document in waiting:
            ctx.check_cancel()
            _send_one(ctx, fastgpt, document)
    return _("%(count)s documents sent to knowledge base “%(name)s”.") % {
        "count": len(waiting),
        "name": base.name,
    }


def _check_training(ctx: StepContext, fastgpt, base: KnowledgeBase) -> list[Document]:
    """One look at FastGPT's counts; the documents still training after it."""
    training = documents_of(ctx, DocumentStatus.TRAINING)
    if not training:
        return []
    found = {found.id: found for found in fastgpt.collections(base.fastgpt_dataset_id)}
    stall_after = timedelta(seconds=settings.TRAINING_STALL_SECONDS)
    still = []
    for document in training:
        stuck = documents.record_counts(
            document, found.get(document.fastgpt_collection_id), stall_after
        )
        if stuck:
            minutes = max(1, round(settings.TRAINING_STALL_SECONDS / 60))
            documents.fail(document, stall_reason(document, minutes))
        if document.status == DocumentStatus.READY:
            ctx.log(
                _("%(name)s: ready, %(chunks)s chunks.")
                % {"name": document.name, "chunks": document.data_amount}
            )
        elif document.status == DocumentStatus.FAILED:
            ctx.log(f"{document.name}: {document.error}")
        else:
            still.append(document)
    return still


def follow_training(ctx: StepContext) -> str:
    base = knowledge_base_of(ctx)
    shown: dict[int, tuple[int, int]] = {}
    with signed_in_fastgpt(base.stack) as fastgpt:
        while True:
            ctx.check_cancel()
            still = _check_training(ctx, fastgpt, base)
            if not still:
                break
            for document in still:
                counts = (document.data_amount, document.training_amount)
                if shown.get(document.pk) != counts:
                    shown[document.pk] = counts
                    ctx.log(
                        _("%(name)s: %(done)s chunks trained, %(queued)s still queued.")
                        % {"name": document.name, "done": counts[0], "queued": counts[1]}
                    )
            time.sleep(settings.TRAINING_POLL_SECONDS)
    failed = documents_of(ctx, DocumentStatus.FAILED)
    total = Document.objects.filter(run_id=ctx.run.pk).count()
    if failed:
        names = ", ".join(f"“{document.name}”" for document in failed[:5])
        raise StepFailed(
            _(
                "%(failed)s of %(total)s documents failed: %(names)s. Each says why on the "
                "knowledge base's page."
            )
            % {"failed": len(failed), "total": total, "names": names}
        )
    return _("%(total)s documents trained.") % {"total": total}


IMPORT = register(
    Pipeline(
        kind=PipelineKind.DATASET_IMPORT,
        steps=(
            ("send documents to FastGPT", send_documents),
            ("follow training", follow_training),
        ),
    )
)
