"""Remote model providers of a stack: the list, adding and editing one, deleting it, and
testing them all. The changes reach One API and FastGPT through a sync run, whose steps and
output are on its run page."""

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.providers import (
    do_add_provider,
    do_delete_provider,
    do_edit_provider,
    do_test_providers,
    sync_runs,
)
from ..choices import Role
from ..forms.providers import ProviderForm, channel_type_choices
from ..models import RemoteProvider, Stack
from .common import HtmxHttpRequest, add_action_errors, form_data

LIST_TEMPLATE = "deployments/provider_list.html"
FORM_TEMPLATE = "deployments/provider_form.html"


@dataclass(frozen=True)
class ProviderRow:
    provider: RemoteProvider
    type_label: str


def provider_rows(stack: Stack) -> list[ProviderRow]:
    labels = dict(channel_type_choices())
    providers = RemoteProvider.objects.filter(stack=stack, team_id=stack.team_id).order_by("name")
    return [
        ProviderRow(
            provider,
            labels.get(provider.channel_type)
            or _("One API channel type %(number)s") % {"number": provider.channel_type},
        )
        for provider in providers
    ]


def _visible_stack(request: HtmxHttpRequest, pk: int) -> Stack:
    return access.get_visible_or_404(
        Stack.objects.select_related("team", "server"), request.user, pk=pk
    )


def _operable_provider(request: HtmxHttpRequest, pk: int) -> RemoteProvider:
    provider = access.get_visible_or_404(
        RemoteProvider.objects.select_related("team", "stack__server", "stack__team"),
        request.user,
        pk=pk,
    )
    access.require_role(request.user, provider.team_id, Role.OPERATOR)
    return provider


def _queued(request: HtmxHttpRequest, run) -> None:
    messages.info(
        request,
        _("One API and FastGPT are being updated, and every channel tested: run #%(run)s.")
        % {"run": run.pk},
    )


@login_required
def provider_list(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = _visible_stack(request, pk)
    context = {
        "stack": stack,
        "rows": provider_rows(stack),
        "last_run": sync_runs(stack).first(),
        "can_operate": access.has_role(request.user, stack.team_id, Role.OPERATOR),
    }
    return render(request, LIST_TEMPLATE, context)


@login_required
def provider_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = _visible_stack(request, pk)
    access.require_role(request.user, stack.team_id, Role.OPERATOR)
    form = ProviderForm(form_data(request), stack=stack)
    if request.method == "POST" and form.is_valid():
        try:
            provider, run = do_add_provider(
                stack, data=form.provider_data(), user=request.user, request=request
            )
        except ValidationError as error:
            add_action_errors(form, error)
        except ActionError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request,
                _("Provider “%(name)s” added to stack “%(stack)s”.")
                % {"name": provider.name, "stack": stack.name},
            )
            _queued(request, run)
            return redirect("provider_list", pk=stack.pk)
    return render(request, FORM_TEMPLATE, {"form": form, "stack": stack, "provider": None})


@login_required
def provider_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    provider = _operable_provider(request, pk)
    stack = provider.stack
    form = ProviderForm(form_data(request), stack=stack, provider=provider)
    if request.method == "POST" and form.is_valid():
        try:
            run = do_edit_provider(
                provider, data=form.provider_data(), user=request.user, request=request
            )
        except ValidationError as error:
            add_action_errors(form, error)
        except ActionError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request, _("Provider “%(name)s” saved.") % {"name": form.cleaned_data["name"]}
            )
            _queued(request, run)
            return redirect("provider_list", pk=stack.pk)
    return render(request, FORM_TEMPLATE, {"form": form, "stack": stack, "provider": provider})


@login_required
@require_POST
def provider_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    provider = _operable_provider(request, pk)
    stack, name = provider.stack, provider.name
    try:
        run = do_delete_provider(provider, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Provider “%(name)s” deleted.") % {"name": name})
        if run is not None:
            _queued(request, run)
    return redirect("provider_list", pk=stack.pk)


@login_required
@require_POST
def provider_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = _visible_stack(request, pk)
    access.require_role(request.user, stack.team_id, Role.OPERATOR)
    try:
        run = do_test_providers(stack, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
    else:
        _queued(request, run)
    return redirect("provider_list", pk=stack.pk)
