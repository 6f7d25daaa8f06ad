"""The stack's images, built here and pushed to the local registry (testkit/registry.py).

Each folder beside this file builds one image FROM the debootstrap base (testkit/images): real
PostgreSQL with pgvector and real MariaDB, stand-ins for MongoDB, FastGPT's sandbox, FastGPT and
One API (README.md). A build is cached by a hash of its folder, of whatever else goes into its
context and of the image it is built on: it runs again only when one of those changed.

Every image is then pushed under the exact name and tag that each version line of
deployments/stacks/versions.py gives its service, below the prefix MIRROR_PREFIX
("127.0.0.1:5000/mirror"): the references a stack with that custom registry prefix renders.

`python -m testkit.images.stack` builds what is missing, pushes everything and prints timings.
"""

import hashlib
import platform
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from testkit.docker_engine import BUILD_ENV, docker, image_id
from testkit.images import BASE_IMAGE, WORK_DIR, _remove_other_tags, _run, ensure_base_image
from testkit.locks import file_lock
from testkit.registry import MIRROR_PREFIX, ensure_registry

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
STAGING_DIR = WORK_DIR / "stack"
DOWNLOADS_DIR = WORK_DIR / "downloads"
REPOSITORY_PREFIX = "controlpanel-test/stack-"
LABEL = "controlpanel-test.image"
BUILD_TIMEOUT_SECONDS = 1800
PUSH_TIMEOUT_SECONDS = 600
# Builds run side by side: most of their time is spent waiting on the Debian mirror.
PARALLEL_BUILDS = 4


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(
        source,
        target,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"),
    )


def _files(root: Path) -> Iterator[Path]:
    """The files _copy_tree copies, in a stable order."""
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if (
            path.is_file()
            and "__pycache__" not in parts
            and not path.name.endswith(".pyc")
            and not any(part.startswith(".") for part in parts)
        ):
            yield path


# Extra build context --------------------------------------------------------------------------


def _download_wheel(requirement: str) -> Path:
    """REQUIREMENT's wheel for this machine's Linux, downloaded once with pip (the host has PyPI;
    a build container does not trust HTTPS here)."""
    name, _, version = requirement.partition("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(DOWNLOADS_DIR.glob(pattern))
    if not found:
        DOWNLOADS_DIR.mkdir(parents=True, exist_ok=True)
        _say(f"Downloading {requirement} with pip ...")
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                f"--platform=manylinux2014_{platform.machine()}",
                "--python-version=3.11",
                "--implementation=cp",
                f"--dest={DOWNLOADS_DIR}",
                requirement,
            ],
            f"pip download {requirement}",
            timeout=600,
        )
        found = sorted(DOWNLOADS_DIR.glob(pattern))
    if not found:
        raise RuntimeError(f"pip download {requirement} left no {pattern} in {DOWNLOADS_DIR}.")
    return found[-1]


def _stage_pgserver(context: Path) -> None:
    """PostgreSQL and pgvector from the pgserver wheel named in wheel.txt: pgsql/ gets bin,
    lib/postgresql and share/postgresql (the server finds the last two relative to bin), and
    pgsql-libs/ the vendored client library the programs link."""
    requirement = (context / "wheel.txt").read_text().strip()
    install = "pgserver/pginstall/"
    skipped = (install + "bin/ecpg", install + "lib/postgresql/pgxs/")
    kept = tuple(install + part for part in ("bin/", "lib/postgresql/", "share/postgresql/"))
    with zipfile.ZipFile(_download_wheel(requirement)) as wheel:
        for member in wheel.infolist():
            name = member.filename
            if member.is_dir() or name.startswith(skipped):
                continue
            if name.startswith(kept):
                target = context / "pgsql" / name[len(install) :]
            elif name.startswith("pgserver.libs/"):
                target = context / "pgsql-libs" / Path(name).name
            else:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(wheel.read(member))
            # zipfile keeps no permissions: they are in the high bits of external_attr.
            target.chmod((member.external_attr >> 16) & 0o777 or 0o644)
    if not (context / "pgsql" / "bin" / "postgres").exists():
        raise RuntimeError(f"The {requirement} wheel holds no pginstall/bin/postgres.")


def _stage_standins(context: Path) -> None:
    """The stand-in servers of testkit/standins, importable as testkit.standins in the image."""
    standins = REPO / "testkit" / "standins"
    if not (standins / "__init__.py").exists():
        raise RuntimeError(
            "testkit/standins is missing: the FastGPT and One API images run the stand-in servers "
            "from there (python -m testkit.standins.fastgpt / .oneapi). Add them, then build again."
        )
    (context / "testkit").mkdir()
    shutil.copy2(REPO / "testkit" / "__init__.py", context / "testkit" / "__init__.py")
    _copy_tree(standins, context / "testkit" / "standins")


# The images ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackImage:
    """One folder's image. `service` is the key of deployments/stacks/versions.py's images it
    is pushed for; an image without one is a shared base, built but never pushed."""

    folder: str
    service: str | None = None
    base: str | None = (
        None  # the folder of the image it is built FROM; the debootstrap base if None
    )
    sources: tuple[Path, ...] = ()  # more inputs than the folder, for the content hash
    stage: Callable[[Path], None] | None = field(default=None, compare=False)

    @property
    def context(self) -> Path:
        return HERE / self.folder

    @property
    def repository(self) -> str:
        return REPOSITORY_PREFIX + self.folder


STANDINS = REPO / "testkit" / "standins"

