"""The stack's images, pulled from the local registry and run under the rendered compose file.

Images come from testkit/images/stack (real PostgreSQL with pgvector and real MariaDB; stand-ins
for MongoDB, the sandbox, FastGPT and One API), pushed to 127.0.0.1:5000/mirror. The stack renders
with that custom registry prefix and runs with docker-compose v1 on this machine's engine, once
for the module. Xinference has no test image yet: its service is removed from the rendered
document, the only change made to it.
"""

import contextlib
import json
import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

from deployments.choices import Registry
from deployments.models import EmbeddingModelConfig, LLMModelConfig, Stack
from deployments.stacks import secrets as stack_secrets
from deployments.stacks.render import COMPOSE_FILE, NETWORK, compose_document, render
from testkit.docker_engine import docker, engine_error, image_id
from testkit.registry import MIRROR_PREFIX
from testkit.target import free_port

pytestmark = pytest.mark.slow

PROJECT_PREFIX = "cpstacktest"
HEALTHY_TIMEOUT_SECONDS = 240
# bash runs the rendered mongo entrypoint as PID 1 and ignores SIGTERM: without a short stop
# timeout every stop of mongo waits compose's default 10 seconds for the SIGKILL.
STOP_TIMEOUT = "2"
# Services without a test image (see testkit/images/stack/README.md).
NOT_BUILT = ("xinference",)


def compose(project, *args: str, timeout: float = 300, check: bool = True):
    result = subprocess.run(
        [
            "docker-compose",
            "--no-ansi",
            "--project-name",
            project.name,
            "--project-directory",
            str(project.directory),
            "-f",
            str(project.directory / COMPOSE_FILE),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftover_projects() -> None:
    """Containers and networks of earlier runs of this module whose process has gone."""
    label = "com.docker.compose.project"
    for kind, list_command in (("container", ["ps", "-a"]), ("network", ["network", "ls"])):
        listed = docker(
            *list_command,
            "--filter",
            f"label={label}",
            "--format",
            f'{{{{.ID}}}} {{{{.Label "{label}"}}}}',
        ).stdout.decode()
        gone = []
        for line in listed.splitlines():
            object_id, _, project = line.partition(" ")
            pid = project.removeprefix(PROJECT_PREFIX).split("x")[0]
            if project.startswith(PROJECT_PREFIX) and pid.isdigit() and not _pid_alive(int(pid)):
                gone.append(object_id)
        if gone:
            docker(kind, "rm", *(["-f", "-v"] if kind == "container" else []), *gone, check=False)


@pytest.fixture(scope="module")
def stack_images():
    """{service: references}: built where missing and pushed to the local registry."""
    from testkit.images.stack import ensure_stack_images

    problem = engine_error()
    if problem:
        raise RuntimeError(f"{problem} (scripts/test starts the engine.)")
    return ensure_stack_images()


def test_every_image_is_pulled_back_from_the_local_registry(stack_images):
    references = [ref for refs in stack_images.values() for ref in refs]
    assert {ref.rsplit("/", 1)[0] for ref in references} == {MIRROR_PREFIX}
    for reference in references:
        built = image_id(reference)
        docker("rmi", reference)  # the tag only: the build's own tag keeps the layers
        assert image_id(reference) is None
        docker("pull", reference, timeout=300)
        assert image_id(reference) == built, reference


class Project:
    """A rendered stack's files in a directory, run as one compose project."""

    def __init__(self, directory: Path, stack: Stack, secrets: dict[str, str]) -> None:
        self.name = f"{PROJECT_PREFIX}{os.getpid()}x{uuid.uuid4().hex[:8]}"
        self.directory = directory
        self.stack = stack
        self.secrets = secrets
        self.containers: dict[str, str] = {}

    def container(self, service: str) -> str:
        """The service's container id (a restart keeps the container)."""
        if service not in self.containers:
            listed = docker(
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.compose.project={self.name}",
                "--format",
                '{{.ID}} {{.Label "com.docker.compose.service"}}',
            ).stdout.decode()
            self.containers = dict(reversed(line.split(" ", 1)) for line in listed.splitlines())
        assert service in self.containers, f"No container for {service}"
        return self.containers[service]

    def inspect(self, service: str) -> dict:
        return json.loads(docker("inspect", self.container(service)).stdout)[0]

    def address(self, service: str) -> str:
        """The container's address on the stack's network; this machine reaches it directly."""
        networks = self.inspect(service)["NetworkSettings"]["Networks"]
        return networks[f"{self.name}_{NETWORK}"]["IPAddress"]

    def exec(self, service: str, *command: str) -> subprocess.CompletedProcess:
        return docker("exec", self.container(service), *command, check=False, timeout=60)

    def wait_until_healthy(self, services: list[str]) -> None:
        deadline = time.monotonic() + HEALTHY_TIMEOUT_SECONDS
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            for service in services:
                state = self.inspect(service)["State"]
                states[service] = state.get("Health", {}).get("Status", state["Status"])
                if state.get("Restarting") or state["Status"] == "exited":
                    self.fail(f"{service} stopped: {state}")
            if all(status == "healthy" for status in states.values()):
                return
            time.sleep(1)
        self.fail(f"Not healthy within {HEALTHY_TIMEOUT_SECONDS}s: {states}")

    def fail(self, message: str) -> None:
        logs = compose(self, "logs", "--no-color", "--tail", "40", check=False).stdout
        health = {}
        for service in self.services():
            with contextlib.suppress(Exception):
                health[service] = (
                    self.inspect(service)["State"].get("Health", {}).get("Log", [])[-2:]
                )
        pytest.fail(f"{message}\n\nHealth checks: {json.dumps(health, indent=1)}\n\nLogs:\n{logs}")

    def services(self) -> list[str]:
        document = yaml.safe_load((self.directory / COMPOSE_FILE).read_text())
        return list(document["services"])


@pytest.fixture(scope="module")
def project(stack_images, tmp_path_factory):
    # Not saved: rendering reads the stack's fields only, and the secrets are generated here.
    stack = Stack(
        pk=1,
        name="mirror",
        registry=Registry.CUSTOM,
        registry_prefix=MIRROR_PREFIX,
        fastgpt_port=free_port(),
        oneapi_port=free_port(),
    )
    secrets = stack_secrets.generate()
    llm = LLMModelConfig(model="qwen2-instruct", display_name="Qwen2", xinference_model_name="q")
    embedding = EmbeddingModelConfig(
        model="bge-m3", display_name="BGE M3", xinference_model_name="bge-m3", dimensions=1024
    )
    rendered = render(stack, secrets, llms=[llm], embeddings=[embedding])
    document = compose_document(stack)
    assert yaml.safe_load(rendered.files[COMPOSE_FILE]) == document
    for service in NOT_BUILT:
        del document["services"][service]
    directory = tmp_path_factory.mktemp("stack")
    for name, text in rendered.files.items():
        (directory / name).write_text(text)
    (directory / COMPOSE_FILE).write_text(yaml.safe_dump(document, sort_keys=False, width=100))

    remove_leftover_projects()
    project = Project(directory, stack, secrets)
    try:
        compose(project, "pull", "--quiet")
        compose(project, "up", "-d")
        project.wait_until_healthy(project.services())
        yield project
    finally:
        compose(project, "down", "-v", "--timeout", STOP_TIMEOUT, check=False)


def test_every_image_comes_from_the_custom_prefix(project):
    document = yaml.safe_load((project.directory / COMPOSE_FILE).read_text())
    for name, service in document["services"].items():
        assert service["image"].startswith(f"{MIRROR_PREFIX}/"), name
        assert project.inspect(name)["Config"]["Image"] == service["image"]


def test_postgres_takes_the_generated_password_and_runs_pgvector(project):
    with psycopg.connect(
        host=project.address("pg"),
        user="fastgpt",
        password=project.secrets["PG_PASSWORD"],
        dbname="postgres",
        connect_timeout=10,
    ) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        connection.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(3))")
        connection.execute(
            "INSERT INTO items VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0,0.9,0.1]')"
        )
        nearest = connection.execute(
            "SELECT id FROM items ORDER BY embedding <-> '[0,1,0.05]' LIMIT 2"
        ).fetchall()
        version = connection.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
    assert nearest == [(2,), (3,)]
    assert version[0].startswith("0.")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            host=project.address("pg"), user="fastgpt", password="wrong", dbname="postgres"
        )


