from django.conf import settings
from django.db import models

from ..choices import RUN_TERMINAL, EventKind, PipelineKind, RunStatus, StepStatus
from .teams import Team


class PipelineRun(models.Model):
    """One run of a named pipeline (deploy, model launch, import, ...).

    `next_step` is the index of the first step not yet done: a retry starts there.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="pipeline_runs")
    kind = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    next_step = models.PositiveIntegerField(default=0)
    attempt = models.PositiveIntegerField(default=1)
    claimed_by = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def kind_label(self) -> str:
        """The pipeline's name as a person reads it; a kind no longer known, as stored."""
        if self.kind in PipelineKind.values:
            return str(PipelineKind(self.kind).label)
        return self.kind

    @property
    def is_terminal(self) -> bool:
        return self.status in RUN_TERMINAL

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class StepRun(models.Model):
    """One attempt at one step of a run. A retried step gets a new row; history stays."""

    team_path = "run__team"

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.RUNNING)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["index", "attempt"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "index", "attempt"], name="one_step_row_per_attempt"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def duration(self):
        if self.finished_at:
            return self.finished_at - self.started_at
        return None


class PipelineEvent(models.Model):
    """Append-only log of what a run did, numbered per run so a viewer can resume."""

    team_path = "run__team"

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    step_index = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="unique_event_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}"
