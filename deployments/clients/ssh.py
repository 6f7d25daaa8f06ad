"""The panel's one SSH client: commands, file uploads and key installation on a server.

Built on paramiko because pipelines run in synchronous Celery workers and it gives explicit
host-key control and SFTP in one library. Nothing else in the panel imports paramiko.

Two rules hold everywhere here:
- A command is a list of arguments, joined with `shlex.join`; no text is ever pasted into a
  command string any other way. File contents and keys travel over stdin or SFTP.
- The server's host key is always checked: against the pinned key when there is one (a
  different key stops the connection before any credential is sent), otherwise it is returned
  to the caller to pin (trust on first use).
"""

import base64
import binascii
import codecs
import contextlib
import errno
import hashlib
import io
import re
import select
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

KINDS = (
    "unreachable",
    "timeout",
    "auth",
    "host_key_changed",
    "host_key_unknown",
    "permission",
    "sudo_password",
    "protocol",
    "command",
)
# Errors a later retry may cure; the others need someone to change something first.
TRANSIENT_KINDS = frozenset({"unreachable", "timeout"})

KEEPALIVE_SECONDS = 30
# A command still running at its timeout gets SIGTERM, and SIGKILL this much later.
KILL_AFTER_SECONDS = 2
STDIN_CHUNK = 32768
ERROR_TAIL_LINES = 8
ERROR_TAIL_CHARS = 1500
COMMAND_IN_MESSAGE_CHARS = 200

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Key types the panel accepts, and the host-key algorithms that negotiate each of them.
HOST_KEY_ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}


class SSHError(Exception):
    """Anything that went wrong talking to a server, in words a user understands.

    `kind` is one of KINDS; `permanent` is False when trying again later may help.
    `result` holds the command's output when a command failed.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        permanent: bool | None = None,
        result: "CommandResult | None" = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"Unknown SSH error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.permanent = kind not in TRANSIENT_KINDS if permanent is None else permanent
        self.result = result


class HostKeyChanged(SSHError):
    """The server offered a host key other than the pinned one; nothing was sent to it."""

    def __init__(self, host: str, port: int, offered: "HostKey", pinned_fingerprint: str) -> None:
        self.offered = offered
        self.pinned_fingerprint = pinned_fingerprint
        super().__init__(
            f"The host key of {_address(host, port)} has changed: it was {pinned_fingerprint}, "
            f"the server now offers {offered.fingerprint}. Someone may be intercepting the "
            "connection, or the server was reinstalled. The panel did not log in. If the "
            "change is expected, an owner can accept the new key.",
            kind="host_key_changed",
        )


@dataclass(frozen=True)
class HostKey:
    key_type: str
    base64: str
    fingerprint: str

    @property
    def line(self) -> str:
        return f"{self.key_type} {self.base64}"

    @classmethod
    def from_line(cls, text: str) -> "HostKey":
        """Parse 'ssh-ed25519 AAAA... [comment]'; ValueError if it is not a public key line."""
        fields = text.strip().split()
        if len(fields) < 2 or any(c in text.strip() for c in "\r\n\0"):
            raise ValueError("Expected a single line: '<key type> <base64 key> [comment]'.")
        key_type, encoded = fields[0], fields[1]
        if key_type not in HOST_KEY_ALGORITHMS:
            raise ValueError(f"Unsupported key type {key_type!r}.")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("The key is not valid base64.") from None
        if _blob_key_type(blob) != key_type:
            raise ValueError(f"The key data is not a {key_type} key.")
        return cls.from_blob(key_type, blob)

    @classmethod
    def from_blob(cls, key_type: str, blob: bytes) -> "HostKey":
        return cls(key_type, base64.b64encode(blob).decode("ascii"), fingerprint(blob))

    @classmethod
    def from_pkey(cls, key: paramiko.PKey) -> "HostKey":
        return cls.from_blob(key.get_name(), key.asbytes())


@dataclass
class CommandResult:
    argv: list[str]
    exit_status: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def fingerprint(blob: bytes) -> str:
    """'SHA256:...' as `ssh-keygen -lf` prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def _blob_key_type(blob: bytes) -> str | None:
    if len(blob) < 4:
        return None
    length = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + length:
        return None
    try:
        return blob[4 : 4 + length].decode("ascii")
    except UnicodeDecodeError:
        return None


# Keys