def test_mariadb_takes_the_generated_root_password_and_has_the_oneapi_database(project):
    password = project.secrets["MYSQL_ROOT_PASSWORD"]
    # Over the stack's network, as One API connects: root from any host.
    query = ["mariadb", "-h", "mysql", "-uroot", f"-p{password}", "-N", "-e"]
    databases = project.exec("mysql", *query, "SHOW DATABASES")
    assert databases.returncode == 0, databases.stderr
    assert "oneapi" in databases.stdout.decode().split()
    denied = project.exec("mysql", "mariadb", "-h", "mysql", "-uroot", "-pwrong", "-e", "SELECT 1")
    assert denied.returncode != 0


def test_oneapi_standin_answers_its_status(project):
    url = f"http://127.0.0.1:{project.stack.oneapi_port}/api/status"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["success"] is True


def test_fastgpt_standin_serves_the_rendered_config(project):
    url = f"http://127.0.0.1:{project.stack.fastgpt_port}/api/common/system/getInitData"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["code"] == 200
    assert [model["model"] for model in body["data"]["llmModels"]] == ["qwen2-instruct"]
    assert [model["model"] for model in body["data"]["vectorModels"]] == ["bge-m3"]


def mongo_state(project, name: str) -> dict:
    return json.loads((project.directory / "mongo" / "data" / "standin" / name).read_text())


def test_mongo_replica_set_is_initiated_once_and_survives_a_restart(project):
    mongod = mongo_state(project, "mongod.json")
    assert mongod["replSet"] == "rs0"
    assert mongod["keyFile"] == "/data/mongodb.key"
    replset = mongo_state(project, "replset.json")
    assert replset["config"]["members"] == [{"_id": 0, "host": "mongo:27017"}]
    assert [call["ok"] for call in replset["initiateCalls"]] == [1]

    compose(project, "restart", "--timeout", STOP_TIMEOUT, "mongo")
    project.wait_until_healthy(["mongo"])

    assert mongo_state(project, "mongod.json")["starts"] == mongod["starts"] + 1
    # The entrypoint found the set initiated and left it alone.
    assert len(mongo_state(project, "replset.json")["initiateCalls"]) == 1
    status = project.exec(
        "mongo",
        "mongo",
        "--quiet",
        "-u",
        "fastgpt",
        "-p",
        project.secrets["MONGO_PASSWORD"],
        "--authenticationDatabase",
        "admin",
        "--eval",
        "rs.status().ok",
    )
    assert status.stdout.decode().strip() == "1"
