"""How long staged copies of documents are kept, for the hourly sweep.

A copy is kept while its document waits to be sent or trains. Once FastGPT has the file
trained the copy goes at once (documents.drop_staged_copy). A failed document keeps its copy
for DOCUMENT_RETRY_HOURS, so "import again with ..." needs no new upload; so does a failed
one-click chatbot whose documents were not made yet, for its retry.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from ..choices import RUN_RETRYABLE, DocumentStatus, PipelineKind, RunStatus
from ..models import Document, PipelineRun
from .documents import drop_staged_copy


def retry_deadline():
    """Failures older than this have had their time for an import again."""
    return timezone.now() - timedelta(hours=settings.DOCUMENT_RETRY_HOURS)


def kept_until(document: Document):
    """When a failed document's staged copy goes; None while nothing is planned."""
    if document.status != DocumentStatus.FAILED or not document.staged_file:
        return None
    if document.finished_at is None:
        return None
    return document.finished_at + timedelta(hours=settings.DOCUMENT_RETRY_HOURS)


def expire_failed_copies() -> int:
    """Drop the staged copies of documents that failed longer ago than the retry window."""
    stale = Document.objects.filter(
        status=DocumentStatus.FAILED, finished_at__lt=retry_deadline()
    ).exclude(staged_file="")
    count = 0
    for document in stale:
        drop_staged_copy(document)
        count += 1
    return count


def kept_files() -> set[str]:
    """The staged files something may still import."""
    kept = set(Document.objects.exclude(staged_file="").values_list("staged_file", flat=True))
    # A publish that succeeded made a document of every file.
    chatbots = PipelineRun.objects.filter(kind=PipelineKind.CHATBOT_PUBLISH).exclude(
        status=RunStatus.SUCCEEDED
    )
    deadline = retry_deadline()
    for params, status, finished_at in chatbots.values_list("params", "status", "finished_at"):
        if status in RUN_RETRYABLE and finished_at is not None and finished_at < deadline:
            continue
        kept.update(file.get("staged", "") for file in params.get("files", []))
    return kept
