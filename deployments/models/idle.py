"""The idle guard of a server: what the team chose, and where the guard stands.

The team sets, per server, whether the guard watches it, how long it must sit idle, and the
steps to take then; deployments.idle decides when it is idle and takes the steps, one run each.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .pipelines import PipelineRun
from .servers import Server


class IdleState(models.TextChoices):
    WATCHING = "watching", _("Watching")
    IDLE = "idle", _("Idle")
    POWER_OFF_PENDING = "power_off_pending", _("Power-off pending")
    STOPPED = "stopped", _("Stopped by the idle guard")


class IdleStep(models.TextChoices):
    """The steps in the order the guard takes them; each is one run."""

    NOTIFY = "notify", _("Tell the team")
    STOP_MODELS = "stop_models", _("Stop the models")
    STOP_STACKS = "stop_stacks", _("Stop the stacks")
    POWER_OFF = "power_off", _("Power the server off")


class IdleGuard(models.Model):
    team_path = "server__team"

    server = models.OneToOneField(Server, on_delete=models.CASCADE, related_name="idle_guard")
    enabled = models.BooleanField(
        default=False,
        help_text=_("Act when nobody has used the server for the idle time."),
    )
    idle_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(10), MaxValueValidator(7 * 24 * 60)],
        help_text=_("How long no model may get a request and the GPUs sit near zero."),
    )
    notify = models.BooleanField(default=True, help_text=_("Tell the team's channels."))
    stop_models = models.BooleanField(default=True, help_text=_("Terminate the running models."))
    stop_stacks = models.BooleanField(
        default=False, help_text=_("Stop the stacks' containers (compose stop); data is kept.")
    )
    power_off = models.BooleanField(
        default=False, help_text=_("Power the server off (shutdown -h) after the grace period.")
    )
    grace_minutes = models.PositiveIntegerField(
        default=15,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text=_("Time to press “Keep running” before the power-off."),
    )

    state = models.CharField(max_length=20, choices=IdleState.choices, default=IdleState.WATCHING)
    # Since when no request reached a model and the GPUs sat near zero, as far as the checks
    # saw; None until the first check that could tell.
    quiet_since = models.DateTimeField(null=True, blank=True)
    # Each watched stack's request counter at the last check: {"<stack id>": total}.
    request_counts = models.JSONField(default=dict, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    # What the last check found: sentences as codes with their values, written out in the
    # reader's language (idle/notes.py).
    note = models.JSONField(default=list, blank=True)
    # The steps taken (IdleStep values) since the server was last found idle, and the run of
    # the latest one.
    steps_taken = models.JSONField(default=list, blank=True)
    step_run = models.ForeignKey(
        PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    power_off_at = models.DateTimeField(null=True, blank=True)
    # What the guard stopped, so that "Start again" brings it back: launches' ids and stacks' ids.
    stopped_launches = models.JSONField(default=list, blank=True)
    stopped_stacks = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"idle guard of {self.server_id}"

    def chosen_steps(self) -> list[str]:
        return [step for step in IdleStep.values if getattr(self, step)]

    @property
    def powered_off(self) -> bool:
        """The guard powered the server off, and nobody has started it again since."""
        return self.enabled and IdleStep.POWER_OFF in self.steps_taken

    @property
    def warning(self) -> bool:
        """Idle and not stopped yet: "Keep running" still helps."""
        return self.enabled and self.state in (IdleState.IDLE, IdleState.POWER_OFF_PENDING)
