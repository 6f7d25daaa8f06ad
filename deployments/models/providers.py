"""Remote model providers: a cloud model service added to a stack's One API as a channel, so
FastGPT can use its models next to the ones the stack launches."""

from django.conf import settings
from django.db import models

from ..fields import EncryptedTextField
from .servers import Stack
from .teams import Team


class RemoteProvider(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="remote_providers")
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="remote_providers")
    name = models.CharField(max_length=30)
    # One API's channel type (1 OpenAI, 8 any OpenAI-compatible base URL, ...).
    channel_type = models.PositiveIntegerField(default=8)
    base_url = models.URLField(max_length=500, blank=True)
    # Never shown again once saved; sent only to One API.
    api_key = EncryptedTextField()
    # The chat models this provider serves, as One API and FastGPT will name them.
    model_names = models.JSONField(default=list)
    # Offer these models for file processing (FastGPT's datasetProcess: QA splitting).
    dataset_process = models.BooleanField(default=True)
    max_context = models.PositiveIntegerField(default=16000)
    oneapi_channel_id = models.PositiveIntegerField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.TextField(blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["stack", "name"], name="unique_provider_name")
        ]

    def __str__(self) -> str:
        return self.name
