from django.conf import settings
from django.db import models

from ..choices import DeploymentAction
from .pipelines import PipelineRun
from .servers import Stack
from .teams import Team


class Deployment(models.Model):
    """One action on a stack by a user: the team's shared history.

    Its steps, timings, output and outcome live on the pipeline run it owns.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="deployments")
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="deployments")
    action = models.CharField(max_length=16, choices=DeploymentAction.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    run = models.OneToOneField(PipelineRun, on_delete=models.PROTECT, related_name="deployment")
    # Unified diff of the rendered files against the previous deployment, and the files.
    files_diff = models.TextField(blank=True)
    rendered_files = models.JSONField(default=dict, blank=True)
    # What the stack's settings were for this deployment: a rollback restores them.
    version_line = models.CharField(max_length=64, blank=True)
    stack_settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.stack.name} #{self.pk}"

    @property
    def writes_files(self) -> bool:
        """Whether the action writes the stack's files (a backup or restore reads them)."""
        return self.action not in (DeploymentAction.BACKUP, DeploymentAction.RESTORE)

    @property
    def outcome(self) -> str:
        return self.run.status
