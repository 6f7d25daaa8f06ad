"""A real SSH server to test against: a container of the SSH target image (testkit/images).

It shares this machine's network (`--network host`) and its sshd listens on 127.0.0.1:<free port>.
Its `docker` command talks to this machine's engine through the mounted socket, so containers it
starts run beside it on this machine (and paths in their bind mounts are paths of this machine);
a port they publish on 127.0.0.1 is on the target's loopback as on a real server's, so a tunnel
through the target to its 127.0.0.1 reaches them. Users:

- root: logs in with `key` only;
- deploy: password (and `key` when `deploy_key` is true), sudo without a password;
- limited: password only, sudo asks for the password.

Passwords are new for each container. Containers carry labels naming the process that started
them: `remove_leftovers()` removes those whose process is gone.
"""

import contextlib
import io
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from testkit.docker_engine import (
    DockerError,
    docker,
    engine_error,
    label_arguments,
    remove_orphans,
)
from testkit.images import ensure_ssh_target_image

LABEL = "controlpanel-test.ssh-target"
SESSION = uuid.uuid4().hex[:8]
DOCKER_SOCKET = "/var/run/docker.sock"
READY_TIMEOUT_SECONDS = 60
# The image's command (testkit/images/ssh-target/start), run after a configuration drop-in that
# makes sshd listen on the target's own port, on loopback only: the target shares this
# machine's network. Written again on each start, so a restart keeps the port.
START_COMMAND = "/usr/local/sbin/start-target"
LISTEN_SCRIPT = (
    'printf "Port %s\\nListenAddress %s\\n" "$1" "$2" > /etc/ssh/sshd_config.d/listen.conf'
    ' && exec "$3"'
)


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 key pair: the private key in OpenSSH form, the public key as an
    authorized_keys line."""

    private_openssh: str
    public_openssh: str

    @classmethod
    def generate(cls, comment: str = "controlpanel-test") -> "KeyPair":
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        return cls(private, f"{public.decode()} {comment}")

    @cached_property
    def pkey(self) -> paramiko.PKey:
        return paramiko.Ed25519Key.from_private_key(io.StringIO(self.private_openssh))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_banner(host: str, port: int, timeout: float = 2.0) -> bytes | None:
    """The SSH identification line the server sends first, or None (nothing listens yet)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = connection.recv(256)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return data.strip() if data.startswith(b"SSH-") else None


def remove_leftovers() -> list[str]:
    """Remove target containers of this machine whose test process has gone; their ids."""
    return remove_orphans(LABEL)


