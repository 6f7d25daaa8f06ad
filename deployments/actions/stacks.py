"""Stacks: one installation of the FastGPT + One API + Xinference stack on a server."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .. import access, audit
from ..choices import DeploymentAction, Role, RunStatus, StackStatus
from ..models import Deployment, Server, Stack
from ..stacks.secrets import stack_secrets
from . import ActionError

FIELDS = (
    "name",
    "version_line",
    "registry",
    "registry_prefix",
    "fastgpt_port",
    "oneapi_port",
    "xinference_port",
    "expose_database_ports",
    "xinference_device",
    "data_dir",
)


def do_create_stack(*, server: Server, data: dict, user, request=None) -> Stack:
    """Create a stack on `server` with its own generated secrets. Operators may."""
    access.require_role(user, server.team, Role.OPERATOR)
    stack = Stack(team=server.team, server=server)
    for field in FIELDS:
        if field in data:
            setattr(stack, field, data[field])
    stack.full_clean(validate_constraints=False)
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


def do_deploy_stack(stack: Stack, *, user, request=None, action=DeploymentAction.DEPLOY):
    """Start a deployment of the stack: one at a time per stack."""
    access.require_role(user, stack.team, Role.OPERATOR)
    from ..pipelines.stack_deploy import KIND
    from .pipelines import do_start_run

    with transaction.atomic():
        # The stack row lock makes "is one already running?" and the new run one step.
        Stack.objects.select_for_update().get(pk=stack.pk)
        busy = Deployment.objects.filter(
            stack=stack, run__status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
        )
        if busy.exists():
            raise ActionError(
                "A deployment of this stack is already under way: wait for it, or cancel it."
            )
        run = do_start_run(
            team=stack.team, kind=KIND, params={"stack_id": stack.pk}, user=user, request=request
        )
        deployment = Deployment.objects.create(
            team=stack.team, stack=stack, action=action, user=user, run=run
        )
        Stack.objects.filter(pk=stack.pk).update(status=StackStatus.DEPLOYING)
        audit.record(
            f"stack.{action}",
            actor=user,
            request=request,
            target=stack,
            details={"deployment": deployment.pk},
        )
    return deployment
