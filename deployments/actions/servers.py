"""Servers: the records of the rented GPU servers a team deploys to."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from .. import access, audit
from ..choices import KeySource, PipelineKind, Role
from ..clients import ssh
from ..models import Server, Team
from ..servers import sessions
from ..tasks import check_server_task
from . import ActionError
from .pipelines import do_start_run

EDITABLE_FIELDS = (
    "name",
    "host",
    "ssh_port",
    "ssh_user",
    "hourly_price",
    "price_currency",
    "allow_local_address",
)
KEY_FIELD = "ssh_private_key"
LOCAL_FIELD = "allow_local_address"


def _check_key_permission(user, team: Team, data: dict, server: Server | None = None) -> None:
    wants_key = data.get(KEY_FIELD) or data.get("key_mode") not in (None, "", "keep")
    if wants_key and not access.has_role(user, team, Role.OWNER):
        raise PermissionDenied(_("Only owners of the team can set the SSH key."))
    current = server.allow_local_address if server is not None else False
    changes_local = LOCAL_FIELD in data and bool(data[LOCAL_FIELD]) != current
    if changes_local and not access.has_role(user, team, Role.OWNER):
        raise PermissionDenied(_("Only owners of the team can allow local addresses."))


def _name_taken(name: str) -> ValidationError:
    return ValidationError(
        {"name": _("The team already has a server named “%(name)s”.") % {"name": name}},
        code="unique",
    )


def _validate(server: Server) -> None:
    # The (team, name) constraint is checked here so that its message names the field.
    server.full_clean(validate_constraints=False)
    clash = Server.objects.filter(team_id=server.team_id, name=server.name)
    if clash.exclude(pk=server.pk).exists():
        raise _name_taken(server.name)


def _key_fields(
    data: dict, *, host: str, port: int, user: str, pinned: str = "", allow_local: bool = False
) -> dict:
    """The key fields to store for the key mode in `data`; {} keeps the current key.

    "paste" stores the given private key, "generate" a new pair of the panel's, and
    "password" logs in once with the password to install a new pair (the password is
    used for that one login and kept nowhere).
    """
    mode = data.get("key_mode") or ("paste" if data.get(KEY_FIELD) else "keep")
    if mode == "paste":
        try:
            public_key = ssh.public_key_line(data[KEY_FIELD])
        except ssh.SSHError as error:
            raise ValidationError({KEY_FIELD: str(error)}) from error
        return {
            KEY_FIELD: data[KEY_FIELD],
            "ssh_public_key": public_key,
            "key_source": KeySource.PASTED,
        }
    if mode == "generate":
        private_key, public_key = ssh.generate_keypair()
        return {
            KEY_FIELD: private_key,
            "ssh_public_key": public_key,
            "key_source": KeySource.GENERATED,
        }
    if mode == "password":
        try:
            private_key, public_key, host_key = sessions.install_panel_key(
                host,
                port,
                user,
                data["ssh_password"],
                pinned_host_key=pinned or None,
                allow_local=allow_local,
            )
        except ssh.SSHError as error:
            raise ValidationError(
                _("Could not install the panel's key with that password: %(error)s")
                % {"error": error}
            ) from error
        return {
            KEY_FIELD: private_key,
            "ssh_public_key": public_key,
            "key_source": KeySource.INSTALLED_WITH_PASSWORD,
            "host_key": host_key.line,
            "host_key_fingerprint": host_key.fingerprint,
        }
    return {}


def do_create_server(*, team: Team, data: dict, user, request=None) -> Server:
    """Create a server in `team`. Operators may; only owners may give it a key.

    Raises PermissionDenied for a too low role and ValidationError (keyed by field)
    for bad or duplicate values, or a password that did not let the panel in.
    """
    access.require_role(user, team, Role.OPERATOR)
    _check_key_permission(user, team, data)
    server = Server(team=team, created_by=user)
    given = [field for field in EDITABLE_FIELDS if field in data]
    for field in given:
        setattr(server, field, data[field])
    _validate(server)
    # Validated first: a password login is attempted only for a server that will be saved.
    key_fields = _key_fields(
        data,
        host=server.host,
        port=server.ssh_port,
        user=server.ssh_user,
        allow_local=server.allow_local_address,
    )
    for field, value in key_fields.items():
        setattr(server, field, value)
    if key_fields:
        given.append(KEY_FIELD)
    try:
        with transaction.atomic():
            server.save()
            # Field names and the key's source only: never a key or password.
            audit.record(
                "server.create",
                actor=user,
                request=request,
                target=server,
                details={"fields": given, "key": server.key_source},
            )
    except IntegrityError as error:
        raise _name_taken(server.name) from error
    return server


def do_update_server(server: Server, *, data: dict, user, request=None) -> list[str]:
    """Change the fields of `server` given in `data`; return the names of those that changed.

    Key mode "keep" (or none) keeps the stored key; only owners may replace it.
    """
    access.require_role(user, server.team, Role.OPERATOR)
    _check_key_permission(user, server.team, data, server)
    target = {field: data.get(field, getattr(server, field)) for field in EDITABLE_FIELDS}
    key_fields = _key_fields(
        data,
        host=target["host"],
        port=target["ssh_port"],
        user=target["ssh_user"],
        pinned=server.host_key,
        allow_local=target[LOCAL_FIELD],
    )
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
            if key_fields and key_fields[KEY_FIELD] != current.ssh_private_key:
                for field, value in key_fields.items():
                    setattr(current, field, value)
                changed.extend(key_fields)
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


def do_accept_host_key(server: Server, *, user, request=None) -> None:
    """Trust the host key the server now offers. Owners only: it may be an interception."""
    access.require_role(user, server.team, Role.OWNER)
    if not server.host_key_pending:
        raise ActionError(_("The server offers no new host key to accept."))
    old, new = sessions.accept_pending_host_key(server)
    audit.record(
        "server.host_key_accept",
        actor=user,
        request=request,
        target=server,
        details={"old_fingerprint": old, "new_fingerprint": new},
    )


def do_check_server(server: Server, *, user, request=None) -> None:
    """Queue a check of the server: reachability and facts."""
    access.require_role(user, server.team, Role.OPERATOR)
    audit.record("server.check", actor=user, request=request, target=server)
    check_server_task.delay_on_commit(server.pk)


def do_prepare_server(server: Server, *, user, request=None):
    """Start the pipeline that installs Docker, compose and the NVIDIA toolkit."""
    access.require_role(user, server.team, Role.OPERATOR)
    if not server.has_private_key:
        raise ActionError(_("Set an SSH key for the server before preparing it."))
    return do_start_run(
        team=server.team,
        kind=PipelineKind.SERVER_PREPARE,
        params={"server_id": server.pk},
        user=user,
        request=request,
    )
