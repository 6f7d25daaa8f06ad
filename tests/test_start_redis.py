"""scripts/start runs the panel's Redis with a password: generated once into var/redis_password
(mode 600), given to Redis in a file, never on its command line, and put in REDIS_URL.

The tests source scripts/start (which then only defines its functions) in a scratch folder and
start real redis-servers on free ports."""

import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
START = ROOT / "scripts" / "start"
LIB = ROOT / "scripts" / "lib.sh"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    prelude = f"set -euo pipefail; . {LIB}; . {START}; "
    return subprocess.run(
        ["bash", "-c", prelude + script], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def ping_without_password(port: int) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, timeout=10
    ).stdout.strip()


@pytest.fixture
def port(tmp_path):
    port = free_port()
    yield port
    # Whatever answers there now was started by the test: stop it, password or not.
    password_file = tmp_path / "var" / "redis_password"
    env = {**os.environ}
    if password_file.exists():
        env["REDISCLI_AUTH"] = password_file.read_text()
    for auth in (env, {k: v for k, v in env.items() if k != "REDISCLI_AUTH"}):
        subprocess.run(
            ["redis-cli", "--no-auth-warning", "-p", str(port), "shutdown", "nosave"],
            env=auth,
            capture_output=True,
            timeout=10,
        )


def test_the_password_is_generated_once_and_kept_for_the_owner_only(tmp_path):
    result = bash(
        "redis_password var/redis_password; echo; redis_password var/redis_password", tmp_path
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split()
    assert first == second
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert mode(tmp_path / "var" / "redis_password") == 0o600


def test_the_started_redis_refuses_clients_without_the_password(tmp_path, port):
    result = bash(f'own_redis {port}; echo "$REDIS_URL"', tmp_path)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip().splitlines()[-1]
    password = (tmp_path / "var" / "redis_password").read_text()
    assert url == f"redis://:{password}@127.0.0.1:{port}/0"

    assert ping_without_password(port).startswith("NOAUTH")
    assert redis.Redis.from_url(url).ping() is True
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, password="guess").ping()

    folder = tmp_path / "var" / f"redis-{port}"
    assert mode(folder) == 0o700
    assert mode(folder / "redis.conf") == 0o600
    pid = (folder / "redis.pid").read_text().strip()
    assert password not in Path(f"/proc/{pid}/cmdline").read_text()


def test_a_second_start_keeps_the_running_redis_and_its_password(tmp_path, port):
    first = bash(f'own_redis {port}; echo "$REDIS_URL"', tmp_path)
    second = bash(f'own_redis {port}; echo "$REDIS_URL"', tmp_path)
    assert second.returncode == 0, second.stderr
    assert first.stdout.split()[-1] == second.stdout.split()[-1]
    assert redis.Redis.from_url(second.stdout.split()[-1]).ping() is True


def test_a_redis_an_earlier_start_left_without_a_password_gets_one(tmp_path, port):
    # What scripts/start used to run: lib.sh's redis_up in var/redis-PORT, no password.
    bash(f"redis_up {port}", tmp_path)
    assert ping_without_password(port) == "PONG"
    result = bash(f'own_redis {port}; echo "$REDIS_URL"', tmp_path)
    assert result.returncode == 0, result.stderr
    assert ping_without_password(port).startswith("NOAUTH")
    assert redis.Redis.from_url(result.stdout.split()[-1]).ping() is True


def test_a_redis_of_someone_else_without_a_password_is_not_taken(tmp_path, port):
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    bash(f"redis_up {port}", elsewhere)
    result = bash(f"own_redis {port}", tmp_path)
    assert result.returncode != 0
    assert "A Redis without a password answers on port" in result.stderr
    assert "REDIS_PORT" in result.stderr


def test_the_panel_started_by_the_script_gets_the_passworded_redis():
    # The main part of scripts/start: owner-only files from the top, its own Redis unless
    # REDIS_URL names one.
    text = START.read_text()
    main = text.split('if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 0; fi', 1)[1]
    assert text.index("umask 077") < text.index("redis_password()")
    assert re.search(r'if \[ -z "\$\{REDIS_URL:-\}" \]; then\n\s+own_redis ', main)
    assert "redis_up" not in main
