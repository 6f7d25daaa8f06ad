from django.conf import settings
from django.db import models

from ..choices import DocumentStatus, TrainingType
from .llm import EmbeddingModelConfig, LLMModelConfig
from .pipelines import PipelineRun
from .servers import Stack
from .teams import Team


class KnowledgeBase(models.Model):
    """A FastGPT dataset."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="knowledge_bases")
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="knowledge_bases")
    name = models.CharField(max_length=100)
    intro = models.TextField(blank=True)
    embedding_model = models.ForeignKey(EmbeddingModelConfig, on_delete=models.PROTECT)
    agent_model = models.ForeignKey(LLMModelConfig, on_delete=models.PROTECT)
    fastgpt_dataset_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Document(models.Model):
    """A file uploaded into a knowledge base, with its training progress."""

    team_path = "knowledge_base__team"

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="documents"
    )
    filename = models.CharField(max_length=255)
    size_bytes = models.PositiveBigIntegerField(default=0)
    training_type = models.CharField(
        max_length=8, choices=TrainingType.choices, default=TrainingType.CHUNK
    )
    chunk_size = models.PositiveIntegerField(default=512)
    fastgpt_collection_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=DocumentStatus.choices, default=DocumentStatus.PENDING
    )
    data_amount = models.PositiveIntegerField(default=0)
    training_amount = models.PositiveIntegerField(default=0)
    run = models.OneToOneField(
        PipelineRun, null=True, blank=True, on_delete=models.PROTECT, related_name="document"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.filename


class ChatApp(models.Model):
    """A FastGPT app bound to knowledge bases."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="chat_apps")
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="chat_apps")
    name = models.CharField(max_length=100)
    llm = models.ForeignKey(LLMModelConfig, on_delete=models.PROTECT)
    knowledge_bases = models.ManyToManyField(KnowledgeBase, blank=True, related_name="chat_apps")
    system_prompt = models.TextField(blank=True)
    fastgpt_app_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ShareLink(models.Model):
    """A published FastGPT share link of a chat app."""

    team_path = "app__team"

    app = models.ForeignKey(ChatApp, on_delete=models.CASCADE, related_name="share_links")
    name = models.CharField(max_length=100)
    fastgpt_share_id = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name
