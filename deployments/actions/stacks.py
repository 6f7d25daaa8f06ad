"""Stacks: one installation of the FastGPT + One API + Xinference stack on a server."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from .. import access, audit
from ..choices import (
    KNOWLEDGE_RUN_KINDS,
    MODEL_RUN_KINDS,
    DeploymentAction,
    PipelineKind,
    Role,
    RunStatus,
)
from ..clients.ssh import SSHError
from ..models import Deployment, KnowledgeBase, PipelineRun, Server, Stack
from ..stacks.data_dirs import data_dir_problems, stacks_sharing
from ..stacks.ports import INTERNAL_SETTING
from ..stacks.render import RenderedStack
from ..stacks.secrets import stack_secrets
from ..stacks.services import refresh_services
from ..stacks.versions import LINES
from . import ActionError
from .pipelines import do_start_run

# What a person sets on a new stack: its name, and the settings each deploy snapshots.
FIELDS = ("name", *Stack.SETTINGS_FIELDS)


def _check_publish_permission(user, stack: Stack, publish: bool) -> None:
    """Publishing One API and Xinference on the server's network is an owner's decision."""
    if (
        publish
        and not stack.publish_internal_services
        and not access.has_role(user, stack.team, Role.OWNER)
    ):
        raise PermissionDenied(
            "Only owners of the team can publish One API and Xinference on the server's network."
        )


def do_create_stack(*, server: Server, data: dict, user, request=None) -> Stack:
    """Create a stack on `server` with its own generated secrets. Operators may."""
    access.require_role(user, server.team, Role.OPERATOR)
    stack = Stack(team=server.team, server=server)
    _check_publish_permission(user, stack, bool(data.get(INTERNAL_SETTING)))
    for field in FIELDS:
        if field in data:
            setattr(stack, field, data[field])
    stack.full_clean(validate_constraints=False)
    problems = data_dir_problems(stack)
    if problems:
        raise ValidationError({"data_dir": problems})
    if Stack.objects.filter(server=server, name=stack.name).exists():
        raise ValidationError({"name": f"Server {server.name} already has a stack “{stack.name}”."})
    try:
        with transaction.atomic():
            stack.save()
            stack_secrets(stack)
            audit.record(
                "stack.create",
                actor=user,
                request=request,
                target=stack,
                details={"server": server.name, "version_line": stack.version_line},
            )
    except IntegrityError as error:
        raise ValidationError({"name": "A stack with this name exists on the server."}) from error
    return stack


def knowledge_runs(stack: Stack):
    """Imports and chatbot publishes under way on the stack's FastGPT."""
    return PipelineRun.objects.filter(
        Q(params__stack_id=stack.pk)
        | Q(
            params__knowledge_base_id__in=list(
                KnowledgeBase.objects.filter(stack=stack).values_list("pk", flat=True)
            )
        ),
        kind__in=KNOWLEDGE_RUN_KINDS,
        status__in=[RunStatus.QUEUED, RunStatus.RUNNING],
    )


def _start(stack: Stack, *, kind: str, action: str, params: dict, user, request, details=None):
    """Start a pipeline run on the stack as a Deployment: one at a time per stack."""
    with transaction.atomic():
        # The stack row lock makes "is one already running?" and the new run one step.
        Stack.objects.select_for_update().get(pk=stack.pk)
        busy = Deployment.objects.filter(
            stack=stack, run__status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
        )
        if busy.exists():
            raise ActionError(
                "Another action on this stack is under way: wait for it, or cancel it."
            )
        # A deploy may recreate Xinference or FastGPT under a model run that is using them.
        model_runs = PipelineRun.objects.filter(
            kind__in=MODEL_RUN_KINDS,
            params__stack_id=stack.pk,
            status__in=[RunStatus.QUEUED, RunStatus.RUNNING],
        )
        if model_runs.exists():
            raise ActionError(
                "A model is being launched or terminated on this stack: wait for it, or cancel "
                "the launch."
            )
        # Stacks made before each had to have its own directory may still share one.
        writes_data = kind == PipelineKind.STACK_DEPLOY or params.get("delete_data")
        sharing = stacks_sharing(stack) if writes_data else []
        if sharing:
            raise ActionError(
                _(
                    "Stack “%(other)s” on this server keeps its data in %(dir)s, inside or around "
                    "this stack's %(own)s: this would write or delete its files too. Tear one of "
                    "them down and create it again with a directory of its own."
                )
                % {"other": sharing[0].name, "dir": sharing[0].data_dir, "own": stack.data_dir}
            )
        knowledge_run = knowledge_runs(stack).first()
        if knowledge_run is not None:
            raise ActionError(
                _("“%(run)s” is under way on this stack: wait for it, or cancel it.")
                % {"run": knowledge_run.kind_label}
            )
        run = do_start_run(
            team=stack.team,
            kind=kind,
            params={"stack_id": stack.pk, **params},
            user=user,
            request=request,
        )
        deployment = Deployment.objects.create(
            team=stack.team, stack=stack, action=action, user=user, run=run
        )
        audit.record(
            f"stack.{action}",
            actor=user,
            request=request,
            target=stack,
            details={"deployment": deployment.pk, **(details or {})},
        )
    return deployment


