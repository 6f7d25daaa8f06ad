"""Model configs: the chat, embedding and rerank models a team serves, as FastGPT and
Xinference need them. Operators change them; every member sees them."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model, ProtectedError, Q
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .. import access, audit
from ..choices import Role
from ..llm import KINDS, Kind, config_errors, kind_of, launches_of, name_clash, settle_hub
from ..llm.presets import get_preset
from ..models import ChatApp, KnowledgeBase, ModelLaunch, Team
from . import ActionError


def _kind(kind: Kind | str) -> Kind:
    return kind if isinstance(kind, Kind) else KINDS[kind]


def _validate(config: Model, kind: Kind) -> None:
    """Field checks, the rules of deployments.llm and the team-wide name, each error keyed by
    its field. The (team, model) constraints are left to the name check: it spans all kinds."""
    settle = {"local_path": config.local_path, "hub": config.hub}
    settle_hub(settle)
    config.hub = settle["hub"]
    errors: dict[str, list[str]] = {}
    try:
        config.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        errors = error.message_dict
    # Only values that passed their own checks are compared: full_clean has converted them.
    values = {name: getattr(config, name) for name in kind.fields if name not in errors}
    for field, message in config_errors(kind, values).items():
        errors.setdefault(field, [message])
    if "model" not in errors:
        clash = name_clash(config.team_id, config.model, exclude=config if config.pk else None)
        if clash:
            errors["model"] = [clash]
    if errors:
        raise ValidationError(errors)


def _name_taken(config: Model) -> ValidationError:
    return ValidationError(
        {"model": _("The team already has a model named “%(model)s”.") % {"model": config.model}},
        code="unique",
    )


def do_create_model_config(
    kind: Kind | str, *, team: Team, data: dict, user, request=None, preset: str = ""
) -> Model:
    """Create a config of `kind` in `team` from `data` (field -> value). Operators may.

    Raises PermissionDenied for a too low role and ValidationError keyed by field.
    """
    kind = _kind(kind)
    access.require_role(user, team, Role.OPERATOR)
    config = kind.model(team=team)
    for name in kind.fields:
        if name in data:
            setattr(config, name, data[name])
    _validate(config, kind)
    try:
        with transaction.atomic():
            config.save()
            audit.record(
                "model.create",
                actor=user,
                request=request,
                target=config,
                details={"kind": kind.slug, "model": config.model, "preset": preset},
            )
    except IntegrityError as error:
        raise _name_taken(config) from error
    return config


def do_create_model_config_from_preset(
    key: str, *, team: Team, user, request=None, overrides: dict | None = None
) -> Model:
    """Create the config a preset describes, with `overrides` (e.g. another name) applied."""
    preset = get_preset(key)
    if preset is None:
        raise ActionError(_("There is no preset “%(key)s”.") % {"key": key})
    return do_create_model_config(
        preset.config_kind,
        team=team,
        data={**preset.values, **(overrides or {})},
        user=user,
        request=request,
        preset=key,
    )


def do_update_model_config(config: Model, *, data: dict, user, request=None) -> list[str]:
    """Change the fields of `config` given in `data`; return the names of those that changed.

    On a ValidationError the object is left as it was.
    """
    access.require_role(user, config.team_id, Role.OPERATOR)
    kind = kind_of(config)
    before = {name: getattr(config, name) for name in kind.fields}
    for name in kind.fields:
        if name in data:
            setattr(config, name, data[name])
    try:
        _validate(config, kind)
    except ValidationError:
        for name, value in before.items():
            setattr(config, name, value)
        raise
    changed = [name for name in kind.fields if getattr(config, name) != before[name]]
    if not changed:
        return []
    try:
        with transaction.atomic():
            config.save(update_fields=changed)
            audit.record(
                "model.update",
                actor=user,
                request=request,
                target=config,
                details={"kind": kind.slug, "fields": changed},
            )
    except IntegrityError as error:
        raise _name_taken(config) from error
    return changed


def _in_use(config: Model, launches) -> ActionError:
    stacks = sorted({launch.stack.name for launch in launches})
    where = ", ".join(f"“{name}”" for name in stacks)
    message = ngettext(
        "“%(model)s” cannot be deleted while it is launched on stack %(where)s: terminate it "
        "there first.",
        "“%(model)s” cannot be deleted while it is launched on stacks %(where)s: terminate it "
        "there first.",
        len(stacks),
    )
    return ActionError(message % {"model": config.model, "where": where})


def _protected(config: Model, error: ProtectedError) -> ActionError:
    users = sorted(
        f"{obj._meta.verbose_name} “{obj}”"
        for obj in error.protected_objects
        if not isinstance(obj, ModelLaunch)
    )
    return ActionError(
        _("“%(model)s” cannot be deleted while %(users)s use it.")
        % {"model": config.model, "users": ", ".join(users) or _("other records")}
    )


def _named_by(config: Model) -> list[str]:
    """The team's knowledge bases and chat apps that use this model by its name."""
    bases = KnowledgeBase.objects.filter(team_id=config.team_id).filter(
        Q(embedding_model=config.model) | Q(agent_model=config.model)
    )
    apps = ChatApp.objects.filter(team_id=config.team_id, chat_model=config.model)
    return sorted(
        [_("knowledge base “%(base)s”") % {"base": base.name} for base in bases]
        + [_("chat app “%(app)s”") % {"app": app.name} for app in apps]
    )


def do_delete_model_config(config: Model, *, user, request=None) -> None:
    """Delete `config`; refused while a launch, knowledge base or chat app refers to it."""
    access.require_role(user, config.team_id, Role.OPERATOR)
    kind = kind_of(config)
    with transaction.atomic():
        # The row lock keeps a launch from being recorded between the check and the delete.
        current = type(config).objects.select_for_update().get(pk=config.pk)
        launches = list(launches_of(current).select_related("stack", "run"))
        active = [launch for launch in launches if launch.is_active]
        if active:
            raise _in_use(current, active)
        users = _named_by(current)
        if users:
            raise ActionError(
                _("“%(model)s” cannot be deleted while %(users)s use it.")
                % {"model": current.model, "users": ", ".join(users)}
            )
        # Ended launches go with the config; their runs stay in the history.
        ModelLaunch.objects.filter(pk__in=[launch.pk for launch in launches]).delete()
        audit.record(
            "model.delete",
            actor=user,
            request=request,
            target=current,
            details={"kind": kind.slug, "model": current.model},
        )
        try:
            with transaction.atomic():
                current.delete()
        except ProtectedError as error:
            raise _protected(current, error) from error
