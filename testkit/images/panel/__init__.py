"""The panel's own image (docker/panel/Dockerfile) and what its compose file runs beside it,
built here: no registry is reachable, so nothing is pulled.

Each folder beside this file builds one stand-in FROM the debootstrap base (testkit/images):

- python: the CPython that runs the tests, under /usr/local with pip, for python:3.11-slim;
- redis: Debian's Redis 7, for the official redis image;
- postgres: Debian's PostgreSQL 15 with the stack pgvector image's entrypoint, for postgres:15.

The panel image is then built FROM the python one with the real Dockerfile, in a context that
holds what the Dockerfile copies from the repository and the wheels of requirements.txt, which
pip on this machine downloads (a build container cannot reach PyPI): PIP_OFFLINE=1 makes the
build install from them alone, still checked against the lock file's hashes.

Every image is cached by a hash of its inputs and of the image it is built on; the panel's
build runs again when the panel's code changes, and the engine's layer cache then keeps the
packages' layer, which changes only with requirements.txt.

    python -m testkit.images.panel     # builds what is missing, prints the tags
"""

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from testkit.docker_engine import BUILD_ENV, image_id
from testkit.images import BASE_IMAGE, WORK_DIR, _remove_other_tags, _run, ensure_base_image
from testkit.locks import file_lock

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
DOCKERFILE = "docker/panel/Dockerfile"
COMPOSE_FILE = REPO / "docker" / "panel" / "compose.yml"
# What the Dockerfile copies from the repository (its build context is the repository root).
PANEL_SOURCES = (
    "requirements.txt",
    "pyproject.toml",
    "manage.py",
    "controlpanel",
    "deployments",
    "templates",
    "static",
    "locale",
    DOCKERFILE,
)
# Where the Dockerfile looks for wheels in its context.
WHEELS_IN_CONTEXT = "docker/panel/wheels"
PGVECTOR_ENTRYPOINT = HERE.parent / "stack" / "pgvector" / "docker-entrypoint.sh"
STAGING_DIR = WORK_DIR / "panel"
REPOSITORY_PREFIX = "controlpanel-test/panel"
LABEL = "controlpanel-test.image"
BUILD_TIMEOUT_SECONDS = 1800
SUPPORT_IMAGES = ("python", "redis", "postgres")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _files(root: Path) -> Iterator[Path]:
    """ROOT itself when it is a file, else its files, in a stable order, without caches and
    dot files."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if (
            path.is_file()
            and "__pycache__" not in parts
            and not path.name.endswith(".pyc")
            and not any(part.startswith(".") for part in parts)
        ):
            yield path


def _digest(base_id: str, roots: Iterable[Path], *extra: str) -> str:
    digest = hashlib.sha256(base_id.encode())
    for value in extra:
        digest.update(value.encode() + b"\0")
    for root in roots:
        for path in _files(root):
            digest.update(str(path.relative_to(REPO)).encode() + b"\0")
            digest.update(oct(path.stat().st_mode & 0o111).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _docker_build(tag: str, context: Path, what: str, *arguments: str) -> None:
    _run(
        [
            "docker",
            "build",
            "--force-rm",
            "--label",
            f"{LABEL}={what}",
            "--tag",
            tag,
            *arguments,
            str(context),
        ],
        f"Building the {what} image",
        timeout=BUILD_TIMEOUT_SECONDS,
        env=BUILD_ENV,
    )


# Left out of the staged interpreter: what the panel never imports, and what pip brings back.
STDLIB_LEFT_OUT = (
    "site-packages",
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "lib2to3",
    "__pycache__",
)


def _interpreter() -> tuple[str, Path, Path | None, Path]:
    """(version, executable, shared library or None, standard library) of this CPython."""
    version = sysconfig.get_config_var("VERSION")
    executable = Path(sys._base_executable).resolve()
    library = None
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        library = Path(sysconfig.get_config_var("LIBDIR")) / sysconfig.get_config_var("INSTSONAME")
    stdlib = Path(sysconfig.get_path("stdlib"))
    if not (stdlib / "os.py").exists() or (library and not library.exists()):
        raise RuntimeError(f"No standard library or libpython found for {executable}.")
    return version, executable, library, stdlib


def _interpreter_key() -> str:
    version, executable, _, _ = _interpreter()
    return f"{sys.version} {platform.machine()} {executable}"


def _stage_interpreter(context: Path) -> None:
    """This CPython, laid out under usr/local of the image as python:3.11-slim has it."""
    version, executable, library, stdlib = _interpreter()
    local = context / "interpreter" / "usr" / "local"
    (local / "bin").mkdir(parents=True)
    (local / "lib").mkdir()
    shutil.copy2(executable, local / "bin" / f"python{version}")
    if library:
        shutil.copy2(library, local / "lib" / library.name)
    config = f"config-{version}-"
    shutil.copytree(
        stdlib,
        local / "lib" / f"python{version}",
        ignore=lambda folder, names: [
            name for name in names if name in STDLIB_LEFT_OUT or name.startswith(config)
        ],
    )


def _build_support_image(folder: str) -> str:
    """The stand-in of FOLDER, built unless it exists: its tag."""
    base_id = image_id(BASE_IMAGE)
    if base_id is None:
        raise RuntimeError(f"The base image {BASE_IMAGE} is missing; build it first.")
    repository = f"{REPOSITORY_PREFIX}-{folder}"
    sources = [HERE / folder] + ([PGVECTOR_ENTRYPOINT] if folder == "postgres" else [])
    key = _interpreter_key() if folder == "python" else ""
    with file_lock(STAGING_DIR / f"{folder}.lock"):
        tag = f"{repository}:{_digest(base_id, sources, key)}"
        if image_id(tag):
            return tag
        _say(f"Building {tag} ...")
        started = time.monotonic()
        context = STAGING_DIR / folder
        shutil.rmtree(context, ignore_errors=True)
        shutil.copytree(HERE / folder, context)
        arguments = ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
        try:
            if folder == "postgres":
                shutil.copy2(PGVECTOR_ENTRYPOINT, context / PGVECTOR_ENTRYPOINT.name)
            if folder == "python":
                _stage_interpreter(context)
                arguments += ["--build-arg", f"PYTHON_VERSION={_interpreter()[0]}"]
            _docker_build(tag, context, f"panel-{folder}", *arguments)
        finally:
            shutil.rmtree(context, ignore_errors=True)
        _say(f"Built {tag} in {time.monotonic() - started:.0f}s.")
        _remove_other_tags(repository, keep=tag)
        return tag


def wheels() -> Path:
    """A folder with the wheels of requirements.txt, downloaded once per lock file by this
    machine's pip and checked against the lock file's hashes (the build checks them again)."""
    requirements = REPO / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    folder = STAGING_DIR / f"wheels-{key}"
    done = folder / ".complete"
    with file_lock(STAGING_DIR / "wheels.lock"):
        if done.exists():
            return folder
        for old in STAGING_DIR.glob("wheels-*"):
            shutil.rmtree(old, ignore_errors=True)
        _say("Downloading the panel's wheels with pip ...")
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--require-hashes",
                "--only-binary=:all:",
                f"--dest={folder}",
                "-r",
                str(requirements),
            ],
            "pip download -r requirements.txt",
            timeout=900,
        )
        done.touch()
        return folder


def _stage_panel_context(context: Path, wheel_folder: Path) -> None:
    """The repository's files that the Dockerfile copies, and the wheels where it looks."""
    for name in PANEL_SOURCES:
        for path in _files(REPO / name):
            target = context / path.relative_to(REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    target = context / WHEELS_IN_CONTEXT
    target.mkdir(parents=True)
    for wheel in wheel_folder.glob("*.whl"):
        os.link(wheel, target / wheel.name)


def ensure_panel_image(python_tag: str) -> str:
    """The panel's image built FROM PYTHON_TAG with docker/panel/Dockerfile: its tag."""
    base_id = image_id(python_tag)
    if base_id is None:
        raise RuntimeError(f"The image {python_tag} is missing.")
    wheel_folder = wheels()
    with file_lock(STAGING_DIR / "panel.lock"):
        tag = f"{REPOSITORY_PREFIX}:{_digest(base_id, (REPO / n for n in PANEL_SOURCES))}"
        if image_id(tag):
            return tag
        _say(f"Building {tag} ...")
        started = time.monotonic()
        context = STAGING_DIR / "context"
        shutil.rmtree(context, ignore_errors=True)
        try:
            _stage_panel_context(context, wheel_folder)
            _docker_build(
                tag,
                context,
                "panel",
                *("--file", str(context / DOCKERFILE)),
                *("--build-arg", f"PYTHON_IMAGE={python_tag}"),
                *("--build-arg", "PIP_OFFLINE=1"),
            )
        finally:
            shutil.rmtree(context, ignore_errors=True)
        _say(f"Built {tag} in {time.monotonic() - started:.0f}s.")
        _remove_other_tags(REPOSITORY_PREFIX, keep=tag)
        return tag


def ensure_panel_images() -> dict[str, str]:
    """The panel's image and the stand-ins its compose file runs: {"panel", "python", "redis",
    "postgres": tag}. The stand-ins build side by side (their time is the Debian mirror's)."""
    ensure_base_image()
    with ThreadPoolExecutor(max_workers=len(SUPPORT_IMAGES)) as pool:
        futures = {name: pool.submit(_build_support_image, name) for name in SUPPORT_IMAGES}
        tags = {name: future.result() for name, future in futures.items()}
    tags["panel"] = ensure_panel_image(tags["python"])
    return tags


def compose_environment(tags: dict[str, str], env_file: Path) -> dict[str, str]:
    """The environment that makes docker/panel/compose.yml run these images with ENV_FILE."""
    return {
        **os.environ,
        "PANEL_IMAGE": tags["panel"],
        "REDIS_IMAGE": tags["redis"],
        "POSTGRES_IMAGE": tags["postgres"],
        "PANEL_ENV_FILE": str(env_file),
    }


def main() -> int:
    started = time.monotonic()
    try:
        tags = ensure_panel_images()
    except (RuntimeError, subprocess.SubprocessError) as error:
        print(f"Building the panel's images failed: {error}", file=sys.stderr)
        return 1
    for name, tag in tags.items():
        print(f"{name}: {tag}")
    _say(f"Ready in {time.monotonic() - started:.0f}s.")
    return 0
