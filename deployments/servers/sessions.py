"""Opening SSH sessions to a server: host-key pinning on first contact, refusal on change."""

from django.db import transaction
from django.utils import timezone

from ..clients.ssh import HostKey, HostKeyChanged, SSHClient, SSHError, generate_keypair
from ..models import Server


def open_session(server: Server) -> SSHClient:
    """A connected client for `server`. The caller closes it (it is a context manager).

    The first contact pins the host key the server offers. A different key later is
    refused: it is kept as pending for an owner to look at, and HostKeyChanged is raised.
    """
    if not server.ssh_private_key:
        raise SSHError(
            f"Server {server.name} has no SSH key yet: an owner sets one on its edit page.",
            kind="auth",
            permanent=True,
        )
    client = SSHClient.for_server(server)
    try:
        offered = client.connect()
    except HostKeyChanged as error:
        client.close()
        _keep_pending(server, error.offered)
        raise
    except BaseException:
        client.close()
        raise
    if not server.host_key:
        pin_host_key(server, offered)
    return client


def pin_host_key(server: Server, key: HostKey) -> None:
    server.host_key = key.line
    server.host_key_fingerprint = key.fingerprint
    server.host_key_pending = ""
    server.host_key_pending_fingerprint = ""
    # Only where nothing is pinned yet: two first contacts at once must not both pin.
    Server.objects.filter(pk=server.pk, host_key="").update(
        host_key=server.host_key,
        host_key_fingerprint=server.host_key_fingerprint,
        host_key_pending="",
        host_key_pending_fingerprint="",
        updated_at=timezone.now(),
    )


def _keep_pending(server: Server, offered: HostKey) -> None:
    server.host_key_pending = offered.line
    server.host_key_pending_fingerprint = offered.fingerprint
    Server.objects.filter(pk=server.pk).update(
        host_key_pending=offered.line,
        host_key_pending_fingerprint=offered.fingerprint,
    )


def install_panel_key(
    host: str,
    port: int,
    user: str,
    password: str,
    *,
    pinned_host_key: str | None = None,
    allow_local: bool = False,
) -> tuple[str, str, HostKey]:
    """Log in once with `password`, install a new key pair of the panel's, and prove it works.

    Returns (private key, public key, host key). The password is used for this one login
    and kept nowhere. A server whose host key is pinned must still offer that key.
    """
    private_key, public_key = generate_keypair()
    with SSHClient(
        host,
        port,
        user,
        password=password,
        pinned_host_key=pinned_host_key,
        allow_local=allow_local,
    ) as client:
        host_key = client.connect()
        client.install_public_key(public_key)
    # The key must work on its own before the password is forgotten.
    with SSHClient(
        host,
        port,
        user,
        private_key=private_key,
        pinned_host_key=host_key.line,
        allow_local=allow_local,
    ) as check:
        check.connect()
        check.run(["true"], timeout=30)
    return private_key, public_key, host_key


@transaction.atomic
def accept_pending_host_key(server: Server) -> tuple[str, str]:
    """Pin the pending host key; return (old fingerprint, new fingerprint)."""
    current = Server.objects.select_for_update().get(pk=server.pk)
    old, new = current.host_key_fingerprint, current.host_key_pending_fingerprint
    current.host_key = current.host_key_pending
    current.host_key_fingerprint = new
    current.host_key_pending = ""
    current.host_key_pending_fingerprint = ""
    current.last_error = ""
    current.save(
        update_fields=[
            "host_key",
            "host_key_fingerprint",
            "host_key_pending",
            "host_key_pending_fingerprint",
            "last_error",
            "updated_at",
        ]
    )
    server.refresh_from_db()
    return old, new
