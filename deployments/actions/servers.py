"""Servers: the records of the rented GPU servers a team deploys to."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from .. import access, audit
from ..choices import Role
from ..models import Server, Team

EDITABLE_FIELDS = ("name", "host", "ssh_port", "ssh_user", "hourly_price")
KEY_FIELD = "ssh_private_key"


def _check_key_permission(user, team: Team, data: dict) -> None:
    if data.get(KEY_FIELD) and not access.has_role(user, team, Role.OWNER):
        raise PermissionDenied("Only owners of the team can set the SSH key.")


def _name_taken(name: str) -> ValidationError:
    return ValidationError(
        {"name": f"The team already has a server named “{name}”."}, code="unique"
    )


def _validate(server: Server) -> None:
    # The (team, name) constraint is checked here so that its message names the field.
    server.full_clean(validate_constraints=False)
    clash = Server.objects.filter(team_id=server.team_id, name=server.name)
    if clash.exclude(pk=server.pk).exists():
        raise _name_taken(server.name)


def do_create_server(*, team: Team, data: dict, user, request=None) -> Server:
    """Create a server in `team`. Operators may; only owners may include a key.

    Raises PermissionDenied for a too low role and ValidationError (keyed by field)
    for bad or duplicate values.
    """
    access.require_role(user, team, Role.OPERATOR)
    _check_key_permission(user, team, data)
    server = Server(team=team, created_by=user)
    given = [field for field in EDITABLE_FIELDS if field in data]
    for field in given:
        setattr(server, field, data[field])
    if data.get(KEY_FIELD):
        server.ssh_private_key = data[KEY_FIELD]
        given.append(KEY_FIELD)
    _validate(server)
    try:
        with transaction.atomic():
            server.save()
            # Field names only: the key's value never reaches the trail.
            audit.record(
                "server.create",
                actor=user,
                request=request,
                target=server,
                details={"fields": given},
            )
    except IntegrityError as error:
        raise _name_taken(server.name) from error
    return server


def do_update_server(server: Server, *, data: dict, user, request=None) -> list[str]:
    """Change the fields of `server` given in `data`; return the names of those that changed.

    An empty or missing key keeps the stored one; only owners may replace it.
    """
    access.require_role(user, server.team, Role.OPERATOR)
    _check_key_permission(user, server.team, data)
    try:
        with transaction.atomic():
            # Compare against the stored row, not an instance a form may have changed.
            current = Server.objects.select_for_update().get(pk=server.pk)
            changed = [
                field
                for field in EDITABLE_FIELDS
                if field in data and getattr(current, field) != data[field]
            ]
            for field in changed:
                setattr(current, field, data[field])
            if data.get(KEY_FIELD) and data[KEY_FIELD] != current.ssh_private_key:
                current.ssh_private_key = data[KEY_FIELD]
                changed.append(KEY_FIELD)
            if not changed:
                return []
            _validate(current)
            current.save(update_fields=[*changed, "updated_at"])
            audit.record(
                "server.update",
                actor=user,
                request=request,
                target=current,
                details={"changed": changed},
            )
    except IntegrityError as error:
        raise _name_taken(data.get("name", server.name)) from error
    server.refresh_from_db()
    return changed
