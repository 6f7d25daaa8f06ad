"""SSHError: anything that went wrong talking to a server, and the kinds it comes in."""

from .result import CommandResult

KINDS = (
    "unreachable",
    "timeout",
    "local_address",
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


class SSHError(Exception):
    """Anything that went wrong talking to a server, in words a user understands.

    `kind` is one of KINDS; `permanent` is False when trying again later may help.
    `result` holds the command's output when a command failed. `during_command` is True when
    the connection was up and a command or file transfer on it timed out or was cut off: the
    panel got in, so "could not connect" would be wrong.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        permanent: bool | None = None,
        result: CommandResult | None = None,
        during_command: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"Unknown SSH error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.permanent = kind not in TRANSIENT_KINDS if permanent is None else permanent
        self.result = result
        self.during_command = during_command


def _address(host: str, port: int) -> str:
    """How messages name a server: host:port, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
