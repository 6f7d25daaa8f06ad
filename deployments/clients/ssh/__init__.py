"""The panel's one SSH client: commands, file uploads and key installation on a server.

Built on paramiko because pipelines run in synchronous Celery workers and it gives explicit
host-key control and SFTP in one library. Nothing else in the panel imports paramiko.

Two rules hold everywhere here:
- A command is a list of arguments, joined with `shlex.join`; no text is ever pasted into a
  command string any other way. File contents and keys travel over stdin or SFTP.
- The server's host key is always checked: against the pinned key when there is one (a
  different key stops the connection before any credential is sent), otherwise it is returned
  to the caller to pin (trust on first use).

The modules, each importing only those above it:
- result: CommandResult, what a finished command left.
- errors: SSHError and its kinds.
- keys: key pairs, private keys, host keys and their fingerprints, a changed host key.
- connection: opening the connection, checking the host key, logging in, closing.
- commands: running a command (quoted argv, sudo, time limit, output as it comes).
- files: writing a file on the server over SFTP.
- tunnel: a port on the panel's loopback forwarded to one the server listens on.
- client: SSHClient, all of the above together, and installing a public key.
"""

from .client import INSTALL_KEY_SCRIPT, SSHClient
from .commands import CommandStream, build_command, command_error, failure_kind
from .errors import KINDS, TRANSIENT_KINDS, SSHError
from .keys import (
    HOST_KEY_ALGORITHMS,
    HostKey,
    HostKeyChanged,
    fingerprint,
    generate_keypair,
    load_private_key,
    public_key_line,
)
from .result import CommandResult
from .tunnel import LocalForward

__all__ = [
    "HOST_KEY_ALGORITHMS",
    "INSTALL_KEY_SCRIPT",
    "KINDS",
    "TRANSIENT_KINDS",
    "CommandResult",
    "CommandStream",
    "HostKey",
    "HostKeyChanged",
    "LocalForward",
    "SSHClient",
    "SSHError",
    "build_command",
    "command_error",
    "failure_kind",
    "fingerprint",
    "generate_keypair",
    "load_private_key",
    "public_key_line",
]
