"""What the panel keeps of the FastGPT objects it made: knowledge bases (datasets), their
documents (collections) with training progress, chat apps and their share links.

Models are named by the ids FastGPT knows them by (its `model` field), not by the panel's
model configs: a knowledge base may use a remote provider's model as well as a launched one.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..choices import DocumentSource, DocumentStatus, TrainingType
from .pipelines import PipelineRun
from .servers import Stack
from .teams import Team


class KnowledgeBase(models.Model):
    """A FastGPT dataset."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="knowledge_bases")
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="knowledge_bases")
    name = models.CharField(max_length=100)
    intro = models.TextField(blank=True)
    embedding_model = models.CharField(max_length=100)
    # FastGPT's agentModel: the LLM that turns files into question/answer pairs (QA mode).
    agent_model = models.CharField(max_length=100)
    fastgpt_dataset_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["stack", "name"], name="unique_knowledge_base_name")
        ]

    def __str__(self) -> str:
        return self.name


class Document(models.Model):
    """A file, text or link imported into a knowledge base, with its training progress."""

    team_path = "knowledge_base__team"

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="documents"
    )
    source = models.CharField(
        max_length=8, choices=DocumentSource.choices, default=DocumentSource.FILE
    )
    # The file's name, the text's title or the link.
    name = models.CharField(max_length=1000)
    size_bytes = models.PositiveBigIntegerField(default=0)
    # Where the upload waits (relative to DOCUMENT_STAGING_DIR) until it reaches FastGPT;
    # emptied once it is imported or has failed. Pasted text waits in `text`.
    staged_file = models.CharField(max_length=255, blank=True)
    text = models.TextField(blank=True)
    training_type = models.CharField(
        max_length=8, choices=TrainingType.choices, default=TrainingType.CHUNK
    )
    chunk_size = models.PositiveIntegerField(default=512)
    chunk_splitter = models.CharField(max_length=100, blank=True)
    fastgpt_collection_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.PENDING
    )
    # FastGPT's answer to the create call.
    inserted_chunks = models.PositiveIntegerField(default=0)
    over_token_chunks = models.PositiveIntegerField(default=0)
    repeated_chunks = models.PositiveIntegerField(default=0)
    error_chunks = models.PositiveIntegerField(default=0)
    # collection/list's counts: chunks stored, chunks still in the training queue.
    data_amount = models.PositiveIntegerField(default=0)
    training_amount = models.PositiveIntegerField(default=0)
    # When the counts last moved: training that stands still too long fails the document.
    progressed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    run = models.ForeignKey(
        PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="documents"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_finished(self) -> bool:
        return self.status in (DocumentStatus.READY, DocumentStatus.FAILED)


class ChatApp(models.Model):
    """A FastGPT app bound to knowledge bases; every change publishes a new version."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="chat_apps")
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="chat_apps")
    name = models.CharField(max_length=100)
    chat_model = models.CharField(max_length=100)
    knowledge_bases = models.ManyToManyField(KnowledgeBase, blank=True, related_name="chat_apps")
    system_prompt = models.TextField(blank=True)
    # The dataset search node's settings: minimum similarity (0-1), quote budget in tokens.
    similarity = models.FloatField(default=0.4)
    quote_limit = models.PositiveIntegerField(default=1500)
    using_rerank = models.BooleanField(default=False)
    fastgpt_app_id = models.CharField(max_length=64, blank=True)
    versions_published = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["stack", "name"], name="unique_chat_app_name")
        ]

    def __str__(self) -> str:
        return self.name


class ShareLink(models.Model):
    """A published FastGPT share link of a chat app."""

    team_path = "app__team"

    app = models.ForeignKey(ChatApp, on_delete=models.CASCADE, related_name="share_links")
    name = models.CharField(max_length=100)
    show_references = models.BooleanField(
        default=False, help_text=_("Show the quoted passages under each answer.")
    )
    # Requests per minute; FastGPT's community edition does not enforce it (contract 6).
    qpm = models.PositiveIntegerField(default=100)
    expires_at = models.DateTimeField(null=True, blank=True)
    fastgpt_share_id = models.CharField(max_length=64, blank=True)
    # The outLink's Mongo _id: FastGPT deletes by it, not by the shareId (K9).
    fastgpt_link_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name
