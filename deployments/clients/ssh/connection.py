"""The connection: open it, check the server's host key against the pinned one, log in, close."""

import errno
import socket
import time
from typing import Self

import paramiko

from ... import addresses
from .errors import SSHError, _address
from .keys import HOST_KEY_ALGORITHMS, HostKey, HostKeyChanged, load_private_key

KEEPALIVE_SECONDS = 30


def _caused_by(
    error: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]
) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class SSHConnection:
    """One SSH connection to one server, as one user; SSHClient adds commands and files to it.

    `connect()` opens it and returns the server's host key, `close()` ends it, and it is a
    context manager. Commands and files take the transport from `_connected()`, which
    connects first if that has not happened yet.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        *,
        private_key: str | None = None,
        password: str | None = None,
        pinned_host_key: str | None = None,
        connect_timeout: float = 10,
        command_timeout: float = 600,
        allow_local: bool = False,
    ) -> None:
        self.host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        self.port = port
        self.user = user
        self._private_key = private_key
        self._password = password
        self.pinned_host_key = pinned_host_key
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        # The panel's own machine and link-local addresses only where an owner allowed them.
        self.allow_local = allow_local
        self.host_key: HostKey | None = None
        self._transport: paramiko.Transport | None = None

    @classmethod
    def for_server(cls, server, *, password: str | None = None) -> Self:
        return cls(
            server.host,
            server.ssh_port,
            server.ssh_user,
            private_key=server.ssh_private_key or None,
            password=password,
            pinned_host_key=server.host_key or None,
            allow_local=server.allow_local_address,
        )

    @property
    def address(self) -> str:
        return _address(self.host, self.port)

    def connect(self) -> HostKey:
        """Open the connection, check the host key, log in; return the server's host key."""
        if self._transport is not None and self._transport.is_active():
            return self.host_key
        self.close()
        pinned = self._pinned()
        pkey = load_private_key(self._private_key) if self._private_key else None
        if pkey is None and not self._password:
            raise SSHError(
                f"There is no private key or password to log in to {self.address} with.",
                kind="auth",
            )
        deadline = time.monotonic() + self.connect_timeout
        sock = self._open_socket()
        # Without it, each channel opening waits out a delayed ACK (about 40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        self._transport = transport
        try:
            offered = self._handshake(transport, pinned, deadline)
            if pinned is not None and offered.line != pinned.line:
                raise HostKeyChanged(self.host, self.port, offered, pinned.fingerprint)
            self._authenticate(transport, pkey)
            transport.set_keepalive(KEEPALIVE_SECONDS)
        except BaseException:
            self.close()
            raise
        self.host_key = offered
        return offered

    def _pinned(self) -> HostKey | None:
        if not self.pinned_host_key:
            return None
        try:
            return HostKey.from_line(self.pinned_host_key)
        except ValueError as e:
            raise SSHError(
                f"The pinned host key of {self.address} is not a valid key ({e}). An owner "
                "needs to accept the server's key again.",
                kind="host_key_unknown",
            ) from None

    def _open_socket(self) -> socket.socket:
        try:
            resolved = addresses.resolve(self.host, self.port)
        except (socket.gaierror, UnicodeError):
            raise SSHError(
                f"Cannot find the host {self.host}: the name does not resolve. Check its "
                "spelling and the DNS.",
                kind="unreachable",
            ) from None
        if not self.allow_local:
            try:
                addresses.refuse_local(resolved)
            except addresses.LocalAddress as error:
                raise SSHError(str(error), kind="local_address") from None
        # The addresses checked are the ones connected to: no second lookup.
        failure: OSError | None = None
        for address in resolved.addresses:
            try:
                return socket.create_connection(
                    (str(address), self.port), timeout=self.connect_timeout
                )
            except OSError as error:
                failure = error
        raise self._unreachable(failure)

    def _unreachable(self, error: OSError | None) -> SSHError:
        if isinstance(error, TimeoutError):
            return SSHError(
                f"{self.address} did not answer within {self.connect_timeout:g} seconds. Is "
                "the address right and the port open to the panel?",
                kind="timeout",
            )
        if isinstance(error, ConnectionRefusedError):
            return SSHError(
                f"Cannot reach {self.address}: connection refused. Is the server up and the "
                "port open?",
                kind="unreachable",
            )
        reasons = {
            errno.EHOSTUNREACH: "no route to host",
            errno.ENETUNREACH: "the network is unreachable",
        }
        errno_ = getattr(error, "errno", None)
        reason = reasons.get(errno_, ((error and error.strerror) or str(error)).lower())
        return SSHError(
            f"Cannot reach {self.address}: {reason}. Check the address and the network.",
            kind="unreachable",
        )

    def _handshake(
        self, transport: paramiko.Transport, pinned: HostKey | None, deadline: float
    ) -> HostKey:
        remaining = max(deadline - time.monotonic(), 0.1)
        transport.banner_timeout = remaining
        transport.handshake_timeout = remaining
        transport.auth_timeout = self.connect_timeout
        if pinned is not None:
            # Ask for the pinned key's type first, so a server with several host keys
            # offers the one we know.
            options = transport.get_security_options()
            known = options.key_types
            preferred = [a for a in HOST_KEY_ALGORITHMS[pinned.key_type] if a in known]
            options.key_types = tuple(preferred + [a for a in known if a not in preferred])
        timed_out = SSHError(
            f"{self.address} accepted the connection but did not complete the SSH handshake "
            f"within {self.connect_timeout:g} seconds. Is it an SSH port?",
            kind="timeout",
        )
        try:
            transport.start_client(timeout=remaining)
        except paramiko.SSHException as e:
            if _caused_by(e, TimeoutError):
                raise timed_out from None
            if _caused_by(e, (EOFError, ConnectionError)):
                raise SSHError(
                    f"{self.address} closed the connection before SSH started. Is it an SSH "
                    "port, and does the server accept connections from the panel?",
                    kind="protocol",
                ) from None
            raise SSHError(
                f"The SSH handshake with {self.address} failed: {e}.", kind="protocol"
            ) from None
        except (OSError, EOFError) as e:
            raise SSHError(
                f"The connection to {self.address} broke during the SSH handshake: {e}.",
                kind="unreachable",
            ) from None
        try:
            return HostKey.from_pkey(transport.get_remote_server_key())
        except paramiko.SSHException:
            # start_client returns quietly when its timeout passes before the key exchange ends.
            raise timed_out from None

    def _authenticate(self, transport: paramiko.Transport, pkey: paramiko.PKey | None) -> None:
        refused: list[str] = []
        allowed: list[str] = []
        for method, secret in (("key", pkey), ("password", self._password)):
            if not secret:
                continue
            try:
                if method == "key":
                    transport.auth_publickey(self.user, secret)
                else:
                    transport.auth_password(self.user, secret)
            except paramiko.BadAuthenticationType as e:
                allowed = list(e.allowed_types)
                refused.append(method)
                continue
            except paramiko.AuthenticationException as e:
                if "timeout" in str(e).lower():
                    raise SSHError(
                        f"{self.address} did not answer the login for user {self.user} within "
                        f"{self.connect_timeout:g} seconds.",
                        kind="timeout",
                    ) from None
                refused.append(method)
                continue
            except (paramiko.SSHException, OSError, EOFError) as e:
                raise SSHError(
                    f"The connection to {self.address} broke while logging in: {e}.",
                    kind="unreachable",
                ) from None
            if transport.is_authenticated():
                return
            refused.append(method)
        what = " or ".join(f"the {m}" for m in refused)
        message = f"The server refused {what} for user {self.user}."
        if allowed:
            message += f" It accepts only: {', '.join(allowed)}."
        elif "key" in refused:
            message += (
                f" Check that the panel's public key is in ~{self.user}/.ssh/authorized_keys "
                "on the server and that the user name is right."
            )
        raise SSHError(message, kind="auth")

    def _connected(self) -> paramiko.Transport:
        if self._transport is None or not self._transport.is_active():
            self.connect()
        return self._transport

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
