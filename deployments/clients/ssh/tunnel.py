"""Tunnels: a port on the panel's loopback that leads to a port the server listens on.

A `LocalForward` listens on 127.0.0.1:<a free port> of the panel's machine. Each connection it
accepts gets a new direct-tcpip channel of the SSH connection to the server's address (its own
loopback, usually) and the two are bridged until both sides are done. So an HTTP client needs
nothing but a base URL to reach a service that the server does not publish to the network, and
what it sends crosses the network inside SSH.

One thread accepts, one thread per connection bridges; both wait in select() on their sockets
and on a wake-up socket that `close()` makes readable, so nothing polls. Each read takes at most
CHUNK bytes and is written out before the next read: a slow reader slows the writer down
rather than filling memory.
"""

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Iterator

import paramiko

from .connection import SSHConnection
from .errors import SSHError

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
CHUNK = 32 * 1024
BACKLOG = 16
ACCEPT_RETRY_SECONDS = 1
# How long close() waits for each of its threads; they end once woken.
JOIN_SECONDS = 5


class LocalForward:
    """127.0.0.1:`port` on this machine, forwarded to `remote_host`:`remote_port` as the
    server sees it. A context manager; `close()` ends every connection it carries."""

    def __init__(
        self, connection: SSHConnection, remote_host: str, remote_port: int, *, timeout: float
    ) -> None:
        self.connection = connection
        self.remote_host = remote_host
        self.remote_port = remote_port
        self.timeout = timeout
        self._listener = socket.create_server((LOOPBACK, 0), backlog=BACKLOG)
        self.port: int = self._listener.getsockname()[1]
        # Written to once, never read: readable from then on, it wakes every select() below.
        self._wake_read, self._wake_write = socket.socketpair()
        self._lock = threading.Lock()
        self._closed = False
        # Each bridging thread with its local socket and, once open, its channel.
        self._bridges: dict[threading.Thread, list] = {}
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"ssh-forward-{self.port}", daemon=True
        )
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _accept_loop(self) -> None:
        while True:
            readable, _, _ = select.select([self._listener, self._wake_read], [], [])
            if self._wake_read in readable:
                return
            try:
                local, peer = self._listener.accept()
            except OSError as error:
                # Out of file descriptors, say: wait a little (or for close) rather than spin.
                logger.warning("SSH forward on port %s could not accept: %s", self.port, error)
                select.select([self._wake_read], [], [], ACCEPT_RETRY_SECONDS)
                continue
            bridge = threading.Thread(
                target=self._bridge,
                args=(local, peer),
                name=f"ssh-forward-{self.port}-{peer[1]}",
                daemon=True,
            )
            with self._lock:
                if self._closed:
                    local.close()
                    return
                self._bridges[bridge] = [local]
                bridge.start()

    def _open_channel(self, peer: tuple[str, int]) -> paramiko.Channel:
        with self._lock:
            # Connects again if the connection dropped since the last request.
            transport = self.connection._connected()
        try:
            return transport.open_channel(
                "direct-tcpip",
                (self.remote_host, self.remote_port),
                peer,
                timeout=self.timeout,
            )
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise SSHError(
                f"{self.connection.address} could not connect to its own "
                f"{self.remote_host}:{self.remote_port} for the panel ({error}). Is the service "
                "running?",
                kind="unreachable",
            ) from None

    def _bridge(self, local: socket.socket, peer: tuple[str, int]) -> None:
        channel = None
        try:
            channel = self._open_channel(peer)
            with self._lock:
                if self._closed:
                    return
                self._bridges[threading.current_thread()].append(channel)
            _pump(local, channel, self._wake_read)
        except SSHError as error:
            # The client sees its connection closed without an answer.
            logger.warning("SSH forward: %s", error)
        except OSError as error:
            logger.debug("SSH forward to port %s ended: %s", self.remote_port, error)
        finally:
            if channel is not None:
                channel.close()
            local.close()
            with self._lock:
                self._bridges.pop(threading.current_thread(), None)

    def close(self) -> None:
        """Stop listening and end every connection; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            bridges = dict(self._bridges)
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        # A bridge blocked in a write (its reader stopped reading) wakes when its ends close.
        for ends in bridges.values():
            for end in ends:
                with contextlib.suppress(OSError):
                    if isinstance(end, socket.socket):
                        end.shutdown(socket.SHUT_RDWR)
                    else:
                        end.close()
        self._acceptor.join(JOIN_SECONDS)
        for bridge in bridges:
            bridge.join(JOIN_SECONDS)
        self._listener.close()
        self._wake_read.close()
        self._wake_write.close()

    def __enter__(self) -> "LocalForward":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _pump(local: socket.socket, channel: paramiko.Channel, wake: socket.socket) -> None:
    """Copy both ways until both sides have ended (or `wake` is readable).

    An end of one side is passed on as a half-close, and that side is no longer waited on."""
    open_ends: list = [local, channel]
    while open_ends:
        readable, _, _ = select.select([*open_ends, wake], [], [])
        if wake in readable:
            return
        if local in readable:
            data = local.recv(CHUNK)
            if data:
                channel.sendall(data)
            else:
                open_ends.remove(local)
                channel.shutdown_write()
        if channel in readable:
            data = channel.recv(CHUNK)
            if data:
                local.sendall(data)
            else:
                open_ends.remove(channel)
                with contextlib.suppress(OSError):
                    local.shutdown(socket.SHUT_WR)


class TunnelsMixin(SSHConnection):
    """Forwarding a local port to a port of the server, through the connection."""

    @contextlib.contextmanager
    def forward(self, remote_port: int, remote_host: str = LOOPBACK) -> Iterator[LocalForward]:
        """A LocalForward to `remote_host`:`remote_port` as the server sees it (its own
        loopback by default), closed on exit."""
        self._connected()
        # A reconnection for a later request must find the same server.
        if self.pinned_host_key is None and self.host_key is not None:
            self.pinned_host_key = self.host_key.line
        forward = LocalForward(self, remote_host, remote_port, timeout=self.connect_timeout)
        try:
            yield forward
        finally:
            forward.close()
