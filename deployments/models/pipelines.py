from functools import cached_property

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..choices import RUN_TERMINAL, DeploymentAction, EventKind, PipelineKind, RunStatus, StepStatus
from .teams import Team

# A run's title by its kind (and, for a stack deploy, its deployment's action), filled in with
# the names of what it acts on. A title whose names are gone falls back to the kind's label.
RUN_TITLES = {
    PipelineKind.SERVER_PREPARE: _("Prepare %(server)s"),
    (PipelineKind.STACK_DEPLOY, DeploymentAction.DEPLOY): _("Deploy stack %(stack)s on %(server)s"),
    (PipelineKind.STACK_DEPLOY, DeploymentAction.UPGRADE): _(
        "Upgrade stack %(stack)s on %(server)s"
    ),
    (PipelineKind.STACK_DEPLOY, DeploymentAction.ROLLBACK): _(
        "Roll back stack %(stack)s on %(server)s"
    ),
    PipelineKind.STACK_DEPLOY: _("Deploy stack %(stack)s on %(server)s"),
    (PipelineKind.STACK_RESTART, "service"): _("Restart %(service)s of stack %(stack)s"),
    PipelineKind.STACK_RESTART: _("Restart stack %(stack)s on %(server)s"),
    PipelineKind.STACK_TEARDOWN: _("Tear down stack %(stack)s on %(server)s"),
    PipelineKind.STACK_BACKUP: _("Back up stack %(stack)s on %(server)s"),
    PipelineKind.STACK_RESTORE: _("Restore a backup of stack %(stack)s on %(server)s"),
    PipelineKind.MODEL_LAUNCH: _("Launch model %(model)s on %(stack)s"),
    PipelineKind.MODEL_TERMINATE: _("Terminate model %(model)s on %(stack)s"),
    PipelineKind.DATASET_IMPORT: _("Import documents into %(knowledge_base)s"),
    (PipelineKind.CHATBOT_PUBLISH, "name"): _("Publish chatbot %(name)s on %(stack)s"),
    PipelineKind.CHATBOT_PUBLISH: _("Publish a chatbot on %(stack)s"),
    PipelineKind.PROVIDERS_SYNC: _("Update remote model providers on %(stack)s"),
    PipelineKind.IDLE_NOTIFY: _("Tell the team %(server)s is idle"),
    PipelineKind.IDLE_STOP_MODELS: _("Stop the idle models on %(server)s"),
    PipelineKind.IDLE_STOP_STACKS: _("Stop the idle stacks on %(server)s"),
    PipelineKind.IDLE_POWER_OFF: _("Power off idle server %(server)s"),
    PipelineKind.IDLE_START_AGAIN: _("Start %(server)s again after idle"),
}


# The pipeline that does each action on a stack.
DEPLOYMENT_KINDS = {
    DeploymentAction.DEPLOY: PipelineKind.STACK_DEPLOY,
    DeploymentAction.UPGRADE: PipelineKind.STACK_DEPLOY,
    DeploymentAction.ROLLBACK: PipelineKind.STACK_DEPLOY,
    DeploymentAction.RESTART: PipelineKind.STACK_RESTART,
    DeploymentAction.TEARDOWN: PipelineKind.STACK_TEARDOWN,
}


def run_title(kind: str, names: dict[str, str], variant: str = "") -> str:
    """The title of a run of `kind` acting on `names` (server, stack, model, ...).

    `variant` picks a more precise title where there is one: a deployment's action, or the
    name of a param the run has (a restarted service, a published chatbot's name). Without
    every name its title needs, a run is titled by its kind's label.
    """
    for key in ((kind, variant), kind) if variant else (kind,):
        template = RUN_TITLES.get(key)
        if template is None:
            continue
        try:
            return str(template) % names
        except KeyError:
            continue
    if kind in PipelineKind.values:
        return str(PipelineKind(kind).label)
    return kind


def _model(name: str) -> type[models.Model]:
    """A model of this app by name: the run's title reads models defined after this one."""
    return apps.get_model("deployments", name)


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

    @cached_property
    def title(self) -> str:
        """What the run did to what, as a person says it: "Prepare gpu-1"."""
        names, kind, variant = self._title_parts()
        return run_title(kind, names, variant)

    def _deployment(self):
        """The deployment the run carried out, if any. A list that selected it with the runs
        (select_related("deployment__stack__server"), or a deployment's select_related("run"))
        has it already; otherwise one query reads it with its stack and server."""
        if type(self).deployment.is_cached(self):
            try:
                return self.deployment
            except ObjectDoesNotExist:
                return None
        return _model("Deployment").objects.filter(run=self).select_related("stack__server").first()

    def _title_parts(self) -> tuple[dict[str, str], str, str]:
        """The names the run's title needs, read from what its params point at, and the kind
        and variant that pick the title. A deployment's run is titled by its action."""
        params = self.params or {}
        names: dict[str, str] = {}
        kind, variant = self.kind, ""
        stack = None
        deployment = self._deployment()
        if deployment is not None:
            kind = DEPLOYMENT_KINDS.get(deployment.action, kind)
            variant = deployment.action
            stack = deployment.stack
        if params.get("launch_id"):
            launch = (
                _model("ModelLaunch")
                .objects.filter(pk=params["launch_id"], team_id=self.team_id)
                .select_related("stack")
                .first()
            )
            if launch is not None:
                names["model"] = launch.model_uid
                stack = launch.stack
        if params.get("knowledge_base_id"):
            base = (
                _model("KnowledgeBase")
                .objects.filter(pk=params["knowledge_base_id"], team_id=self.team_id)
                .only("name")
                .first()
            )
            if base is not None:
                names["knowledge_base"] = base.name
        if stack is None and params.get("stack_id"):
            stack = (
                _model("Stack")
                .objects.filter(pk=params["stack_id"], team_id=self.team_id)
                .select_related("server")
                .first()
            )
        if stack is not None:
            names["stack"] = stack.name
            names["server"] = stack.server.name
        elif params.get("server_id"):
            server = (
                _model("Server")
                .objects.filter(pk=params["server_id"], team_id=self.team_id)
                .only("name")
                .first()
            )
            if server is not None:
                names["server"] = server.name
        if params.get("service"):
            names["service"], variant = str(params["service"]), "service"
        elif params.get("name") and not variant:
            names["name"], variant = str(params["name"]), "name"
        return names, kind, variant

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
