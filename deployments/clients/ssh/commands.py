"""Commands: quoted argv behind sudo, env and a time limit; exit status and output as it comes."""

import codecs
import contextlib
import re
import select
import shlex
import threading
import time
from collections.abc import Callable, Sequence

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

from .connection import SSHConnection
from .errors import SSHError
from .result import CommandResult

# A command still running at its timeout gets SIGTERM, and SIGKILL this much later.
KILL_AFTER_SECONDS = 2
STDIN_CHUNK = 32768
ERROR_TAIL_LINES = 8
ERROR_TAIL_CHARS = 1500
COMMAND_IN_MESSAGE_CHARS = 200

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


class CommandsMixin(SSHConnection):
    """Running commands on the connection: `run()` waits for one, `stream()` does not."""

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
            during_command=True,
        )

    def _lost(self, argv: list[str], error: BaseException | None) -> SSHError:
        because = f" ({error})" if error and str(error) else ""
        return SSHError(
            f"The connection to {self.address} was lost while running {_describe(argv)}"
            f"{because}. Is the server still up?",
            kind="unreachable",
            during_command=True,
        )


class CommandStream:
    """A command started by `SSHClient.stream()`: its output in chunks, as it arrives.

    Reads are meant for one thread. Use as a context manager, or call `close()`, which closes
    the channel and with it the command's stdin.
    """

    # What one read() takes at most from each of stdout and stderr.
    READ_LIMIT = 1 << 18

    def __init__(self, channel: paramiko.Channel, argv: list[str], client: CommandsMixin) -> None:
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
