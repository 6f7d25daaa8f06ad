"""The remote end of a log stream: `docker logs --follow` on the server, over SSH.

Closing an SSH channel does not stop the command it ran, and a pty (whose hangup would) merges
stdout and stderr. So `docker logs` runs under a fixed script that also watches its own stdin,
which is the channel: when the panel closes the channel, or the connection drops, stdin ends and
the script kills `docker logs`. When `docker logs` ends by itself (the container stopped), the
script ends too. The tail and the container name reach it as positional parameters, never
inside the script's text.
"""

import contextlib
from dataclasses import dataclass

from ..clients.ssh import CommandStream, SSHClient, SSHError, failure_kind
from ..servers.facts import explain_docker_failure
from ..servers.sessions import open_session
from ..validators import CONTAINER_RE

# $1: how many lines of history, $2: the container. Output of `docker logs` goes to the
# channel; the watcher's does not, so that sshd ends the session when `docker logs` ends.
FOLLOW_SCRIPT = r"""
exec 3<&0 </dev/null
docker logs --timestamps --tail "$1" --follow -- "$2" &
logs=$!
{ cat >/dev/null 2>&1; kill "$logs" 2>/dev/null; } <&3 >/dev/null 2>&1 &
watcher=$!
exec 3<&-
wait "$logs"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
""".strip()


def follow_command(container: str, tail: int) -> list[str]:
    if not CONTAINER_RE.match(container):
        raise ValueError(f"Not a container name: {container!r}.")
    if tail < 0:
        raise ValueError("The tail cannot be negative.")
    return ["sh", "-c", FOLLOW_SCRIPT, "follow-logs", str(tail), container]


@dataclass
class RemoteLogs:
    """A running `docker logs --follow` and the SSH connection it runs on."""

    client: SSHClient
    stream: CommandStream
    container: str

    def read(self, timeout: float) -> tuple[bytes, bytes]:
        return self.stream.read(timeout)

    @property
    def finished(self) -> bool:
        return self.stream.finished

    def outcome(self, diagnostics: list[str]) -> tuple[str, str]:
        """("ended" or "error", a sentence) once the output is over. `diagnostics` are the
        lines docker (not the container) printed on stderr."""
        status = self.stream.exit_status(wait=5)
        if status == 0:
            return "ended", f"The container {self.container} stopped; its log ends here."
        if status is None:
            return "error", str(self.stream.lost_error())
        return "error", failure_message(self.container, self.client.user, status, diagnostics)

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            with contextlib.suppress(Exception):
                self.client.close()


def failure_message(container: str, user: str, status: int, diagnostics: list[str]) -> str:
    """Why `docker logs` of `container` failed, from its exit status and docker's own lines."""
    output = "\n".join(diagnostics)
    if failure_kind(status, output) == "sudo_password":
        detail = (
            f"user {user} needs a password for sudo; allow passwordless sudo for it, add it to "
            "the docker group, or connect as root."
        )
    else:
        detail = explain_docker_failure(status, output)
    return f"Reading the log of {container} failed: {detail}"


def open_remote_logs(server, container: str, tail: int) -> RemoteLogs:
    """Start following `container` on `server`. Blocking: call it off the event loop.

    Raises SSHError with a message for the user.
    """
    argv = follow_command(container, tail)
    client = open_session(server)
    try:
        # sudo where the user is not root, as for every docker command (skipped for root).
        stream = client.stream(argv, sudo=True)
    except BaseException:
        client.close()
        raise
    return RemoteLogs(client, stream, container)


__all__ = [
    "FOLLOW_SCRIPT",
    "RemoteLogs",
    "SSHError",
    "failure_message",
    "follow_command",
    "open_remote_logs",
]