def do_deploy_stack(stack: Stack, *, user, request=None) -> Deployment:
    """Render the stack's files from its settings and deploy them. Operators may."""
    access.require_role(user, stack.team, Role.OPERATOR)
    return _start(
        stack,
        kind=PipelineKind.STACK_DEPLOY,
        action=DeploymentAction.DEPLOY,
        params={},
        user=user,
        request=request,
    )


def do_upgrade_stack(stack: Stack, *, version_line: str, user, request=None) -> Deployment:
    """Move the stack to another version line and deploy it."""
    access.require_role(user, stack.team, Role.OPERATOR)
    if version_line not in LINES:
        raise ValidationError({"version_line": f"Unknown version line “{version_line}”."})
    with transaction.atomic():
        previous = stack.version_line
        Stack.objects.filter(pk=stack.pk).update(version_line=version_line)
        stack.version_line = version_line
        return _start(
            stack,
            kind=PipelineKind.STACK_DEPLOY,
            action=DeploymentAction.UPGRADE,
            params={},
            user=user,
            request=request,
            details={"from": previous, "to": version_line},
        )


def rollback_targets(stack: Stack):
    """Earlier deployments whose files can be written again: succeeded, with files."""
    return (
        Deployment.objects.filter(
            stack=stack,
            run__status=RunStatus.SUCCEEDED,
            action__in=[
                DeploymentAction.DEPLOY,
                DeploymentAction.UPGRADE,
                DeploymentAction.ROLLBACK,
            ],
        )
        .exclude(rendered_files={})
        .select_related("user", "run")
    )


def do_rollback_stack(stack: Stack, *, to: Deployment, user, request=None) -> Deployment:
    """Write the files of an earlier successful deployment again and restore the settings
    they were made from."""
    access.require_role(user, stack.team, Role.OPERATOR)
    if not rollback_targets(stack).filter(pk=to.pk).exists():
        raise ActionError(
            "Only an earlier successful deploy, upgrade or rollback of this stack can be "
            "rolled back to."
        )
    with transaction.atomic():
        restored = {
            name: value
            for name, value in (to.stack_settings or {}).items()
            if name in Stack.SETTINGS_FIELDS
        }
        _check_publish_permission(user, stack, bool(restored.get(INTERNAL_SETTING)))
        Stack.objects.filter(pk=stack.pk).update(**restored)
        for name, value in restored.items():
            setattr(stack, name, value)
        return _start(
            stack,
            kind=PipelineKind.STACK_DEPLOY,
            action=DeploymentAction.ROLLBACK,
            params={"files_from": to.pk},
            user=user,
            request=request,
            details={"to_deployment": to.pk},
        )


def do_restart_stack(stack: Stack, *, service: str = "", user, request=None) -> Deployment:
    """Restart one service of the stack (by its compose name), or all of them."""
    access.require_role(user, stack.team, Role.OPERATOR)
    deployed = Stack.objects.values_list("rendered_files", flat=True).get(pk=stack.pk)
    if not deployed:
        raise ActionError("This stack has not been deployed yet: deploy it first.")
    if service and service not in RenderedStack(deployed).compose_services():
        raise ActionError(f"This stack has no service “{service}”.")
    return _start(
        stack,
        kind=PipelineKind.STACK_RESTART,
        action=DeploymentAction.RESTART,
        params={"service": service},
        user=user,
        request=request,
        details={"service": service or "all"},
    )


def do_teardown_stack(
    stack: Stack, *, delete_data: bool = False, confirm_name: str = "", user, request=None
) -> Deployment:
    """Remove the stack's containers; its data only when the stack's name was typed."""
    access.require_role(user, stack.team, Role.OPERATOR)
    if delete_data and confirm_name != stack.name:
        raise ValidationError(
            {"confirm_name": f"Type the stack's name, “{stack.name}”, to delete its data."}
        )
    return _start(
        stack,
        kind=PipelineKind.STACK_TEARDOWN,
        action=DeploymentAction.TEARDOWN,
        params={"delete_data": bool(delete_data)},
        user=user,
        request=request,
        details={"delete_data": bool(delete_data)},
    )


def do_refresh_services(stack: Stack, *, user, request=None) -> dict[str, dict]:
    """Read the stack's containers from its server now and record them. Operators may: it
    opens an SSH session to the server and writes the services' rows."""
    access.require_role(user, stack.team, Role.OPERATOR)
    try:
        seen = refresh_services(stack)
    except SSHError as error:
        raise ActionError(
            f"Could not read the containers from {stack.server.name}: {error}"
        ) from error
    audit.record(
        "stack.refresh_services",
        actor=user,
        request=request,
        target=stack,
        details={"services": sorted(seen)},
    )
    return seen
