"""The panel's own image and compose file (docker/panel) run the panel: the image builds (FROM a
local Python on Debian, with the wheels given to the build), compose starts PostgreSQL, Redis,
the migrations, web, worker and beat, and a user logs in through the real login form and has a
real SSH server checked by the worker in its container.

One test for the whole journey: building and starting are the cost, so they are paid once.
"""

import os
import re
import secrets
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from testkit.asgi_server import csrf_token, log_in
from testkit.docker_engine import docker, process_alive
from testkit.images.panel import COMPOSE_FILE, compose_environment, ensure_panel_images
from testkit.target import SSHTarget, free_port

pytestmark = pytest.mark.slow

UP_TIMEOUT_SECONDS = 600
WEB_TIMEOUT_SECONDS = 120
CHECK_TIMEOUT_SECONDS = 120
# bootstrap_admin's one line with the generated password (the migrate service's log).
PASSWORD_LINE = re.compile(r"Password: (\S+)")
PROJECT_PREFIX = "cptestpanel-"
# The project names of this test: the prefix, the test process's id, a random part.
PROJECT_NAME = re.compile(re.escape(PROJECT_PREFIX) + r"(\d+)-[0-9a-f]{6}")
# `down` of a leftover project interpolates the file too: any value will do for it.
PLACEHOLDERS = dict.fromkeys(("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "POSTGRES_PASSWORD"), "x")


class Compose:
    """docker-compose on docker/panel/compose.yml under a project name of this test's own."""

    def __init__(self, env_file: Path, environment: dict[str, str]) -> None:
        self.project = f"{PROJECT_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.env_file = env_file
        self.environment = environment
        self.url = f"http://127.0.0.1:{environment['PANEL_PORT']}"

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "docker-compose",
                *("--project-name", self.project),
                *("--env-file", str(self.env_file)),
                *("--file", str(COMPOSE_FILE)),
                *args,
            ],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def logs(self, *services: str) -> str:
        """The last lines of SERVICES (by default all but migrate, whose log holds the first
        user's password)."""
        services = services or ("web", "worker", "beat", "postgres", "redis")
        return self("logs", "--no-color", "--tail", "60", *services).stdout

    @property
    def network(self) -> str:
        return f"{self.project}_default"


def remove_leftover_projects(empty_file: Path) -> None:
    """Projects of this test whose process is gone (killed before its teardown): their
    containers, volumes and network. EMPTY_FILE stands for their env file."""
    labels = (
        docker(
            "ps",
            "--all",
            "--filter",
            "label=com.docker.compose.project",
            "--format",
            '{{.Label "com.docker.compose.project"}}',
        )
        .stdout.decode()
        .split()
    )
    for project in sorted(set(labels)):
        match = PROJECT_NAME.fullmatch(project)
        if match and not process_alive(int(match.group(1))):
            subprocess.run(
                [
                    "docker-compose",
                    "--project-name",
                    project,
                    "--file",
                    str(COMPOSE_FILE),
                    "down",
                    "--volumes",
                    "--remove-orphans",
                    "--timeout",
                    "5",
                ],
                env={**os.environ, **PLACEHOLDERS, "PANEL_ENV_FILE": str(empty_file)},
                capture_output=True,
                timeout=300,
                check=False,
            )


@pytest.fixture
def panel(tmp_path):
    """The compose project, started; torn down with its volumes and network afterwards."""
    empty_file = tmp_path / "empty.env"
    empty_file.touch()
    remove_leftover_projects(empty_file)
    tags = ensure_panel_images()
    env_file = tmp_path / "panel.env"
    # Hex: the PostgreSQL password goes into DATABASE_URL.
    env_file.write_text(
        "".join(
            f"{name}={secrets.token_hex(24)}\n"
            for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "POSTGRES_PASSWORD")
        )
    )
    env_file.chmod(0o600)
    environment = compose_environment(tags, env_file)
    environment["PANEL_PORT"] = str(free_port())
    compose = Compose(env_file, environment)
    try:
        started = compose("up", "--detach", timeout=UP_TIMEOUT_SECONDS)
        # migrate's log holds no password yet: the first user is made after it succeeded.
        assert started.returncode == 0, started.stderr[-3000:] + compose.logs("postgres", "migrate")
        yield compose
    finally:
        compose("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=300)


def wait_for_web(client: httpx.Client, compose: Compose) -> None:
    deadline = time.monotonic() + WEB_TIMEOUT_SECONDS
    while True:
        try:
            if client.get("/login/").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"web did not answer in {WEB_TIMEOUT_SECONDS}s:\n{compose.logs('web')}")
        time.sleep(0.5)


def network_gateway(network: str) -> str:
    """This machine's address on NETWORK: the containers on it reach it, nothing else does."""
    inspected = docker(
        "network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", network
    )
    return inspected.stdout.decode().strip()


def test_the_image_runs_the_panel_a_user_logs_in_and_a_server_is_checked_by_the_worker(
    panel, ssh_target_image
):
    admin_password = PASSWORD_LINE.search(panel("logs", "--no-color", "migrate").stdout)
    assert admin_password, "bootstrap_admin printed no password in the migrate service's log"
    # Every service the file defines is up, beat separate from the worker.
    running = panel("ps", "--services", "--filter", "status=running").stdout.split()
    assert sorted(running) == ["beat", "postgres", "redis", "web", "worker"], panel.logs()

    with httpx.Client(base_url=panel.url, timeout=30) as client:
        wait_for_web(client, panel)
        # The real login form, its CSRF token and cookie, as a browser posts it.
        login = log_in(client, "admin", admin_password.group(1))
        assert login.status_code == 302, login.text[-2000:]
        dashboard = client.get(login.headers["location"])
        assert dashboard.status_code == 200 and "admin" in dashboard.text

        # The SSH server listens on this machine's address on the project's network, so the
        # worker's container reaches it there, as it reaches any server by its address.
        gateway = network_gateway(panel.network)
        target = SSHTarget(ssh_target_image)
        target.host = gateway
        with target:
            created = client.post(
                "/servers/new/",
                data={
                    "csrfmiddlewaretoken": csrf_token(client.get("/servers/new/")),
                    "name": "gpu-1",
                    "host": gateway,
                    "ssh_port": str(target.port),
                    "ssh_user": "root",
                    "hourly_price": "",
                    "price_currency": "USD",
                    "key_mode": "paste",
                    "ssh_private_key": target.key.private_openssh,
                },
            )
            assert created.status_code == 302, created.text[-3000:]
            server_url = created.headers["location"]
            assert re.fullmatch(r"/servers/\d+/", server_url), server_url

            checked = client.post(
                f"{server_url}check/",
                data={"csrfmiddlewaretoken": csrf_token(client.get(server_url))},
            )
            assert checked.status_code == 302, checked.text[-2000:]
            deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
            while True:
                page = client.get(server_url).text
                if "status-reachable" in page or "status-unreachable" in page:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"No check finished in {CHECK_TIMEOUT_SECONDS}s:\n{panel.logs()}")
                time.sleep(1)

    assert "status-reachable" in page, panel.logs("worker")
    # The facts the worker gathered over SSH: the target's system and the Docker engine its
    # command line talks to.
    facts = page.split('id="server-facts"', 1)[1]
    assert "Debian GNU/Linux 12 (bookworm)" in facts
    assert docker("version", "--format", "{{.Server.Version}}").stdout.decode().strip() in facts