def generate_keypair(comment: str = "llm-stack-panel") -> tuple[str, str]:
    """A new ed25519 key pair: (private key as OpenSSH PEM text, 'ssh-ed25519 AAAA... comment')."""
    if any(c in comment for c in "\r\n\0"):
        raise ValueError("A key comment must be a single line.")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode('ascii')} {comment}".rstrip()


def load_private_key(text: str) -> paramiko.PKey:
    """Read an ed25519, ECDSA or RSA private key in OpenSSH or PEM (PKCS#1, SEC1, PKCS#8) form.

    Raises SSHError(kind="auth") saying what is wrong with anything else.
    """
    normalized = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not normalized:
        raise SSHError("No private key was given.", kind="auth")
    if normalized.startswith(("ssh-", "ecdsa-")) or "PUBLIC KEY-----" in normalized:
        raise SSHError(
            "This is a public key. Paste the private key, which starts with "
            "'-----BEGIN OPENSSH PRIVATE KEY-----' or similar.",
            kind="auth",
        )
    data = (normalized + "\n").encode("utf-8", errors="replace")
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # cryptography raises TypeError when a key needs a password that was not given.
        raise SSHError(
            "This private key is protected by a passphrase, which the panel cannot use. "
            "Paste a key without a passphrase (ssh-keygen -p -N '' -f <file> removes it).",
            kind="auth",
        ) from None
    except (ValueError, binascii.Error):
        raise SSHError(
            "This is not a private key the panel can read. Paste the whole OpenSSH or PEM "
            "private key, including its BEGIN and END lines.",
            kind="auth",
        ) from None
    except Exception as e:  # an unsupported algorithm, for instance
        raise SSHError(f"This private key cannot be used: {e}.", kind="auth") from None

    if isinstance(key, ed25519.Ed25519PrivateKey):
        key_class = paramiko.Ed25519Key
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        key_class = paramiko.ECDSAKey
    elif isinstance(key, rsa.RSAPrivateKey):
        key_class = paramiko.RSAKey
    else:
        raise SSHError(
            "This kind of private key is not supported. Use an ed25519, ECDSA or RSA key.",
            kind="auth",
        )
    # paramiko reads every supported type from the OpenSSH format, whatever it came in.
    openssh = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    try:
        return key_class.from_private_key(io.StringIO(openssh))
    except paramiko.SSHException as e:
        raise SSHError(f"This private key cannot be used: {e}.", kind="auth") from None


def public_key_line(private_key_text: str) -> str:
    """The public half of a private key, as an authorized_keys line ('ssh-ed25519 AAAA...')."""
    key = load_private_key(private_key_text)
    return f"{key.get_name()} {key.get_base64()}"


# Commands


