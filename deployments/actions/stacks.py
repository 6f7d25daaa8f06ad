"""Stacks: one installation of the FastGPT + One API + Xinference stack on a server."""

import json
from dataclasses import dataclass

from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from controlpanel.login import lockout_message

from .. import access, audit
from ..choices import (
    KNOWLEDGE_RUN_KINDS,
    MODEL_RUN_KINDS,
    DeploymentAction,
    PipelineKind,
    Role,
    RunStatus,
    StackStatus,
)
from ..clients.ssh import SSHError
from ..models import Deployment, KnowledgeBase, PipelineRun, Server, Stack
from ..stacks.data_dirs import data_dir_problems, stacks_sharing
from ..stacks.endpoints import public_url
from ..stacks.ports import INTERNAL_SETTING, LOOPBACK, published_ports
from ..stacks.render import RenderedStack
from ..stacks.secrets import stack_secrets
from ..stacks.services import refresh_services
from ..stacks.versions import LINES
from ..stacks.xinference_access import ADMIN_PASSWORD, ADMIN_USERNAME
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
            _("Only owners of the team can publish One API and Xinference on the server's network.")
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
        raise ValidationError(
            {
                "name": _("Server %(server)s already has a stack “%(stack)s”.")
                % {"server": server.name, "stack": stack.name}
            }
        )
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
        raise ValidationError(
            {"name": _("A stack with this name exists on the server.")}
        ) from error
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


# The actions that write the stack's files and start its containers.
DEPLOYING_ACTIONS = (DeploymentAction.DEPLOY, DeploymentAction.UPGRADE, DeploymentAction.ROLLBACK)


def never_deployed(stack: Stack) -> bool:
    """No deploy, upgrade or rollback of the stack was ever started: nothing of it can be on
    its server. A first deploy that failed may have started containers, so it counts."""
    return (
        stack.status == StackStatus.DRAFT
        and not stack.deployments.filter(action__in=DEPLOYING_ACTIONS).exists()
    )


def torn_down(stack: Stack) -> bool:
    """The stack's last teardown succeeded and no deploy was started since: none of its
    containers runs. (A deploy after it that failed leaves the status, not the containers.)"""
    if stack.status != StackStatus.TORN_DOWN:
        return False
    teardown = (
        stack.deployments.filter(action=DeploymentAction.TEARDOWN, run__status=RunStatus.SUCCEEDED)
        .order_by("-pk")
        .first()
    )
    if teardown is None:
        return True
    return not stack.deployments.filter(action__in=DEPLOYING_ACTIONS, pk__gt=teardown.pk).exists()


@dataclass(frozen=True)
class StackOffers:
    """Which actions the stack page offers: those that apply to the stack as it is."""

    restart: bool
    upgrade: bool
    teardown: bool
    # A stack torn down with its data kept: its data may still be deleted.
    delete_data: bool


