"""Documents of a knowledge base: sent to FastGPT, followed through training, deleted.

The panel's Document row mirrors a FastGPT collection. Its counts come from collection/list;
"ready" means every chunk left the training queue and at least one was stored.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from ..choices import DocumentSource, DocumentStatus, TrainingType
from ..clients.fastgpt import Collection, CreateResult, FastGPTClient
from ..models import Document
from ..notifications import notify
from . import staging
from .session import signed_in_fastgpt

# FastGPT's V4.8.8 docs: chunk mode takes 100 to 3000 characters a chunk.
CHUNK_SIZE_RANGE = (100, 3000)
DEFAULT_CHUNK_SIZE = 512


def send(fastgpt: FastGPTClient, document: Document) -> CreateResult:
    """Create the document's collection in FastGPT from its file, text or link."""
    dataset_id = document.knowledge_base.fastgpt_dataset_id
    options = {
        "training_type": document.training_type,
        "chunk_size": document.chunk_size,
        "chunk_splitter": document.chunk_splitter,
        # Found again by this id if the panel ever has to match a collection to its row.
        "metadata": {"panelDocumentId": document.pk},
    }
    if document.source == DocumentSource.TEXT:
        return fastgpt.create_text(dataset_id, document.name, document.text, **options)
    if document.source == DocumentSource.LINK:
        return fastgpt.create_link(dataset_id, document.name, **options)
    path = staging.staged_path(document.staged_file)
    return fastgpt.upload_file(dataset_id, path, document.name, **options)


def record_created(document: Document, result: CreateResult) -> None:
    """Keep FastGPT's answer; a document with no chunk to train fails at once, saying why."""
    now = timezone.now()
    document.fastgpt_collection_id = result.collection_id
    document.inserted_chunks = result.inserted
    document.over_token_chunks = result.over_token
    document.repeated_chunks = result.repeated
    document.error_chunks = result.errors
    document.training_amount = result.inserted
    document.progressed_at = now
    document.status = DocumentStatus.TRAINING
    if result.inserted == 0:
        document.status = DocumentStatus.FAILED
        document.finished_at = now
        if result.over_token:
            document.error = _(
                "All %(count)s chunks are longer than the embedding model takes, so none can be "
                "trained. Import it again with a smaller chunk size."
            ) % {"count": result.over_token}
        else:
            document.error = _("FastGPT found no text to train in it.")
    document.save()
    if document.status == DocumentStatus.FAILED:
        notify.document_failed(document)


def record_counts(document: Document, found: Collection | None, stall_after: timedelta) -> bool:
    """Update a training document from collection/list; True when the caller must find out why
    it stands still (no progress for `stall_after`). Saves only what changed."""
    now = timezone.now()
    if found is None:
        fail(document, _("The document is gone from FastGPT (was it deleted there?)."))
        return False
    counts = (found.data_amount, found.training_amount)
    if counts != (document.data_amount, document.training_amount):
        document.data_amount, document.training_amount = counts
        document.progressed_at = now
        document.save(update_fields=["data_amount", "training_amount", "progressed_at"])
    if found.trained:
        document.status = DocumentStatus.READY
        document.finished_at = now
        document.save(update_fields=["status", "finished_at"])
        drop_staged_copy(document)
        return False
    since = document.progressed_at or document.created_at
    return now - since > stall_after


def drop_staged_copy(document: Document) -> None:
    """FastGPT has the file (or will never take it): the panel's copy goes."""
    staging.discard(document.staged_file)
    document.staged_file = ""
    Document.objects.filter(pk=document.pk).update(staged_file="")


def fail(document: Document, reason: str) -> None:
    document.status = DocumentStatus.FAILED
    document.error = reason
    document.finished_at = timezone.now()
    document.save(update_fields=["status", "error", "finished_at"])
    notify.document_failed(document)


def delete_collection(document: Document) -> None:
    """Delete the document's collection in FastGPT, with its chunks (queued ones too)."""
    base = document.knowledge_base
    if document.fastgpt_collection_id and base.fastgpt_dataset_id:
        with signed_in_fastgpt(base.stack) as fastgpt:
            fastgpt.delete_collection(document.fastgpt_collection_id)


def delete(document: Document) -> None:
    """Delete the document in FastGPT, its staged copy, then the row."""
    delete_collection(document)
    staging.discard(document.staged_file)
    document.delete()


@dataclass(frozen=True)
class Retry:
    """A one-click "import again with …": its label and the settings it changes."""

    label: str
    training_type: str
    chunk_size: int


def retry_options(document: Document) -> list[Retry]:
    """Ways to import a failed document again that may get past what stopped it."""
    if document.status != DocumentStatus.FAILED:
        return []
    if document.source == DocumentSource.FILE and not document.staged_file:
        return []
    options = []
    smaller = max(CHUNK_SIZE_RANGE[0], document.chunk_size // 2)
    if smaller < document.chunk_size:
        options.append(
            Retry(
                _("Import again with chunks of %(size)s characters") % {"size": smaller},
                TrainingType.CHUNK,
                smaller,
            )
        )
    if document.training_type == TrainingType.QA:
        options.append(
            Retry(_("Import again as plain chunks"), TrainingType.CHUNK, document.chunk_size)
        )
    if not options:
        options.append(Retry(_("Import again"), document.training_type, document.chunk_size))
    return options
