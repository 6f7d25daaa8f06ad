"""A real Xinference for tests, on the CPU: one shared install, and a small image that runs it.

The install is a Python virtual environment in a machine-wide cache directory, outside the
repository, so that every checkout and every CI run on the machine reuses it (it weighs several
GB, torch above all). It is made with Debian's own python3.11, the interpreter of the test base
image too: mounted into a container at the same path, read-only, the same files run there. The
image holds no Python packages of its own (see testkit/images/xinference/README.md).

`ensure_xinference_venv()` installs only when the environment is missing or when the pinned
requirements (testkit/xinference-requirements.txt, and the lock beside it) changed;
`ensure_xinference_image()` builds the image when its content hash is new.
"""

import contextlib
import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testkit.docker_engine import (
    BUILD_ENV,
    docker,
    engine_error,
    image_id,
    label_arguments,
    remove_containers,
    remove_orphans,
)
from testkit.locks import file_lock

CACHE_DIR = Path(os.environ.get("CONTROLPANEL_TEST_CACHE", "/var/cache/controlpanel-test"))
VENV_DIR = CACHE_DIR / "xinference-venv"
# The interpreter the environment is made with: the base image's python3 is this same file.
BASE_PYTHON = Path("/usr/bin/python3.11")

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "xinference-requirements.txt"
LOCK = HERE / "xinference-lock.txt"  # every package of a working install, as constraints
IMAGE_CONTEXT = HERE / "images" / "xinference"
IMAGE_REPOSITORY = "controlpanel-test/xinference"
LOCAL_PREFIX = "controlpanel-test"  # also tagged <prefix>/xinference:<the version line's tags>
PUSH_TIMEOUT_SECONDS = 900
MARKER = ".controlpanel-install.json"  # inside the environment, written last

INSTALL_TIMEOUT_SECONDS = 3600


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def venv_python(venv: Path = VENV_DIR) -> Path:
    return venv / "bin" / "python"


def requirements_hash() -> str:
    """What decides the install: the pins, the lock, and the interpreter's version."""
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, LOCK):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"")
        digest.update(b"\0")
    digest.update(_python_version().encode())
    return digest.hexdigest()


