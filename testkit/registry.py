"""A container registry on 127.0.0.1:5000 for the stack's test images.

Debian's docker-registry package (the reference registry, "distribution") serves it; this module
installs nothing, it only starts the binary with a configuration and storage of its own under var/
when nothing answers there yet. The engine trusts registries on loopback addresses without TLS, so
images are pushed and pulled for real, as a server does with a custom registry prefix.

`python -m testkit.registry` starts it (when needed) and prints its address.
"""

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from testkit.locks import file_lock

HOST = "127.0.0.1"
PORT = 5000
REGISTRY = f"{HOST}:{PORT}"
# Where the stack images live, as a stack's custom registry prefix names them.
MIRROR_PREFIX = f"{REGISTRY}/mirror"

ROOT = Path(__file__).resolve().parent.parent / "var" / "registry"
CONFIG_FILE = ROOT / "config.yml"
LOG_FILE = ROOT / "registry.log"
PID_FILE = ROOT / "registry.pid"
START_TIMEOUT_SECONDS = 30

# No proxy for a loopback address, whatever the environment says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RegistryError(RuntimeError):
    """The registry could not be started, or something else answers on its port."""


def _config() -> str:
    # JSON is YAML too: the serializer writes it, paths need no quoting rules of ours.
    return json.dumps(
        {
            "version": 0.1,
            "log": {
                "level": "warn",
                "accesslog": {"disabled": True},
                "fields": {"service": "registry"},
            },
            "storage": {
                "filesystem": {"rootdirectory": str(ROOT / "data")},
                # Lets a test or a developer delete what was pushed.
                "delete": {"enabled": True},
            },
            "http": {
                "addr": REGISTRY,
                # Signs upload state between requests; one instance, so any value of its own.
                "secret": secrets.token_hex(16),
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        },
        indent=2,
    )


def answers(timeout: float = 2.0) -> bool:
    """True when a registry (API v2) answers on REGISTRY; RegistryError when something else does."""
    try:
        with _opener.open(f"http://{REGISTRY}/v2/", timeout=timeout) as response:
            version = response.headers.get("Docker-Distribution-Api-Version", "")
            status = response.status
    except urllib.error.HTTPError as error:
        version, status = error.headers.get("Docker-Distribution-Api-Version", ""), error.code
    except OSError:
        return False
    if not version.startswith("registry/2"):
        raise RegistryError(f"Something other than a registry answers on {REGISTRY}.")
    if status == 401:
        raise RegistryError(
            f"The registry on {REGISTRY} asks for a login: the docker-registry package's own "
            "service, with its packaged configuration? Stop and disable it (systemctl disable "
            "--now docker-registry); the tests start one of their own."
        )
    if status != 200:
        raise RegistryError(f"The registry on {REGISTRY} answers /v2/ with HTTP {status}.")
    return True


def _start_lock():
    return file_lock(ROOT / "start.lock")


def _log_tail(lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(LOG_FILE.read_text(errors="replace").splitlines()[-lines:])
    return ""


def ensure_registry(timeout: float = START_TIMEOUT_SECONDS) -> str:
    """Start the registry unless it answers; its address ("127.0.0.1:5000") once it does.

    It keeps running after this process ends, like the engine: later runs find it answering.
    """
    if answers():
        return REGISTRY
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RegistryError("docker-registry is not installed (Debian package docker-registry).")
    with _start_lock():
        if answers():  # another process started it meanwhile
            return REGISTRY
        (ROOT / "data").mkdir(parents=True, exist_ok=True)
        CONFIG_FILE.write_text(_config() + "\n")
        with open(LOG_FILE, "ab") as log:
            process = subprocess.Popen(
                [binary, "serve", str(CONFIG_FILE)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        PID_FILE.write_text(f"{process.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RegistryError(
                    f"docker-registry exited with {process.returncode}:\n{_log_tail()}"
                )
            if answers(timeout=1.0):
                return REGISTRY
            time.sleep(0.1)
        raise RegistryError(f"docker-registry did not answer within {timeout:.0f}s:\n{_log_tail()}")


def main() -> int:
    try:
        print(ensure_registry())
    except RegistryError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
