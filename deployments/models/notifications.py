"""Notification channels of a team: where the panel tells people that something needs them."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..fields import EncryptedTextField
from .teams import Team


class ChannelKind(models.TextChoices):
    EMAIL = "email", _("E-mail")
    WEBHOOK = "webhook", _("Webhook (signed JSON)")
    SLACK = "slack", _("Slack")
    FEISHU = "feishu", _("Feishu (Lark)")
    DINGTALK = "dingtalk", _("DingTalk")
    WECOM = "wecom", _("WeCom")


class NotificationEvent(models.TextChoices):
    RUN_FAILED = "run_failed", _("A run failed")
    SERVER_UNREACHABLE = "server_unreachable", _("A server became unreachable")
    HOST_KEY_CHANGED = "host_key_changed", _("A server's host key changed")
    SMOKE_TEST_FLAGGED = "smoke_test_flagged", _("A model's smoke test flagged a problem")
    DOCUMENT_FAILED = "document_failed", _("A document import failed")
    IDLE_WARNING = "idle_warning", _("A server is idle (warning)")
    IDLE_STEP = "idle_step", _("An idle step was taken")
    BUDGET_THRESHOLD = "budget_threshold", _("A budget threshold was crossed")


class NotificationChannel(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notification_channels")
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    name = models.CharField(max_length=100)
    # A webhook URL (its token is the credential) or e-mail addresses, one a line. Encrypted,
    # and a URL is never shown again: `target_hint` is what the pages show of it.
    target = EncryptedTextField()
    target_hint = models.CharField(max_length=300, blank=True)
    # The webhook's signing secret (made by the panel, shown once) or a chat bot's signing
    # secret (Feishu, DingTalk). Never shown again once saved.
    secret = EncryptedTextField(blank=True)
    # NotificationEvent values this channel is sent.
    events = models.JSONField(default=list)
    # Off: refuse loopback, link-local, private and the panel's own addresses (no request
    # forgery against the panel's network). Only owners manage channels.
    allow_private = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="unique_channel_name_per_team")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def failing(self) -> bool:
        """Whether the last delivery failed (a later success clears it)."""
        if self.last_error_at is None:
            return False
        return self.last_success_at is None or self.last_error_at > self.last_success_at

    def gets(self, event: str) -> bool:
        return self.enabled and event in (self.events or [])

    def event_labels(self) -> list[str]:
        labels = dict(NotificationEvent.choices)
        return [str(labels[event]) for event in self.events or [] if event in labels]