# In build order: a base comes before the images built on it. Xinference is not here yet; an
# image for it is one more entry (and folder), and it is then pushed like the others.
IMAGES: tuple[StackImage, ...] = (
    StackImage("python"),
    StackImage("pgvector", service="pg", stage=_stage_pgserver),
    StackImage("mysql", service="mysql"),
    StackImage("fastgpt-sandbox", service="sandbox"),
    StackImage("mongo", service="mongo", base="python"),
    StackImage(
        "fastgpt", service="fastgpt", base="python", sources=(STANDINS,), stage=_stage_standins
    ),
    StackImage(
        "one-api", service="oneapi", base="python", sources=(STANDINS,), stage=_stage_standins
    ),
)
BY_FOLDER = {image.folder: image for image in IMAGES}


def mirror_references(service: str) -> list[str]:
    """Every reference the version lines give SERVICE under MIRROR_PREFIX, as a stack with that
    custom registry prefix renders it."""
    from deployments.choices import Registry
    from deployments.stacks.versions import LINES

    references = {
        line.images[service].reference(Registry.CUSTOM, MIRROR_PREFIX)
        for line in LINES.values()
        if service in line.images
    }
    return sorted(references)


def services_without_image() -> list[str]:
    """Services of the version lines that no image here stands for (they cannot be deployed
    from the local registry yet)."""
    from deployments.stacks.versions import LINES

    covered = {image.service for image in IMAGES}
    return sorted({service for line in LINES.values() for service in line.images} - covered)


def _lock(name: str):
    """One build of an image at a time on this machine; a second waits, then finds it built."""
    return file_lock(STAGING_DIR / f"{name}.lock")


def _tag(image: StackImage, base_id: str) -> str:
    digest = hashlib.sha256(base_id.encode())
    for root in (image.context, *image.sources):
        for path in _files(root):
            digest.update(f"{root.name}/{path.relative_to(root)}".encode() + b"\0")
            digest.update(oct(path.stat().st_mode & 0o111).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return f"{image.repository}:{digest.hexdigest()[:12]}"


@dataclass
class Built:
    image: StackImage
    tag: str
    seconds: float | None  # None: it was there already


def _build(image: StackImage, base_tag: str) -> Built:
    base_id = image_id(base_tag)
    if base_id is None:
        raise RuntimeError(f"The base image {base_tag} of {image.folder} is missing.")
    with _lock(image.folder):
        tag = _tag(image, base_id)
        if image_id(tag):
            return Built(image, tag, None)
        _say(f"Building {tag} ...")
        started = time.monotonic()
        context = STAGING_DIR / image.folder
        shutil.rmtree(context, ignore_errors=True)
        _copy_tree(image.context, context)
        try:
            if image.stage:
                image.stage(context)
            _run(
                [
                    "docker",
                    "build",
                    "--force-rm",
                    "--build-arg",
                    f"BASE_IMAGE={base_tag}",
                    "--label",
                    f"{LABEL}=stack-{image.folder}",
                    "--tag",
                    tag,
                    str(context),
                ],
                f"Building the {image.folder} image",
                timeout=BUILD_TIMEOUT_SECONDS,
                env=BUILD_ENV,
            )
        finally:
            shutil.rmtree(context, ignore_errors=True)
        seconds = time.monotonic() - started
        _say(f"Built {tag} in {seconds:.0f}s.")
        _remove_other_tags(image.repository, keep=tag)
        return Built(image, tag, seconds)


def build_images() -> dict[str, Built]:
    """Every image of IMAGES, built where missing: {folder: Built}. Images whose bases are
    ready build side by side."""
    ensure_base_image()
    built: dict[str, Built] = {}
    remaining = list(IMAGES)
    with ThreadPoolExecutor(max_workers=PARALLEL_BUILDS) as pool:
        while remaining:
            ready = [image for image in remaining if image.base is None or image.base in built]
            if not ready:
                names = ", ".join(image.folder for image in remaining)
                raise RuntimeError(f"These images name a base that is not in IMAGES: {names}")
            futures = {
                image.folder: pool.submit(
                    _build, image, built[image.base].tag if image.base else BASE_IMAGE
                )
                for image in ready
            }
            for folder, future in futures.items():
                built[folder] = future.result()
            remaining = [image for image in remaining if image.folder not in built]
    return built


def _push(tag: str, reference: str) -> float:
    started = time.monotonic()
    docker("tag", tag, reference)
    docker("push", reference, timeout=PUSH_TIMEOUT_SECONDS)
    return time.monotonic() - started


def ensure_stack_images() -> dict[str, list[str]]:
    """Build what is missing, push every image to the local registry; {service: references}."""
    started = time.monotonic()
    ensure_registry()
    built = build_images()
    pushes = [
        (item, reference)
        for item in built.values()
        if item.image.service
        for reference in mirror_references(item.image.service)
    ]
    # One after another: pushing compresses each new layer, which is CPU-bound, and the first
    # push uploads the shared base layer once for all.
    seconds = [_push(item.tag, reference) for item, reference in pushes]
    pushed: dict[str, list[str]] = {}
    for (item, reference), push_seconds in zip(pushes, seconds, strict=True):
        pushed.setdefault(item.image.service, []).append(reference)
        build = "cached" if item.seconds is None else f"built in {item.seconds:.0f}s"
        _say(f"{reference}: {build}, pushed in {push_seconds:.1f}s")
    _say(f"Stack images ready in {time.monotonic() - started:.0f}s.")
    return pushed
