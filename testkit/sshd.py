"""A real OpenSSH server on loopback, for the SSH client's tests.

It runs as root (sshd needs it to log anyone in) with its own config, host keys,
authorized_keys and pid file in a temporary directory, and sessions get HOME set to a folder in
there, so `~/.ssh` of the machine's root is left alone. A session still starts in root's real
home directory: tests use absolute paths.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
START_TIMEOUT_SECONDS = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def host_key_fingerprint(public_key_path: Path) -> str:
    """The SHA256 fingerprint as `ssh-keygen -lf` prints it."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(public_key_path)], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[1]


class Sshd:
    """`sshd -D -e` on 127.0.0.1:<free port>, logging to `log_path`.

    Keys in `authorized_keys` (see `authorize`) and in `home/.ssh/authorized_keys` log in.
    It serves a host key of each of `key_types` (ssh-keygen's -t names); the first is
    `host_key_path`.
    """

    def __init__(
        self, directory: Path | None = None, key_types: tuple[str, ...] = ("ed25519",)
    ) -> None:
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="sshd-"))
            self._own_directory = True
        else:
            self._own_directory = False
        self.dir = Path(directory)
        self.home = self.dir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host_key_paths = [self.dir / f"ssh_host_{t}_key" for t in key_types]
        self.host_key_path = self.host_key_paths[0]
        self.authorized_keys_path = self.dir / "authorized_keys"
        self.authorized_keys_path.touch(mode=0o600)
        self.config_path = self.dir / "sshd_config"
        self.pid_path = self.dir / "sshd.pid"
        self.log_path = self.dir / "sshd.log"
        self.process: subprocess.Popen | None = None
        self._log_file = None
        self._started = False
        self.regenerate_host_key()

    # Host key

    def regenerate_host_key(self) -> None:
        """New host keys; they are served from the next `restart`."""
        for key_path in self.host_key_paths:
            for path in (key_path, key_path.with_suffix(".pub")):
                path.unlink(missing_ok=True)
            key_type = key_path.name.removeprefix("ssh_host_").removesuffix("_key")
            command = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", ""]
            subprocess.run([*command, "-f", str(key_path)], check=True)

    def host_key_line_of(self, key_path: Path) -> str:
        """'ssh-ed25519 AAAA...' without a comment."""
        key_type, blob = key_path.with_suffix(".pub").read_text().split()[:2]
        return f"{key_type} {blob}"

    @property
    def host_key_line(self) -> str:
        return self.host_key_line_of(self.host_key_path)

    @property
    def host_key_fingerprint(self) -> str:
        return host_key_fingerprint(self.host_key_path.with_suffix(".pub"))

    # Users

    def authorize(self, public_key_line: str) -> None:
        with self.authorized_keys_path.open("a") as f:
            f.write(public_key_line.strip() + "\n")

    # Process

    def _write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            *(f"HostKey {path}" for path in self.host_key_paths),
            f"PidFile {self.pid_path}",
            f"AuthorizedKeysFile {self.authorized_keys_path} {self.home}/.ssh/authorized_keys",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "StrictModes no",
            "UsePAM no",
            "UseDNS no",
            "PrintMotd no",
            "Subsystem sftp internal-sftp",
            f"SetEnv HOME={self.home}",
            # VERBOSE logs each key offered and accepted, so tests can tell none was.
            "LogLevel VERBOSE",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> "Sshd":
        # sshd refuses to start without its privilege separation directory.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for attempt in range(3):
            log_offset = len(self.log)
            self._spawn()
            if self._wait_listening():
                self._started = True
                return self
            self.stop()
            in_use = "Address already in use" in self.log[log_offset:]
            if self._started or not in_use or attempt == 2:
                raise RuntimeError(f"sshd did not start on port {self.port}:\n{self.log}")
            # Another process took the free port before sshd did; only a first start may move.
            self.port = free_port()
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        self._write_config()
        self._log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while self.process.poll() is None and time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                if sock.recv(4).startswith(b"SSH-"):
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> "Sshd":
        """Stop and start again on the same port (with the current host key and config)."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "Sshd":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.cleanup()
