"""Backups of a stack's data: each one a folder on the stack's server, made by a run."""

from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..choices import RunStatus
from .pipelines import PipelineRun
from .servers import Stack
from .teams import Team

# How many successful backups a stack keeps on its server unless its settings say otherwise.
DEFAULT_KEEP_LAST = 7


class BackupStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class StackBackup(models.Model):
    """One backup of a stack: its databases' dumps and its files, in `folder` on the server.

    `files` lists what the folder holds: [{"name", "size", "sha256"}], the sizes and checksums
    as the server computed them. `removed_at` is set once the folder was deleted (retention).
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="stack_backups")
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="backups")
    run = models.OneToOneField(
        PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="backup"
    )
    folder = models.CharField(max_length=600)
    files = models.JSONField(default=list, blank=True)
    total_size = models.BigIntegerField(default=0)
    duration_seconds = models.FloatField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=BackupStatus.choices, default=BackupStatus.RUNNING
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Backup of {self.stack.name} #{self.pk} ({self.status})"

    @property
    def current_status(self) -> str:
        """The backup's status, failed as soon as its run failed or was cancelled."""
        if self.status == BackupStatus.RUNNING and (
            self.run is None or self.run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
        ):
            return BackupStatus.FAILED
        return self.status

    def get_current_status_display(self) -> str:
        return str(BackupStatus(self.current_status).label)

    @property
    def downloadable(self) -> bool:
        return self.status == BackupStatus.SUCCEEDED and self.removed_at is None

    @property
    def duration(self) -> timedelta | None:
        if self.duration_seconds is None:
            return None
        return timedelta(seconds=round(self.duration_seconds))

    @property
    def checksum_short(self) -> str:
        """The first characters of the first file's checksum: enough to tell backups apart."""
        for entry in self.files or []:
            if entry.get("sha256"):
                return entry["sha256"][:12]
        return ""


class StackBackupSettings(models.Model):
    """How many backups a stack keeps, and when beat backs it up by itself (off by default)."""

    team_path = "stack__team"

    stack = models.OneToOneField(Stack, on_delete=models.CASCADE, related_name="backup_settings")
    keep_last = models.PositiveSmallIntegerField(
        _("backups kept"),
        default=DEFAULT_KEEP_LAST,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("Older backups are deleted from the server after each backup."),
    )
    schedule_enabled = models.BooleanField(_("back up every day"), default=False)
    schedule_hour = models.PositiveSmallIntegerField(
        _("hour (UTC)"), default=3, validators=[MaxValueValidator(23)]
    )
    before_upgrade = models.BooleanField(
        _("back up before each upgrade"),
        default=True,
        help_text=_("An upgrade first backs the data up, as a step of its own run."),
    )
    # The day the schedule last started a backup: one a day, whichever worker beat wakes.
    last_scheduled_on = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Backup settings of {self.stack.name}"


def failed_backups():
    """A filter for backups that failed: their run failed, was cancelled or is gone."""
    return (
        models.Q(status=BackupStatus.FAILED)
        | models.Q(
            status=BackupStatus.RUNNING, run__status__in=[RunStatus.FAILED, RunStatus.CANCELLED]
        )
        | models.Q(status=BackupStatus.RUNNING, run__isnull=True)
    )


def backup_settings(stack: Stack) -> StackBackupSettings:
    """The stack's backup settings; the defaults (kept unsaved) where it has none yet."""
    found = StackBackupSettings.objects.filter(stack=stack).first()
    return found if found is not None else StackBackupSettings(stack=stack)
