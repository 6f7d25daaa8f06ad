"""The Models area: a team's chat, embedding and rerank model configs, and presets to start from."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Model
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from .. import access
from ..actions import ActionError
from ..actions.llm import (
    do_create_model_config,
    do_create_model_config_from_preset,
    do_delete_model_config,
    do_update_model_config,
)
from ..choices import Role
from ..forms.launches import LaunchForm
from ..forms.llm import MODEL_CONFIG_FORMS, PresetForm
from ..llm import KINDS, Kind, launches_of
from ..llm.presets import PRESETS, get_preset
from .common import HtmxHttpRequest, add_action_errors, form_data
from .launches import launch_rows

RECENT_LAUNCHES = 10


def _kind_or_404(slug: str) -> Kind:
    try:
        return KINDS[slug]
    except KeyError:
        raise Http404("No such kind of model.") from None


def _config_or_404(request: HtmxHttpRequest, kind: Kind, pk: int) -> Model:
    return access.get_visible_or_404(kind.model.objects.select_related("team"), request.user, pk=pk)


def _operator_teams(request: HtmxHttpRequest) -> list:
    teams = list(access.teams(request.user, Role.OPERATOR))
    if not teams:
        raise PermissionDenied(_("Adding a model needs the operator role in a team."))
    return teams


def _detail(config: Model, kind: Kind):
    return redirect("model_detail", kind=kind.slug, pk=config.pk)


@login_required
def model_list(request: HtmxHttpRequest) -> HttpResponse:
    sections = []
    for kind in KINDS.values():
        configs = access.visible(
            kind.model.objects.select_related("team").annotate(launch_count=Count("modellaunch")),
            request.user,
        ).order_by("team__name", "model")
        sections.append({"kind": kind, "configs": configs})
    context = {
        "sections": sections,
        "can_add": bool(access.team_ids(request.user, Role.OPERATOR)),
    }
    return render(request, "deployments/model_list.html", context)


@login_required
def model_preset(request: HtmxHttpRequest) -> HttpResponse:
    """Choose a preset and a team; then review the filled-in form, or add it as it is."""
    teams = _operator_teams(request)
    form = PresetForm(form_data(request), teams=teams)
    if request.method == "POST" and form.is_valid():
        preset, team = get_preset(form.cleaned_data["preset"]), form.chosen_team
        if request.POST.get("action") == "add":
            try:
                config = do_create_model_config_from_preset(
                    preset.key, team=team, user=request.user, request=request
                )
            except ValidationError as error:
                # The preset's own values are valid: what can clash is its name in the team.
                messages.error(request, " ".join(error.messages))
            else:
                messages.success(
                    request, _("Model “%(model)s” added from its preset.") % {"model": config.model}
                )
                return _detail(config, preset.config_kind)
        query = urlencode({"preset": preset.key, "team": team.pk})
        return redirect(f"{reverse('model_create', args=[preset.config_kind.slug])}?{query}")
    context = {"form": form, "presets": PRESETS.values()}
    return render(request, "deployments/model_preset.html", context)


@login_required
def model_create(request: HtmxHttpRequest, kind: str) -> HttpResponse:
    kind = _kind_or_404(kind)
    teams = _operator_teams(request)
    preset = get_preset(request.GET.get("preset", ""))
    if preset is not None and preset.config_kind != kind:
        preset = None
    initial = dict(preset.values) if preset else {}
    team_id = request.GET.get("team", "")
    if team_id.isdigit() and int(team_id) in {team.pk for team in teams}:
        initial["team"] = int(team_id)
    form = MODEL_CONFIG_FORMS[kind.slug](
        form_data(request), initial=initial, user=request.user, teams=teams
    )
    if request.method == "POST" and form.is_valid():
        try:
            config = do_create_model_config(
                kind,
                team=form.chosen_team,
                data=form.cleaned_data,
                user=request.user,
                request=request,
                preset=preset.key if preset else "",
            )
        except ValidationError as error:
            add_action_errors(form, error)
        else:
            messages.success(request, _("Model “%(model)s” added.") % {"model": config.model})
            return _detail(config, kind)
    context = {"form": form, "kind": kind, "config": None, "preset": preset}
    return render(request, "deployments/model_form.html", context)


@login_required
def model_detail(request: HtmxHttpRequest, kind: str, pk: int) -> HttpResponse:
    kind = _kind_or_404(kind)
    config = _config_or_404(request, kind, pk)
    form = MODEL_CONFIG_FORMS[kind.slug](instance=config, user=request.user)
    fieldsets = [
        (legend, [(field.label, _shown(config, field.name)) for field in fields])
        for legend, fields in form.fieldsets()
    ]
    can_operate = access.has_role(request.user, config.team_id, Role.OPERATOR)
    context = {
        "config": config,
        "kind": kind,
        "fieldsets": fieldsets,
        "launches": launch_rows(launches_of(config), RECENT_LAUNCHES),
        "launch_form": LaunchForm(team=config.team) if can_operate else None,
        "can_operate": can_operate,
    }
    return render(request, "deployments/model_detail.html", context)


def _shown(config: Model, name: str):
    display = getattr(config, f"get_{name}_display", None)
    value = display() if display else getattr(config, name)
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    return "—" if value == "" else value


@login_required
def model_edit(request: HtmxHttpRequest, kind: str, pk: int) -> HttpResponse:
    kind = _kind_or_404(kind)
    config = _config_or_404(request, kind, pk)
    access.require_role(request.user, config.team_id, Role.OPERATOR)
    # The form validates a copy, so the page keeps showing the stored name until saved.
    form = MODEL_CONFIG_FORMS[kind.slug](
        form_data(request), instance=kind.model.objects.get(pk=config.pk), user=request.user
    )
    if request.method == "POST" and form.is_valid():
        try:
            changed = do_update_model_config(
                config, data=form.cleaned_data, user=request.user, request=request
            )
        except ValidationError as error:
            add_action_errors(form, error)
        else:
            if changed:
                messages.success(request, _("Model “%(model)s” saved.") % {"model": config.model})
            else:
                messages.info(request, _("Nothing changed."))
            return _detail(config, kind)
    context = {"form": form, "kind": kind, "config": config, "preset": None}
    return render(request, "deployments/model_form.html", context)


@login_required
def model_delete(request: HtmxHttpRequest, kind: str, pk: int) -> HttpResponse:
    """Confirm, then delete; refused while launches refer to the config."""
    kind = _kind_or_404(kind)
    config = _config_or_404(request, kind, pk)
    access.require_role(request.user, config.team_id, Role.OPERATOR)
    if request.method == "POST":
        try:
            do_delete_model_config(config, user=request.user, request=request)
        except ActionError as error:
            messages.error(request, str(error))
            return _detail(config, kind)
        messages.success(request, _("Model “%(model)s” deleted.") % {"model": config.model})
        return redirect("model_list")
    launches = launches_of(config).select_related("stack")
    context = {"config": config, "kind": kind, "launches": launches[:RECENT_LAUNCHES]}
    return render(request, "deployments/model_confirm_delete.html", context)
