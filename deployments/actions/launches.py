"""Model launches: start one on a stack's Xinference, cancel it while it loads, terminate it.

The work is done by the pipelines in pipelines/model_launch.py; these check who may, and
whether the stack and the model are in a state that allows it.
"""

from django.db import transaction
from django.utils.translation import gettext as _

from .. import access, audit
from ..choices import LaunchStatus, PipelineKind, Role, RunStatus
from ..llm import kind_of
from ..llm.launch import LAUNCHABLE
from ..models import Deployment, ModelLaunch, PipelineRun, Stack
from ..stacks.files import provider_models
from . import ActionError
from .pipelines import do_cancel_run, do_start_run

UNDER_WAY = (RunStatus.QUEUED, RunStatus.RUNNING)


def do_launch_model(config, *, stack: Stack, user, request=None) -> ModelLaunch:
    """Queue the launch of `config` on `stack`. Operators may."""
    access.require_role(user, config.team_id, Role.OPERATOR)
    if stack.team_id != config.team_id:
        raise ActionError(_("A model can only be launched on a stack of its own team."))
    kind = kind_of(config)
    with transaction.atomic():
        stack = Stack.objects.select_for_update().get(pk=stack.pk)
        if stack.status not in LAUNCHABLE:
            raise ActionError(
                _("Stack “%(stack)s” is %(status)s: deploy it before launching models on it.")
                % {"stack": stack.name, "status": stack.get_status_display().lower()}
            )
        if Deployment.objects.filter(stack=stack, run__status__in=UNDER_WAY).exists():
            raise ActionError(
                _("An action on stack “%(stack)s” is under way: launch once it has finished.")
                % {"stack": stack.name}
            )
        served_by = provider_models(stack).get(config.model)
        if served_by:
            raise ActionError(
                _(
                    "Remote provider “%(served_by)s” already serves a model called “%(model)s” on "
                    "stack “%(stack)s”: One API would have two channels for it."
                )
                % {"served_by": served_by, "model": config.model, "stack": stack.name}
            )
        same_uid = list(
            ModelLaunch.objects.filter(stack=stack, model_uid=config.model)
            .select_related("run")
            .order_by("-id")
        )
        holding = [launch for launch in same_uid if launch.is_active]
        if holding:
            raise ActionError(
                _(
                    "“%(model)s” is already %(current_status)s on stack “%(stack)s”: terminate it "
                    "first to launch it again."
                )
                % {
                    "model": config.model,
                    "current_status": holding[0].current_status,
                    "stack": stack.name,
                }
            )
        # A termination stops the uid in Xinference, whichever launch holds it by then.
        if PipelineRun.objects.filter(
            kind=PipelineKind.MODEL_TERMINATE,
            status__in=UNDER_WAY,
            params__launch_id__in=[launch.pk for launch in same_uid],
        ).exists():
            raise ActionError(
                _(
                    "“%(model)s” is being terminated on stack “%(stack)s”: launch it again once "
                    "that has finished."
                )
                % {"model": config.model, "stack": stack.name}
            )
        launch = ModelLaunch.objects.create(
            team=stack.team, stack=stack, model_uid=config.model, **{kind.slug: config}
        )
        run = do_start_run(
            team=stack.team,
            kind=PipelineKind.MODEL_LAUNCH,
            params={"launch_id": launch.pk, "stack_id": stack.pk},
            user=user,
            request=request,
        )
        launch.run = run
        launch.save(update_fields=["run"])
        audit.record(
            "model.launch",
            actor=user,
            request=request,
            target=launch,
            details={"model": config.model, "kind": kind.slug, "stack": stack.name},
        )
    return launch


def do_cancel_launch(launch: ModelLaunch, *, user, request=None) -> ModelLaunch:
    """Stop a launch under way; the pipeline cancels it in Xinference too."""
    access.require_role(user, launch.team_id, Role.OPERATOR)
    if launch.current_status not in (LaunchStatus.PENDING, LaunchStatus.LAUNCHING):
        raise ActionError(
            _("Only a launch under way can be cancelled; “%(model_uid)s” is %(current_status)s.")
            % {"model_uid": launch.model_uid, "current_status": launch.current_status}
        )
    with transaction.atomic():
        run = do_cancel_run(launch.run, user=user, request=request)
        if run.status == RunStatus.CANCELLED:
            # Cancelled before a worker took it: nothing reached Xinference.
            ModelLaunch.objects.filter(pk=launch.pk).update(
                status=LaunchStatus.TERMINATED, stage="cancelled"
            )
        audit.record(
            "model.cancel",
            actor=user,
            request=request,
            target=launch,
            details={"model": launch.model_uid, "stack": launch.stack.name},
        )
    launch.refresh_from_db()
    return launch


def terminate_run(launch: ModelLaunch) -> PipelineRun | None:
    """The termination of this launch that is under way, if any."""
    return (
        PipelineRun.objects.filter(
            kind=PipelineKind.MODEL_TERMINATE, params__launch_id=launch.pk, status__in=UNDER_WAY
        )
        .order_by("-id")
        .first()
    )


def do_terminate_model(launch: ModelLaunch, *, user, request=None) -> PipelineRun:
    """Queue stopping the model in Xinference and removing it from One API and FastGPT."""
    access.require_role(user, launch.team_id, Role.OPERATOR)
    with transaction.atomic():
        # The stack's row lock, as a launch takes it: "who holds the uid" and the new run
        # are one step.
        Stack.objects.select_for_update().get(pk=launch.stack_id)
        launch = ModelLaunch.objects.select_related("run", "stack").get(pk=launch.pk)
        status = launch.current_status
        if status in (LaunchStatus.PENDING, LaunchStatus.LAUNCHING):
            raise ActionError(
                _("“%(model_uid)s” is still launching: cancel the launch instead.")
                % {"model_uid": launch.model_uid}
            )
        if status == LaunchStatus.TERMINATED:
            raise ActionError(
                _("“%(model_uid)s” is already terminated.") % {"model_uid": launch.model_uid}
            )
        if terminate_run(launch) is not None:
            raise ActionError(
                _("“%(model_uid)s” is already being terminated.") % {"model_uid": launch.model_uid}
            )
        newer = [
            other
            for other in ModelLaunch.objects.filter(stack=launch.stack, model_uid=launch.model_uid)
            .exclude(pk=launch.pk)
            .select_related("run")
            if other.is_active
        ]
        if newer:
            # Xinference knows the model by its uid alone: stopping this launch would stop
            # the one that now holds it.
            raise ActionError(
                _(
                    "“%(model_uid)s” was launched again on stack “%(stack)s”: terminate that "
                    "launch instead."
                )
                % {"model_uid": launch.model_uid, "stack": launch.stack.name}
            )
        run = do_start_run(
            team=launch.team,
            kind=PipelineKind.MODEL_TERMINATE,
            params={"launch_id": launch.pk, "stack_id": launch.stack_id},
            user=user,
            request=request,
        )
        audit.record(
            "model.terminate",
            actor=user,
            request=request,
            target=launch,
            details={"model": launch.model_uid, "stack": launch.stack.name, "was": str(status)},
        )
    return run
