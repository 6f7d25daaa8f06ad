"""Images the tests build on this machine: no registry is reachable, so nothing is pulled.

The base is a Debian root file system made with debootstrap and imported; the SSH target is
built FROM it with Debian packages over plain HTTP. Both are cached by tag: a build runs only
when the image is missing. `python -m testkit.images` builds what is missing.
"""

import contextlib
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from testkit.docker_engine import BUILD_ENV, docker, image_id
from testkit.locks import file_lock

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BASE_IMAGE = f"controlpanel-test/debian:{SUITE}"
SSH_TARGET_REPOSITORY = "controlpanel-test/ssh-target"

HERE = Path(__file__).resolve().parent
SSH_TARGET_CONTEXT = HERE / "ssh-target"
WORK_DIR = HERE.parent.parent / "var" / "images"

APT_SOURCES = Path("/etc/apt/sources.list")
APT_SOURCES_DIR = Path("/etc/apt/sources.list.d")


def _apt_sources() -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of each `deb` source this machine's apt uses, one-line and deb822 forms."""
    one_line = [APT_SOURCES, *sorted(APT_SOURCES_DIR.glob("*.list"))]
    for path in one_line:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    yield words[1], [words[2]]
    for path in sorted(APT_SOURCES_DIR.glob("*.sources")):
        with contextlib.suppress(OSError):
            for stanza in re.split(r"\n\s*\n", path.read_text()):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in fields.get("types", "").split():
                    continue
                for uri in fields.get("uris", "").split():
                    yield uri, fields.get("suites", "").split()


def debian_mirror() -> str:
    """The plain-HTTP Debian mirror this machine's apt uses for SUITE, else deb.debian.org.

    Plain HTTP only: the build containers do not trust this machine's HTTPS interception.
    """
    for uri, suites in _apt_sources():
        if SUITE in suites and urlsplit(uri).scheme == "http":
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def ssh_target_tag() -> str:
    """The target image's tag: a hash of its build files and of the base image it is built on."""
    base_id = image_id(BASE_IMAGE)
    if base_id is None:
        raise RuntimeError(f"The base image {BASE_IMAGE} is missing; build it first.")
    digest = hashlib.sha256(base_id.encode())
    for path in sorted(p for p in SSH_TARGET_CONTEXT.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(SSH_TARGET_CONTEXT)).encode() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o111).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"{SSH_TARGET_REPOSITORY}:{digest.hexdigest()[:12]}"


def _build_lock():
    """One build at a time on this machine; a second waits, then finds the image built."""
    return file_lock(WORK_DIR / "build.lock")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run(command: list[str], what: str, **kwargs) -> None:
    result = subprocess.run(command, capture_output=True, check=False, **kwargs)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace").strip()
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{output[-4000:]}")


def ensure_base_image() -> bool:
    """Build BASE_IMAGE unless it exists. True when it was built now."""
    with _build_lock():
        if image_id(BASE_IMAGE):
            return False
        if shutil.which("debootstrap") is None:
            raise RuntimeError("debootstrap is not installed (Debian package debootstrap).")
        mirror = debian_mirror()
        _say(f"Building {BASE_IMAGE} with debootstrap from {mirror} ...")
        started = time.monotonic()
        rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=WORK_DIR))
        try:
            _run(
                ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror],
                "debootstrap",
                timeout=1800,
            )
            # Nothing of this machine or of the run that made it: debootstrap copies the
            # machine's name and resolver (the engine supplies both at run time).
            for path in ("etc/hostname", "etc/resolv.conf"):
                (rootfs / path).write_text("")
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (rootfs / leftover).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            tar = subprocess.Popen(
                ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
                stdout=subprocess.PIPE,
            )
            try:
                imported = subprocess.run(
                    ["docker", "import", "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE],
                    stdin=tar.stdout,
                    capture_output=True,
                    check=False,
                    timeout=900,
                )
            finally:
                tar.stdout.close()
                tar_status = tar.wait()
            if tar_status != 0 or imported.returncode != 0:
                raise RuntimeError(
                    f"Importing the root file system failed (tar {tar_status}, docker "
                    f"{imported.returncode}): {imported.stderr.decode(errors='replace')}"
                )
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
        _say(f"Built {BASE_IMAGE} in {time.monotonic() - started:.0f}s.")
        return True


def ensure_ssh_target_image() -> tuple[str, bool]:
    """Build the SSH target image unless it exists. (tag, whether it was built now)."""
    ensure_base_image()
    with _build_lock():
        tag = ssh_target_tag()
        if image_id(tag):
            return tag, False
        _say(f"Building {tag} ...")
        started = time.monotonic()
        docker(
            "build",
            "--quiet",
            "--force-rm",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "--label",
            "controlpanel-test.image=ssh-target",
            "--tag",
            tag,
            str(SSH_TARGET_CONTEXT),
            timeout=1800,
            env=BUILD_ENV,
        )
        _say(f"Built {tag} in {time.monotonic() - started:.0f}s.")
        _remove_other_tags(SSH_TARGET_REPOSITORY, keep=tag)
        return tag, True


def _remove_other_tags(repository: str, keep: str) -> None:
    """Older builds of REPOSITORY go; one still used by a container stays."""
    tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", repository).stdout.decode()
    old = [tag for tag in tags.split() if tag != keep and not tag.endswith(":<none>")]
    if old:
        docker("rmi", *old, check=False)


def ensure_all() -> dict[str, str]:
    """Every test image, built where missing: {name: tag}."""
    tag, _ = ensure_ssh_target_image()
    return {"base": BASE_IMAGE, "ssh-target": tag}