class SSHTarget:
    """One target container. Use as a context manager, or call start() and remove()."""

    host = "127.0.0.1"
    users = ("deploy", "limited")

    _counter = 0

    def __init__(
        self,
        image: str,
        *,
        key: KeyPair | None = None,
        deploy_key: bool = False,
        mounts: Sequence[tuple[str, str]] = (),
        tmpfs: Sequence[tuple[str, int]] = (),
    ) -> None:
        SSHTarget._counter += 1
        self.number = SSHTarget._counter
        self.image = image
        self.key = key or KeyPair.generate()
        self.deploy_key = deploy_key
        self.mounts = tuple(mounts)
        # (path, size in bytes): a small file system of the target's own, to fill up. Only the
        # target sees it (this machine's engine does not): for what the target itself writes.
        self.tmpfs = tuple(tmpfs)
        self.name = f"controlpanel-test-ssh-{SESSION}-{self.number}"
        self.passwords = {user: secrets.token_urlsafe(18) for user in self.users}
        self.port: int | None = None
        self.container_id: str | None = None

    @property
    def deploy_password(self) -> str:
        return self.passwords["deploy"]

    @property
    def limited_password(self) -> str:
        return self.passwords["limited"]

    def __enter__(self) -> "SSHTarget":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> "SSHTarget":
        try:
            # sshd answers once the container's start script is done with the user database.
            self._run_container(timeout)
            self.authorize_key("root", self.key.public_openssh)
            if self.deploy_key:
                self.authorize_key("deploy", self.key.public_openssh)
            self.set_passwords(self.passwords)
        except BaseException:
            self.remove()
            raise
        return self

    def _run_container(self, timeout: float, attempts: int = 5) -> None:
        error = ""
        for _ in range(attempts):
            self.port = free_port()
            hostname = f"target-{SESSION}-{self.number}"
            command = [
                *("run", "--detach", "--name", self.name),
                *label_arguments(LABEL),
                *("--hostname", hostname),
                *("--network", "host"),
                # The host's /etc/hosts does not name the container: sudo wants its name to resolve.
                *("--add-host", f"{hostname}:127.0.1.1"),
                *("--volume", f"{DOCKER_SOCKET}:/var/run/docker.sock"),
            ]
            for source, destination in self.mounts:
                command += ["--volume", f"{source}:{destination}"]
            for destination, size in self.tmpfs:
                command += ["--mount", f"type=tmpfs,destination={destination},tmpfs-size={size}"]
            listen = ["sh", "-c", LISTEN_SCRIPT, "listen", str(self.port), self.host]
            result = docker(*command, self.image, *listen, START_COMMAND, check=False)
            if result.returncode != 0:
                error = result.stderr.decode(errors="replace").strip()
                docker("rm", "-f", self.name, check=False)
                break
            self.container_id = result.stdout.decode().strip()
            if self.wait_for_ssh(timeout, fail_on_exit=True):
                return
            # Only a port taken between the probe and sshd's start is worth another try.
            error = self.logs()
            self.remove()
            if "Address already in use" not in error:
                break
        raise DockerError(f"Starting the SSH target from {self.image} failed: {error}")

    def exec(
        self,
        argv: Sequence[str],
        *,
        input: bytes | str | None = None,
        user: str = "root",
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        """`docker exec` ARGV in the container: an argument vector, run without any shell."""
        if self.container_id is None:
            raise RuntimeError("The SSH target is not running.")
        return docker(
            "exec",
            *(("--interactive",) if input is not None else ()),
            "--user",
            user,
            self.container_id,
            *argv,
            input=input,
            check=check,
            timeout=timeout,
        )

    def authorize_key(self, user: str, public_key: str) -> None:
        """Append PUBLIC_KEY (given on stdin) to USER's authorized_keys."""
        script = (
            'home="$(getent passwd "$1" | cut -d: -f6)"; '
            'install -d -m 700 -o "$1" -g "$1" "$home/.ssh"; '
            'cat >> "$home/.ssh/authorized_keys"; '
            'chown "$1:$1" "$home/.ssh/authorized_keys"; '
            'chmod 600 "$home/.ssh/authorized_keys"'
        )
        self.exec(["sh", "-euc", script, "sh", user], input=public_key.strip() + "\n")

    def set_passwords(self, passwords: dict[str, str]) -> None:
        """chpasswd, with the passwords on its stdin only."""
        self.passwords.update(passwords)
        self.exec(["chpasswd"], input="".join(f"{u}:{p}\n" for u, p in passwords.items()))

    def wait_for_ssh(
        self, timeout: float = READY_TIMEOUT_SECONDS, *, fail_on_exit: bool = False
    ) -> bytes | None:
        """Wait until sshd sends its banner; return it. With FAIL_ON_EXIT, None as soon as the
        container has stopped (its sshd could not listen)."""
        deadline = time.monotonic() + timeout
        while True:
            banner = read_banner(self.host, self.port)
            if banner:
                return banner
            if fail_on_exit and not self.running():
                return None
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"sshd in {self.name} sent no banner in {timeout}s; its log:\n{self.logs()}"
                )
            time.sleep(0.1)

    def running(self) -> bool:
        result = docker("inspect", "--format", "{{.State.Running}}", self.container_id, check=False)
        return result.stdout.decode().strip() == "true"

    def host_keys(self) -> dict[str, str]:
        """The server's public host keys as known_hosts lists them: {key type: "type base64"}."""
        script = "cat /etc/ssh/ssh_host_*_key.pub"
        lines = self.exec(["sh", "-c", script]).stdout.decode().splitlines()
        keys = {}
        for line in lines:
            key_type, blob = line.split()[:2]
            keys[key_type] = f"{key_type} {blob}"
        return keys

    def restart_with_new_host_key(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """New host keys, as if the server at this address were reinstalled; same port, users,
        passwords and authorized keys. The container's start makes the keys that are missing."""
        self.exec(["sh", "-c", "rm -f /etc/ssh/ssh_host_*"])
        docker("restart", "--time", "5", self.container_id)
        self.wait_for_ssh(timeout)

    def logs(self) -> str:
        if self.container_id is None:
            return ""
        result = docker("logs", "--tail", "200", self.container_id, check=False)
        return (result.stdout + result.stderr).decode(errors="replace")

    def remove(self) -> None:
        """Remove the container (idempotent)."""
        docker("rm", "-f", "-v", self.name, check=False)
        self.container_id = None


def prepare_image() -> str:
    """For a test session: the engine answers, the image exists, old leftovers are gone.

    Returns the image's tag.
    """
    problem = engine_error()
    if problem:
        raise RuntimeError(f"{problem} (scripts/test starts the engine.)")
    tag = ensure_ssh_target_image()[0]
    remove_leftovers()
    return tag


@contextlib.contextmanager
def ssh_target(image: str, **options) -> Iterator[SSHTarget]:
    """A started target, removed afterwards."""
    with SSHTarget(image, **options) as target:
        yield target
