"""Containers whose logs tests and benchmarks read: on this machine's engine, so an SSH target
(testkit/target.py) sees them with its `docker` command.

A writer's main process only sleeps; what it "logs" is written into that process's stdout or
stderr from outside, with `docker exec`, byte for byte as given, so a test controls every
write. Containers carry labels naming the process that started them: `remove_leftovers()`
removes those whose process is gone.
"""

import uuid
from collections.abc import Sequence

from testkit.docker_engine import DockerError, docker, label_arguments, remove_orphans
from testkit.images import BASE_IMAGE, ensure_base_image

LABEL = "controlpanel-test.log-writer"
SESSION = uuid.uuid4().hex[:8]
FD = {"stdout": "1", "stderr": "2"}

# $1: the file descriptor of PID 1 to write to; then sizes: each piece is read from stdin
# byte by byte (dd bs=1, so nothing past it is consumed), written with its own writes, and
# followed by a pause of $2 seconds; what is left of stdin is written last.
WRITE_SCRIPT = r"""
fd=$1; pause=$2; shift 2
for size in "$@"; do
    dd bs=1 count="$size" status=none > "/proc/1/fd/$fd"
    sleep "$pause"
done
cat > "/proc/1/fd/$fd"
""".strip()


class LogWriter:
    """One container. Use as a context manager, or call start() and remove()."""

    _counter = 0

    def __init__(self, image: str = BASE_IMAGE, command: Sequence[str] = ("sleep", "infinity")):
        LogWriter._counter += 1
        self.image = image
        self.command = list(command)
        self.name = f"controlpanel-test-logs-{SESSION}-{LogWriter._counter}"
        self.container_id: str | None = None

    def __enter__(self) -> "LogWriter":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.remove()

    def start(self) -> "LogWriter":
        if self.image == BASE_IMAGE:
            ensure_base_image()
        result = docker(
            *("run", "--detach", "--name", self.name, "--init"),
            *label_arguments(LABEL),
            self.image,
            *self.command,
            check=False,
        )
        if result.returncode != 0:
            self.remove()
            error = result.stderr.decode(errors="replace").strip()
            raise DockerError(f"Starting a log writer from {self.image} failed: {error}")
        self.container_id = result.stdout.decode().strip()
        return self

    def write(
        self,
        data: bytes | str,
        stream: str = "stdout",
        *,
        pieces: Sequence[int] = (),
        pause: float = 0.2,
    ) -> None:
        """Write `data` to the container's log. `pieces`: sizes of leading parts written (and
        flushed) on their own, each followed by `pause` seconds."""
        if isinstance(data, str):
            data = data.encode()
        script_args = [FD[stream], f"{pause:g}", *(str(int(size)) for size in pieces)]
        docker(
            *("exec", "--interactive", self.name, "sh", "-c", WRITE_SCRIPT, "write"),
            *script_args,
            input=data,
        )

    def stop(self) -> None:
        docker("stop", "--time", "1", self.name)

    def remove(self) -> None:
        """Remove the container (idempotent)."""
        docker("rm", "-f", "-v", self.name, check=False)
        self.container_id = None


def remove_leftovers() -> list[str]:
    """Remove writers of this machine whose test process has gone; their ids."""
    return remove_orphans(LABEL)