def offered_actions(stack: Stack) -> StackOffers:
    down = torn_down(stack)
    return StackOffers(
        restart=bool(stack.rendered_files) and not down,
        upgrade=not down,
        teardown=not down and not never_deployed(stack),
        delete_data=down and bool(stack.rendered_files),
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
                _("Another action on this stack is under way: wait for it, or cancel it.")
            )
        # A deploy may recreate Xinference or FastGPT under a model run that is using them.
        model_runs = PipelineRun.objects.filter(
            kind__in=MODEL_RUN_KINDS,
            params__stack_id=stack.pk,
            status__in=[RunStatus.QUEUED, RunStatus.RUNNING],
        )
        if model_runs.exists():
            raise ActionError(
                _(
                    "A model is being launched or terminated on this stack: wait for it, or cancel "
                    "the launch."
                )
            )
        # A backup reads the databases and files the action would change under it; a restore
        # stops and starts the services. Both are in the history above; this finds the runs
        # started before they were.
        backups = PipelineRun.objects.filter(
            kind__in=[PipelineKind.STACK_BACKUP, PipelineKind.STACK_RESTORE],
            params__stack_id=stack.pk,
            status__in=[RunStatus.QUEUED, RunStatus.RUNNING],
        )
        if backups.exists():
            raise ActionError(
                _("A backup or restore of this stack is under way: wait for it, or cancel it.")
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


def already_current_message(stack: Stack) -> str:
    return _(
        "The stack is on %(line)s already: choose another version line. (Deploy writes its "
        "files again as they are.)"
    ) % {"line": stack.version_line}


def do_upgrade_stack(stack: Stack, *, version_line: str, user, request=None) -> Deployment:
    """Move the stack to another version line and deploy it."""
    access.require_role(user, stack.team, Role.OPERATOR)
    if version_line not in LINES:
        raise ValidationError(
            {
                "version_line": _("Unknown version line “%(version_line)s”.")
                % {"version_line": version_line}
            }
        )
    if torn_down(stack):
        raise ActionError(_("This stack is torn down: deploy it first, then upgrade it."))
    if version_line == stack.version_line:
        raise ValidationError(
            {"version_line": already_current_message(stack)}, code="already_current"
        )
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
            _(
                "Only an earlier successful deploy, upgrade or rollback of this stack can be "
                "rolled back to."
            )
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
    stack.refresh_from_db(fields=["status"])
    if torn_down(stack):
        raise ActionError(_("This stack is torn down: deploy it to start its services again."))
    deployed = Stack.objects.values_list("rendered_files", flat=True).get(pk=stack.pk)
    if not deployed:
        raise ActionError(_("This stack has not been deployed yet: deploy it first."))
    if service and service not in RenderedStack(deployed).compose_services():
        raise ActionError(_("This stack has no service “%(service)s”.") % {"service": service})
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
    stack.refresh_from_db(fields=["status", "rendered_files"])
    if never_deployed(stack):
        raise ActionError(_("This stack was never deployed: there is nothing to tear down."))
    if torn_down(stack) and not delete_data:
        raise ActionError(
            _("This stack is torn down already: deploy it to start it again, or delete its data.")
        )
    if torn_down(stack) and not stack.rendered_files:
        raise ActionError(
            _("This stack is torn down and its data deleted already: nothing is left to remove.")
        )
    if delete_data and confirm_name != stack.name:
        raise ValidationError(
            {
                "confirm_name": _("Type the stack's name, “%(stack)s”, to delete its data.")
                % {"stack": stack.name}
            }
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
            _("Could not read the containers from %(server)s: %(error)s")
            % {"server": stack.server.name, "error": error}
        ) from error
    audit.record(
        "stack.refresh_services",
        actor=user,
        request=request,
        target=stack,
        details={"services": sorted(seen)},
    )
    return seen


# Addresses and logins ------------------------------------------------------------------

# The services a person opens in a browser, in the order the stack page lists them.
WEB_SERVICES = ("fastgpt", "oneapi", "xinference")


@dataclass(frozen=True)
class ServiceAddress:
    service: str  # the compose service
    label: str
    port: int  # on the server
    url: str  # its address on the network; empty where only the panel reaches it, by SSH
    tunnel_command: str  # where it is on the server's loopback: how to reach it from a desk
    has_login: bool


def service_addresses(stack: Stack) -> list[ServiceAddress]:
    """Where each of the stack's web services is published: FastGPT on the server's network,
    One API and Xinference there too only when the stack publishes them."""
    server = stack.server
    logins = login_names(stack)
    rows = []
    for port in published_ports(stack):
        if port.service not in WEB_SERVICES:
            continue
        on_loopback = port.bind == LOOPBACK
        rows.append(
            ServiceAddress(
                service=port.service,
                label=port.label,
                port=port.host,
                url="" if on_loopback else public_url(stack, port.service),
                tunnel_command=(
                    f"ssh -p {server.ssh_port} -L {port.host}:{LOOPBACK}:{port.host} "
                    f"{server.ssh_user}@{server.host}"
                    if on_loopback
                    else ""
                ),
                has_login=port.service in logins,
            )
        )
    return rows


@dataclass(frozen=True)
class LoginItem:
    label: str
    value: str
    secret: bool  # a password or a token, as opposed to a user name


def _stored_secrets(stack: Stack) -> dict[str, str]:
    # Read as stored: revealing a login never generates (and saves) a missing secret.
    return json.loads(stack.secrets) if stack.secrets else {}


def _logins(stack: Stack) -> dict[str, list[LoginItem]]:
    """The logins the stack keeps for its web services, by compose service: FastGPT's and One
    API's root users, and Xinference's admin where its auth is on."""
    stored = _stored_secrets(stack)
    wanted = {
        "fastgpt": [
            LoginItem(_("User name"), "root", secret=False),
            LoginItem(_("Password"), stored.get("FASTGPT_ROOT_PASSWORD", ""), secret=True),
        ],
        "oneapi": [
            LoginItem(_("User name"), "root", secret=False),
            LoginItem(_("Password"), stored.get("ONEAPI_ROOT_PASSWORD", ""), secret=True),
            LoginItem(_("Root token"), stored.get("ONEAPI_ROOT_TOKEN", ""), secret=True),
        ],
        "xinference": [
            LoginItem(_("User name"), ADMIN_USERNAME, secret=False),
            LoginItem(_("Password"), stored.get(ADMIN_PASSWORD, ""), secret=True),
        ],
    }
    # A service none of whose secrets the stack has (Xinference with its auth off) has none.
    return {
        service: items
        for service, items in wanted.items()
        if any(item.secret and item.value for item in items)
    }


def login_names(stack: Stack) -> set[str]:
    """The services whose login the stack keeps (the names only: nothing is revealed)."""
    return set(_logins(stack))


class RevealRefused(ActionError):
    """A login was not revealed; `audited` tells whether the attempt was recorded."""


def no_password_message() -> str:
    return _(
        "You log in through single sign-on and have no password here to confirm with: set one "
        "on your Account page first."
    )


def do_reveal_login(stack: Stack, *, service: str, password: str, user, request=None):
    """A service's login, for an owner who has just typed their own password again. The
    attempt is audited (never the login); a wrong password counts as a failed login toward
    the login throttle, like one on the login page. Nothing is stored: the caller shows the
    items in its answer only."""
    access.require_role(user, stack.team, Role.OWNER)
    logins = _logins(stack)
    if service not in logins:
        raise RevealRefused(_("This stack keeps no login for that service."))
    if not user.has_usable_password():
        raise RevealRefused(no_password_message())
    if not password:
        raise RevealRefused(_("Type your password to see the login."))
    # The panel's own backends: a locked account or address is refused before the password
    # is checked, and a wrong one is counted by django-axes and audited as a failed login.
    confirmed = authenticate(request, username=user.get_username(), password=password)
    ok = confirmed is not None and confirmed.pk == user.pk
    audit.record(
        "stack.login_revealed" if ok else "stack.login_reveal_failed",
        actor=user,
        request=request,
        target=stack,
        details={"service": service}
        if ok
        else {
            "service": service,
            "reason": "locked out" if getattr(request, "axes_locked_out", False) else "password",
        },
    )
    if not ok:
        if getattr(request, "axes_locked_out", False):
            raise RevealRefused(lockout_message())
        raise RevealRefused(_("That is not your password: the login stays hidden."))
    return logins[service]