@functools.cache
def _python_version() -> str:
    if not BASE_PYTHON.exists():
        raise RuntimeError(
            f"{BASE_PYTHON} is missing: the Xinference environment is made with Debian's "
            "python3.11 (packages python3 and python3-venv), the interpreter of the test image."
        )
    result = subprocess.run(
        [str(BASE_PYTHON), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def install_info(venv: Path = VENV_DIR) -> dict | None:
    """What the marker of a finished install says (hash, versions, size, time), or None."""
    try:
        return json.loads((venv / MARKER).read_text())
    except (OSError, ValueError):
        return None


def venv_is_current(venv: Path = VENV_DIR) -> bool:
    info = install_info(venv)
    return (
        info is not None
        and info.get("requirements") == requirements_hash()
        and venv_python(venv).exists()
    )


def _lock(name: str):
    """One installer or builder at a time on this machine; a second waits, then finds it done."""
    return file_lock(CACHE_DIR / f"{name}.lock")


def _run(command: list[str], what: str, timeout: float) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{output[-4000:]}")
    return result.stdout


def _size_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def ensure_xinference_venv(venv: Path = VENV_DIR) -> Path:
    """The environment's folder, installed first when missing or out of date."""
    if venv_is_current(venv):
        return venv
    with _lock("xinference-venv"):
        if venv_is_current(venv):
            return venv
        wanted = requirements_hash()
        _say(f"Installing Xinference into {venv} (several GB; once per machine) ...")
        started = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        # Made in place: scripts in bin/ name the environment's own path.
        _run([str(BASE_PYTHON), "-m", "venv", str(venv)], "Creating the environment", 300)
        pip = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check"]
        command = [*pip, "--quiet", "-r", str(REQUIREMENTS)]
        if LOCK.exists():
            command += ["-c", str(LOCK)]
        _run(command, "Installing Xinference", INSTALL_TIMEOUT_SECONDS)
        freeze = _run([str(venv_python(venv)), "-m", "pip", "freeze", "--all"], "pip freeze", 120)
        versions = dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)
        info = {
            "requirements": wanted,
            "python": _python_version(),
            "xinference": versions.get("xinference"),
            "torch": versions.get("torch"),
            "install_seconds": round(time.monotonic() - started),
            "size_bytes": _size_bytes(venv),
        }
        (venv / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        _say(
            f"Installed Xinference {info['xinference']} in {info['install_seconds']}s "
            f"({info['size_bytes'] / 2**30:.1f} GiB)."
        )
        return venv


def site_packages(venv: Path = VENV_DIR) -> Path:
    """Where the environment's packages are (they need not be installed yet)."""
    major_minor = ".".join(_python_version().split(".")[:2])
    return venv / "lib" / f"python{major_minor}" / "site-packages"


def venv_volume(venv: Path = VENV_DIR) -> str:
    """The bind mount that puts the environment into a container at the same path, read-only."""
    return f"{venv}:{venv}:ro"


# The image ---------------------------------------------------------------------------------


def image_tag() -> str:
    """A hash of the build files and of the base image: a new one means a new build."""
    from testkit.images import BASE_IMAGE

    base_id = image_id(BASE_IMAGE)
    if base_id is None:
        raise RuntimeError(f"The base image {BASE_IMAGE} is missing; build it first.")
    digest = hashlib.sha256(f"{base_id}\0{site_packages()}\0".encode())
    for path in sorted(p for p in IMAGE_CONTEXT.rglob("*") if p.is_file()):
        if path.name == "README.md":  # not part of the image
            continue
        digest.update(str(path.relative_to(IMAGE_CONTEXT)).encode() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o111).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:12]}"


def xinference_image_names(prefix: str = LOCAL_PREFIX) -> list[str]:
    """The references a stack renders for Xinference under the custom prefix PREFIX, in every
    version line: the CPU tag and the plain (GPU) one. This image stands for both."""
    from deployments.choices import Registry
    from deployments.stacks.versions import LINES

    names: list[str] = []
    for line in LINES.values():
        image = line.images.get("xinference")
        if image is None:
            continue
        plain = image.reference(Registry.CUSTOM, prefix)
        for name in (plain + line.xinference_cpu_suffix, plain):
            if name not in names:
                names.append(name)
    return names


def ensure_xinference_image() -> tuple[str, bool]:
    """Build the image unless its content hash is built already. (tag, whether built now).

    It is also tagged under the names the version line uses for Xinference (the CPU tag and
    the plain one) in the controlpanel-test prefix.
    """
    from testkit.images import BASE_IMAGE, ensure_base_image

    ensure_base_image()
    with _lock("xinference-image"):
        tag = image_tag()
        built = False
        if not image_id(tag):
            _say(f"Building {tag} ...")
            started = time.monotonic()
            docker(
                "build",
                "--quiet",
                "--force-rm",
                "--build-arg",
                f"BASE_IMAGE={BASE_IMAGE}",
                "--build-arg",
                f"XINFERENCE_VENV={VENV_DIR}",
                "--build-arg",
                f"XINFERENCE_SITE_PACKAGES={site_packages()}",
                "--label",
                "controlpanel-test.image=xinference",
                "--tag",
                tag,
                str(IMAGE_CONTEXT),
                timeout=1800,
                env=BUILD_ENV,
            )
            _say(f"Built {tag} in {time.monotonic() - started:.0f}s.")
            built = True
        for name in xinference_image_names():
            docker("tag", tag, name)
        if built:
            _remove_other_tags(tag)
        return tag, built


def _remove_other_tags(keep: str) -> None:
    tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY).stdout
    old = [
        tag
        for tag in tags.decode().split()
        if tag != keep and tag not in xinference_image_names() and not tag.endswith(":<none>")
    ]
    if old:
        docker("rmi", *old, check=False)


