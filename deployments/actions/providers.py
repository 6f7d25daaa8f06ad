"""Remote model providers of a stack: add, edit, delete and test them.

Each change is saved here and carried into One API and FastGPT by a providers.sync run
(pipelines/providers_sync.py), which also tests every provider's channel. Operators may;
the API key is never written to the audit trail, a run's params or a message.
"""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import access, audit
from ..choices import PipelineKind, Role, RunStatus
from ..llm.launch import LAUNCHABLE
from ..llm.wiring import CHANNEL_NAME
from ..models import Deployment, PipelineRun, RemoteProvider, Stack
from . import ActionError
from .pipelines import do_start_run

UNDER_WAY = (RunStatus.QUEUED, RunStatus.RUNNING)
# What a person sets on a provider; the key apart, as blank keeps it.
# An IntegrityError's message: another request saved the same name in the meantime.
TAKEN = gettext_lazy("A provider of this name exists on the stack.")
FIELDS = ("name", "channel_type", "base_url", "model_names", "dataset_process", "max_context")


def sync_runs(stack: Stack):
    """The stack's provider syncs, newest first."""
    return PipelineRun.objects.filter(
        team_id=stack.team_id, kind=PipelineKind.PROVIDERS_SYNC, params__stack_id=stack.pk
    ).order_by("-id")


def _locked_ready_stack(stack: Stack) -> Stack:
    """The stack's row, locked, once it is deployed and no deploy or restart is under way."""
    stack = Stack.objects.select_for_update().get(pk=stack.pk)
    if stack.status not in LAUNCHABLE:
        raise ActionError(
            _(
                "Stack “%(stack)s” is %(status)s: deploy it before adding or testing remote "
                "providers."
            )
            % {"stack": stack.name, "status": stack.get_status_display().lower()}
        )
    if Deployment.objects.filter(stack=stack, run__status__in=UNDER_WAY).exists():
        raise ActionError(
            _("An action on stack “%(stack)s” is under way: try again once it has finished.")
            % {"stack": stack.name}
        )
    return stack


def _start_sync(stack: Stack, *, user, request, removed: list[dict] | None = None) -> PipelineRun:
    return do_start_run(
        team=stack.team,
        kind=PipelineKind.PROVIDERS_SYNC,
        params={"stack_id": stack.pk, "removed_channels": removed or []},
        user=user,
        request=request,
    )


def _check_name(stack: Stack, name: str, provider: RemoteProvider | None = None) -> None:
    if name.casefold() == CHANNEL_NAME:
        raise ValidationError(
            {"name": _("“%(name)s” is the launched models' channel.") % {"name": CHANNEL_NAME}}
        )
    same = RemoteProvider.objects.filter(stack=stack, name__iexact=name)
    if provider is not None:
        same = same.exclude(pk=provider.pk)
    if same.exists():
        raise ValidationError(
            {
                "name": _("Stack “%(stack)s” already has a provider “%(name)s”.")
                % {
                    "stack": stack.name,
                    "name": name,
                }
            }
        )


def _details(provider: RemoteProvider, stack: Stack, **extra) -> dict:
    """What the audit trail keeps of a provider: everything but its key."""
    return {
        "name": provider.name,
        "stack": stack.name,
        "channel_type": provider.channel_type,
        "base_url": provider.base_url,
        "models": list(provider.model_names),
        **extra,
    }


def do_add_provider(
    stack: Stack, *, data: dict, user, request=None
) -> tuple[RemoteProvider, PipelineRun]:
    """Save a provider on `stack` and start the sync that gives it a One API channel."""
    access.require_role(user, stack.team_id, Role.OPERATOR)
    if not data.get("api_key"):
        raise ValidationError({"api_key": _("Enter the provider's API key.")})
    try:
        with transaction.atomic():
            stack = _locked_ready_stack(stack)
            _check_name(stack, data["name"])
            provider = RemoteProvider(
                team=stack.team,
                stack=stack,
                api_key=data["api_key"],
                created_by=user if user is not None and user.is_authenticated else None,
                **{field: data[field] for field in FIELDS},
            )
            provider.save()
            run = _start_sync(stack, user=user, request=request)
            audit.record(
                "provider.add",
                actor=user,
                request=request,
                target=provider,
                details=_details(provider, stack, run=run.pk),
            )
    except IntegrityError as error:
        raise ValidationError({"name": TAKEN}) from error
    return provider, run


def do_edit_provider(provider: RemoteProvider, *, data: dict, user, request=None) -> PipelineRun:
    """Change a provider (an empty key keeps the saved one) and start the sync."""
    access.require_role(user, provider.team_id, Role.OPERATOR)
    try:
        with transaction.atomic():
            stack = _locked_ready_stack(provider.stack)
            provider = RemoteProvider.objects.select_for_update().get(pk=provider.pk)
            _check_name(stack, data["name"], provider)
            removed = []
            if data["name"] != provider.name and provider.oneapi_channel_id is not None:
                # The channel bears the old name: the sync deletes it and makes one anew.
                removed.append({"id": provider.oneapi_channel_id, "name": provider.name})
                provider.oneapi_channel_id = None
            changed = [field for field in FIELDS if getattr(provider, field) != data[field]]
            for field in FIELDS:
                setattr(provider, field, data[field])
            key_changed = bool(data.get("api_key")) and data["api_key"] != provider.api_key
            if key_changed:
                provider.api_key = data["api_key"]
            provider.save()
            run = _start_sync(stack, user=user, request=request, removed=removed)
            audit.record(
                "provider.edit",
                actor=user,
                request=request,
                target=provider,
                details=_details(provider, stack, changed=changed, key_changed=key_changed),
            )
    except IntegrityError as error:
        raise ValidationError({"name": TAKEN}) from error
    return run


def do_delete_provider(provider: RemoteProvider, *, user, request=None) -> PipelineRun | None:
    """Delete a provider. On a deployed stack a sync then deletes its channel and takes its
    models out of FastGPT; a stack that is not deployed has neither to update."""
    access.require_role(user, provider.team_id, Role.OPERATOR)
    with transaction.atomic():
        stack = Stack.objects.select_for_update().get(pk=provider.stack_id)
        provider = RemoteProvider.objects.select_for_update().get(pk=provider.pk)
        deployed = stack.status in LAUNCHABLE
        if deployed and Deployment.objects.filter(stack=stack, run__status__in=UNDER_WAY).exists():
            raise ActionError(
                _("An action on stack “%(stack)s” is under way: try again once it has finished.")
                % {"stack": stack.name}
            )
        removed = []
        if provider.oneapi_channel_id is not None:
            removed.append({"id": provider.oneapi_channel_id, "name": provider.name})
        details = _details(provider, stack)
        audit.record(
            "provider.delete", actor=user, request=request, target=provider, details=details
        )
        provider.delete()
        if not deployed:
            return None
        return _start_sync(stack, user=user, request=request, removed=removed)


def do_test_providers(stack: Stack, *, user, request=None) -> PipelineRun:
    """Start a sync of the stack's providers, which tests every channel through One API."""
    access.require_role(user, stack.team_id, Role.OPERATOR)
    with transaction.atomic():
        stack = _locked_ready_stack(stack)
        if not RemoteProvider.objects.filter(stack=stack).exists():
            raise ActionError(
                _("Stack “%(stack)s” has no remote provider to test.") % {"stack": stack.name}
            )
        run = _start_sync(stack, user=user, request=request)
        audit.record(
            "provider.test",
            actor=user,
            request=request,
            target=stack,
            details={"stack": stack.name, "run": run.pk},
        )
    return run