def build_command(
    argv: Sequence[str],
    *,
    sudo: bool = False,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """The command line for `argv`: every element shell-quoted, behind sudo, timeout and env.

    With `timeout`, coreutils' `timeout` ends the command (and what it started) on the server
    itself: closing an SSH channel does not stop a command, and OpenSSH's "signal" request is
    refused for root sessions.
    """
    argv = list(argv)
    if not argv:
        raise ValueError("A command needs at least one argument.")
    for arg in argv:
        if not isinstance(arg, str):
            raise TypeError(f"Command arguments must be strings, not {type(arg).__name__}.")
        if "\0" in arg:
            raise ValueError("A command argument cannot contain a NUL character.")
    prefix: list[str] = []
    if sudo:
        prefix += ["sudo", "-n", "--"]
    if timeout is not None:
        prefix += ["timeout", "-k", str(KILL_AFTER_SECONDS), _seconds(timeout)]
    if env:
        for name, value in env.items():
            if not ENV_NAME_RE.match(name):
                raise ValueError(f"Not an environment variable name: {name!r}.")
            if "\0" in value:
                raise ValueError("An environment value cannot contain a NUL character.")
        prefix += ["env", *(f"{name}={value}" for name, value in env.items())]
    return shlex.join(prefix + argv)


def _seconds(value: float) -> str:
    return f"{max(value, 0.01):.2f}".rstrip("0").rstrip(".")


def failure_kind(exit_status: int, stderr: str) -> str:
    """Which SSHError kind a failed command is: sudo_password, permission or command."""
    text = stderr.lower()
    if "sudo:" in text and ("a password is required" in text or "a terminal is required" in text):
        return "sudo_password"
    if (
        exit_status == 126
        or "permission denied" in text
        or "operation not permitted" in text
        or "is not in the sudoers file" in text
        or "is not allowed to execute" in text
    ):
        return "permission"
    return "command"


def _describe(argv: Sequence[str]) -> str:
    text = shlex.join(argv)
    if len(text) > COMMAND_IN_MESSAGE_CHARS:
        text = text[: COMMAND_IN_MESSAGE_CHARS - 3] + "..."
    return f"`{text}`"


def _tail(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    tail = "\n".join(lines[-ERROR_TAIL_LINES:])
    if len(tail) > ERROR_TAIL_CHARS:
        tail = "..." + tail[-ERROR_TAIL_CHARS:]
    return tail


def command_error(result: CommandResult, user: str) -> SSHError:
    """The SSHError for a command that exited with a non-zero status."""
    kind = failure_kind(result.exit_status, result.stderr)
    output = _tail(result.stderr) or _tail(result.stdout)
    details = f":\n{output}" if output else "."
    command = _describe(result.argv)
    if kind == "sudo_password":
        message = (
            f"User {user} needs a password for sudo; allow passwordless sudo for it or connect "
            f"as root. ({command} was not run.)"
        )
    elif kind == "permission":
        message = (
            f"{command} was refused: user {user} lacks the permission it needs "
            f"(exit code {result.exit_status}){details}"
        )
    elif result.exit_status < 0:
        message = f"{command} ended without an exit code (was it killed?){details}"
    else:
        message = f"{command} failed with exit code {result.exit_status}{details}"
    return SSHError(message, kind=kind, result=result)


class _Stream:
    """Decodes one output stream incrementally and hands complete lines to a callback.

    With `carriage_returns`, a lone "\r" also ends a line: a terminal program redraws its
    progress in place, and each redraw should reach the callback as it comes.
    """

    def __init__(
        self, on_line: Callable[[str], None] | None, carriage_returns: bool = False
    ) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []
        self._on_line = on_line
        self._partial = ""
        self._carriage_returns = carriage_returns
        self._after_return = False

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self._decoder.decode(data, final)
        if text:
            self._parts.append(text)
        if self._on_line is None:
            return
        self._partial += text
        if self._carriage_returns:
            # A "\r" ends its line at once; a "\n" right after it (a "\r\n" split between
            # reads) is then not another, empty line.
            if self._after_return and self._partial.startswith("\n"):
                self._partial = self._partial[1:]
            if self._partial:
                self._after_return = self._partial.endswith("\r")
            *lines, self._partial = re.split(r"\r\n|\n|\r", self._partial)
        else:
            *lines, self._partial = self._partial.split("\n")
        if final and self._partial:
            lines.append(self._partial)
            self._partial = ""
        for line in lines:
            self._on_line(line.removesuffix("\r"))

    def finish(self) -> str:
        self.feed(b"", final=True)
        return "".join(self._parts)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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


class SSHClient:
    """One SSH connection to one server, as one user.

    Use as a context manager, or call `connect()` (which returns the server's host key) and
    `close()`. Commands and uploads connect first if that has not happened yet.
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
    ) -> None:
        self.host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        self.port = port
        self.user = user
        self._private_key = private_key
        self._password = password
        self.pinned_host_key = pinned_host_key
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.host_key: HostKey | None = None
        self._transport: paramiko.Transport | None = None

    @classmethod
    def for_server(cls, server, *, password: str | None = None) -> "SSHClient":
        return cls(
            server.host,
            server.ssh_port,
            server.ssh_user,
            private_key=server.ssh_private_key or None,
            password=password,
            pinned_host_key=server.host_key or None,
        )

    @property
    def address(self) -> str:
        return _address(self.host, self.port)

    # Connection

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
            return socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except socket.gaierror:
            raise SSHError(
                f"Cannot find the host {self.host}: the name does not resolve. Check its "
                "spelling and the DNS.",
                kind="unreachable",
            ) from None
        except TimeoutError:
            raise SSHError(
                f"{self.address} did not answer within {self.connect_timeout:g} seconds. Is "
                "the address right and the port open to the panel?",
                kind="timeout",
            ) from None
        except ConnectionRefusedError:
            raise SSHError(
                f"Cannot reach {self.address}: connection refused. Is the server up and the "
                "port open?",
                kind="unreachable",
            ) from None
        except OSError as e:
            reasons = {
                errno.EHOSTUNREACH: "no route to host",
                errno.ENETUNREACH: "the network is unreachable",
            }
            reason = reasons.get(e.errno, (e.strerror or str(e)).lower())
            raise SSHError(
                f"Cannot reach {self.address}: {reason}. Check the address and the network.",
                kind="unreachable",
            ) from None

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

    def __enter__(self) -> "SSHClient":
        self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # Commands

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | str | None = None,
        timeout: float | None = None,
        sudo: bool = False,
        check: bool = True,
        env: dict[str, str] | None = None,
        on_output: Callable[[str], None] | None = None,
        terminal: bool = False,
    ) -> CommandResult:
        """Run `argv` on the server and wait for it; stop it after `timeout` seconds.

        `on_output` gets each line of stdout and stderr as it arrives. With `check`, a non-zero
        exit raises SSHError (kind "command", "permission" or "sudo_password"). With `terminal`
        the command gets a pseudo-terminal (stderr then arrives in stdout): for programs that
        only report progress to a terminal, such as `docker pull`.
        """
        argv = list(argv)
        timeout = self.command_timeout if timeout is None else timeout
        command = build_command(argv, sudo=sudo and self.user != "root", env=env, timeout=timeout)
        data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
        started = time.monotonic()
        deadline = started + timeout
        transport = self._connected()
        try:
            channel = transport.open_session(timeout=max(deadline - time.monotonic(), 0.1))
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise self._lost(argv, e) from None
        try:
            if terminal:
                channel.get_pty(term="xterm", width=200, height=50)
            exit_status, stdout, stderr = self._exchange(
                channel, command, argv, data, deadline, timeout, on_output, terminal
            )
        finally:
            channel.close()
        result = CommandResult(argv, exit_status, stdout, stderr, time.monotonic() - started)
        if check and not result.ok:
            raise command_error(result, self.user)
        return result

    def _exchange(
        self,
        channel: paramiko.Channel,
        command: str,
        argv: list[str],
        data: bytes | None,
        deadline: float,
        timeout: float,
        on_output: Callable[[str], None] | None,
        terminal: bool = False,
    ) -> tuple[int, str, str]:
        # Past the deadline the server's `timeout` stops the command; this is how long to wait
        # for that to show before giving up on the channel.
        give_up = deadline + KILL_AFTER_SECONDS + 1
        # exec_command waits for the server's answer without a limit of its own.
        watchdog = threading.Timer(max(give_up - time.monotonic(), 0), channel.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as e:
            if time.monotonic() >= deadline:
                raise self._timed_out(argv, timeout, stopped=False) from None
            raise self._lost(argv, e) from None
        finally:
            watchdog.cancel()

        out, err = _Stream(on_output, terminal), _Stream(on_output)
        offset = 0
        signalled = False
        if not data:
            channel.shutdown_write()
        while True:
            if data and offset < len(data) and channel.send_ready():
                try:
                    offset += channel.send(data[offset : offset + STDIN_CHUNK])
                except OSError:
                    offset = len(data)  # the command closed its stdin
                if offset >= len(data):
                    channel.shutdown_write()
            while channel.recv_ready():
                out.feed(channel.recv(65536))
            while channel.recv_stderr_ready():
                err.feed(channel.recv_stderr(65536))
            if channel.closed or (channel.exit_status_ready() and channel.eof_received):
                break
            now = time.monotonic()
            if now >= deadline and not signalled:
                if self.user != "root":
                    self._signal(channel, "TERM")
                signalled = True
            if now >= give_up:
                raise self._timed_out(argv, timeout, stopped=False)
            wait = min((give_up if signalled else deadline) - now, 1.0)
            if channel.eof_received:
                # The output is over (the wake-up pipe stays set); only the exit status is due.
                channel.status_event.wait(wait)
            else:
                writing = data and offset < len(data)
                select.select([channel], [], [], min(wait, 0.02) if writing else wait)

        while channel.recv_ready():
            out.feed(channel.recv(65536))
        while channel.recv_stderr_ready():
            err.feed(channel.recv_stderr(65536))
        if signalled:
            raise self._timed_out(argv, timeout, stopped=True)
        if not channel.exit_status_ready() or channel.exit_status < 0:
            transport = self._transport
            if transport is None or not transport.is_active():
                raise self._lost(argv, None)
        return channel.exit_status, out.finish(), err.finish()

    def stream(
        self, argv: Sequence[str], *, sudo: bool = False, stdin_open: bool = True
    ) -> "CommandStream":
        """Start `argv` on the server and return its output as it comes, without waiting for it.

        There is no time limit: the command runs until it ends or the stream is closed. No pty
        either, so stdout and stderr stay apart. With `stdin_open` the command's stdin stays
        open until `close()`; a command that must end with its reader watches its stdin (see
        deployments/logs/source.py), since closing a channel does not stop a command.
        """
        argv = list(argv)
        command = build_command(argv, sudo=sudo and self.user != "root")
        transport = self._connected()
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise self._lost(argv, e) from None
        # exec_command waits for the server's answer without a limit of its own.
        watchdog = threading.Timer(self.connect_timeout, channel.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as e:
            channel.close()
            raise self._lost(argv, e) from None
        finally:
            watchdog.cancel()
        if not stdin_open:
            channel.shutdown_write()
        return CommandStream(channel, argv, self)

    def _signal(self, channel: paramiko.Channel, name: str) -> None:
        """Send OpenSSH's "signal" request, which paramiko has no method for.

        sshd delivers it to the command's process group, but refuses it in root sessions;
        the `timeout` wrapper covers those.
        """
        message = Message()
        message.add_byte(cMSG_CHANNEL_REQUEST)
        message.add_int(channel.remote_chanid)
        message.add_string("signal")
        message.add_boolean(False)
        message.add_string(name)
        with contextlib.suppress(Exception):
            channel.transport._send_user_message(message)

    def _timed_out(self, argv: list[str], timeout: float, *, stopped: bool) -> SSHError:
        outcome = "was stopped" if stopped else "was told to stop, but did not confirm it"
        return SSHError(
            f"{_describe(argv)} did not finish within {timeout:g} seconds on {self.address} "
            f"and {outcome}.",
            kind="timeout",
        )

    def _lost(self, argv: list[str], error: BaseException | None) -> SSHError:
        because = f" ({error})" if error and str(error) else ""
        return SSHError(
            f"The connection to {self.address} was lost while running {_describe(argv)}"
            f"{because}. Is the server still up?",
            kind="unreachable",
        )

    # Files

    def upload(self, content: bytes | str, remote_path: str, *, mode: int = 0o600) -> None:
        """Write `content` to `remote_path` atomically: a temporary file, then a rename."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = PurePosixPath(remote_path)
        temporary = str(path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"))
        sftp = self._open_sftp()
        try:
            try:
                # Created empty and chmod-ed first, so the content is never readable by others.
                with sftp.open(temporary, "wbx") as remote:
                    remote.chmod(mode)
                    remote.set_pipelined(True)
                    remote.write(data)
                sftp.posix_rename(temporary, str(path))
            except TimeoutError:
                raise
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(temporary)
                raise
        except TimeoutError:
            raise SSHError(
                f"Writing {remote_path} on {self.address} stalled for {self.command_timeout:g} "
                "seconds and was abandoned.",
                kind="timeout",
            ) from None
        except OSError as e:
            raise self._file_error(remote_path, e) from None
        except (paramiko.SSHException, EOFError) as e:
            raise SSHError(
                f"Writing {remote_path} on {self.address} failed: {e}.", kind="protocol"
            ) from None
        finally:
            sftp.close()

    def _open_sftp(self) -> paramiko.SFTPClient:
        transport = self._connected()
        channel = None
        # invoke_subsystem waits for the server's answer without a limit of its own.
        watchdog = threading.Timer(self.connect_timeout, lambda: channel and channel.close())
        watchdog.daemon = True
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
            channel.settimeout(self.command_timeout)
            watchdog.start()
            channel.invoke_subsystem("sftp")
            return paramiko.SFTPClient(channel)
        except (paramiko.SSHException, OSError, EOFError) as e:
            if channel is not None:
                channel.close()
            raise SSHError(
                f"Cannot open an SFTP session on {self.address} ({e}). Is SFTP enabled in the "
                "server's sshd_config?",
                kind="protocol",
            ) from None
        finally:
            watchdog.cancel()

    def _file_error(self, remote_path: str, error: OSError) -> SSHError:
        if error.errno in (errno.EACCES, errno.EPERM):
            return SSHError(
                f"User {self.user} may not write {remote_path} on {self.address}: permission "
                "denied.",
                kind="permission",
            )
        if error.errno == errno.ENOENT:
            return SSHError(
                f"Cannot write {remote_path} on {self.address}: its folder does not exist.",
                kind="command",
            )
        reason = error.strerror or str(error) or type(error).__name__
        return SSHError(f"Cannot write {remote_path} on {self.address}: {reason}.", kind="command")

    def install_public_key(self, public_key_line: str) -> None:
        """Add a public key to the user's ~/.ssh/authorized_keys, unless it is there already."""
        try:
            key = HostKey.from_line(public_key_line)
        except ValueError as e:
            raise SSHError(
                f"This is not a public key the panel can install: {e}", kind="auth"
            ) from None
        fields = public_key_line.strip().split(None, 2)
        line = " ".join([key.key_type, key.base64, *fields[2:]])
        self.run(
            ["sh", "-c", INSTALL_KEY_SCRIPT, "install-public-key"],
            stdin=line + "\n",
            timeout=max(self.connect_timeout, 30),
        )


class CommandStream:
    """A command started by `SSHClient.stream()`: its output in chunks, as it arrives.

    Reads are meant for one thread. Use as a context manager, or call `close()`, which closes
    the channel and with it the command's stdin.
    """

    # What one read() takes at most from each of stdout and stderr.
    READ_LIMIT = 1 << 18

    def __init__(self, channel: paramiko.Channel, argv: list[str], client: SSHClient) -> None:
        self._channel = channel
        self.argv = argv
        self._client = client

    def read(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        """(stdout, stderr) written since the last read, waiting up to `timeout` seconds for
        some. Both are empty when nothing came in time, and once the output is over
        (`finished`)."""
        channel = self._channel
        if not (
            channel.recv_ready()
            or channel.recv_stderr_ready()
            or channel.eof_received
            or channel.closed
        ):
            select.select([channel], [], [], timeout)
        return (
            self._drain(channel.recv_ready, channel.recv),
            self._drain(channel.recv_stderr_ready, channel.recv_stderr),
        )

    def _drain(self, ready: Callable[[], bool], recv: Callable[[int], bytes]) -> bytes:
        parts: list[bytes] = []
        size = 0
        while size < self.READ_LIMIT and ready():
            data = recv(min(65536, self.READ_LIMIT - size))
            if not data:
                break
            parts.append(data)
            size += len(data)
        return b"".join(parts)

    @property
    def finished(self) -> bool:
        """The command closed its output (or the connection went) and all of it was read."""
        channel = self._channel
        return (channel.eof_received or channel.closed) and not (
            channel.recv_ready() or channel.recv_stderr_ready()
        )

    def exit_status(self, wait: float = 0) -> int | None:
        """The command's exit status once it is known (waiting up to `wait` seconds for it);
        None while it runs, and where it ended without one (a signal, a lost connection)."""
        channel = self._channel
        if not channel.exit_status_ready():
            channel.status_event.wait(wait)
        if not channel.exit_status_ready() or channel.exit_status < 0:
            return None
        return channel.exit_status

    def lost_error(self) -> SSHError:
        """The error to report where the output stopped without an exit status."""
        return self._client._lost(self.argv, None)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._channel.shutdown_write()
        self._channel.close()

    def __enter__(self) -> "CommandStream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# Reads one public key line on stdin. The key is compared on its base64 field alone, so the same
# key with another comment or with options is not added twice. restorecon, as ssh-copy-id does,
# so that SELinux lets sshd read a file created here.
INSTALL_KEY_SCRIPT = r"""
set -eu
umask 077
IFS= read -r line || [ -n "$line" ]
set -f
set -- $line
blob=$2
cd
[ -d .ssh ] || mkdir -m 700 .ssh
file=.ssh/authorized_keys
[ -e "$file" ] || : > "$file"
if ! awk -v blob="$blob" '{ for (i = 1; i <= NF; i++) if ($i == blob) found = 1 }
        END { exit !found }' "$file"; then
    if [ -s "$file" ] && [ -n "$(tail -c 1 "$file")" ]; then
        echo >> "$file"
    fi
    printf '%s\n' "$line" >> "$file"
fi
chmod 600 "$file"
if command -v restorecon > /dev/null 2>&1; then
    restorecon -F .ssh "$file" > /dev/null 2>&1 || true
fi
""".strip()