def push_xinference(registry: str | None = None) -> list[str]:
    """Push the image to the local registry under every name a stack renders for Xinference
    below REGISTRY (a custom prefix; the stack images' 127.0.0.1:5000/mirror by default), so
    that a stack with that prefix pulls it. The references pushed."""
    from testkit.registry import MIRROR_PREFIX, ensure_registry

    ensure_registry()
    tag, _ = ensure_xinference_image()
    pushed = []
    for name in xinference_image_names(registry or MIRROR_PREFIX):
        docker("tag", tag, name)
        docker("push", name, timeout=PUSH_TIMEOUT_SECONDS)
        pushed.append(name)
    return pushed


# A running server --------------------------------------------------------------------------

CONTAINER_LABEL = "controlpanel-test.xinference"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def remove_leftover_containers() -> list[str]:
    """Remove Xinference containers of this machine whose test process has gone; their ids."""
    return remove_orphans(CONTAINER_LABEL)


@dataclass
class XinferenceContainer:
    """One container of the image: `xinference-local` on 127.0.0.1:<port>, the environment
    mounted read-only at its own path, HOME as XINFERENCE_HOME (/data), and each folder of
    MOUNTS read-only at its own path (model folders, so that their paths mean the same inside).
    """

    image: str
    home: Path
    mounts: Sequence[Path] = ()
    environment: dict[str, str] = field(default_factory=dict)
    port: int = 0
    container_id: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "XinferenceContainer":
        self.port = self.port or _free_port()
        volumes = [venv_volume(), f"{self.home}:/data"]
        volumes += [f"{path}:{path}:ro" for path in self.mounts]
        arguments = ["run", "--detach", "--publish", f"127.0.0.1:{self.port}:9997"]
        arguments += label_arguments(CONTAINER_LABEL)
        for volume in volumes:
            arguments += ["--volume", volume]
        for name, value in self.environment.items():
            arguments += ["--env", f"{name}={value}"]
        self.container_id = docker(*arguments, self.image).stdout.decode().strip()
        return self

    def logs(self) -> str:
        result = docker("logs", self.container_id, check=False, timeout=60)
        return (result.stdout + result.stderr).decode(errors="replace")

    def remove(self) -> None:
        if self.container_id:
            remove_containers([self.container_id])
            self.container_id = ""

    def __enter__(self) -> "XinferenceContainer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.remove()


def prepare() -> str:
    """For a test session: the engine answers, the environment and the image exist, old
    leftover containers are gone. The image's tag."""
    problem = engine_error()
    if problem:
        raise RuntimeError(f"{problem} (scripts/test starts the engine.)")
    ensure_xinference_venv()
    tag, _ = ensure_xinference_image()
    remove_leftover_containers()
    return tag


def ensure_all(push: bool = True) -> dict[str, str]:
    """The environment and the image, each only when missing, and the image pushed to the
    local registry (when PUSH): {what: where}."""
    venv = ensure_xinference_venv()
    tag, _ = ensure_xinference_image()
    found = {"xinference-venv": str(venv), "xinference": tag}
    if push:
        started = time.monotonic()
        pushed = push_xinference()
        found["pushed"] = f"{', '.join(pushed)} in {time.monotonic() - started:.1f}s"
    return found


def main(argv: Sequence[str] = ()) -> int:
    """`python -m testkit.xinference_env [--no-push]`: install, build and push what is missing;
    prints where each is and how long it all took."""
    started = time.monotonic()
    try:
        found = ensure_all(push="--no-push" not in argv)
    except Exception as error:
        print(f"Preparing Xinference failed: {error}", file=sys.stderr)
        return 1
    for name, where in found.items():
        print(f"{name}: {where}")
    info = install_info() or {}
    print(
        f"Xinference {info.get('xinference')} ready in {time.monotonic() - started:.0f}s "
        f"(environment {info.get('size_bytes', 0) / 2**30:.1f} GiB, installed once in "
        f"{info.get('install_seconds')}s)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
