"""Running compose for a stack on its server: the command line, and the check that the
server can run it at all."""

from ..clients.ssh import SSHClient
from ..errors import PanelError
from ..models import Stack
from ..servers.facts import compose_command, gather_facts
from .render import COMPOSE_FILE, ENV_FILE, project_name

OVERRIDE_FILE = "docker-compose.override.yml"


class ServerNotReady(PanelError):
    """The server lacks what a stack needs (the Docker engine, compose)."""


def server_facts(client: SSHClient) -> dict:
    """The server's facts, once it is known to run Docker and compose."""
    facts = gather_facts(client, sudo=True)
    if not (facts.get("docker") or {}).get("server_version"):
        raise ServerNotReady(
            "The Docker engine does not answer on this server: press “Prepare server” first."
        )
    if not (facts.get("compose") or {}).get("version"):
        raise ServerNotReady("Compose is missing on this server: press “Prepare server” first.")
    return facts


def compose_argv(client: SSHClient, stack: Stack, facts: dict) -> list[str]:
    directory = stack.data_dir
    files = ["--file", f"{directory}/{COMPOSE_FILE}"]
    # An operator's own additions, kept on the server across deploys (the panel never
    # writes this file): extra volumes, limits, a proxy network.
    override = f"{directory}/{OVERRIDE_FILE}"
    if client.run(["test", "-f", override], check=False, timeout=30).exit_status == 0:
        files += ["--file", override]
    return [
        *compose_command(facts),
        "--project-name",
        project_name(stack),
        "--project-directory",
        directory,
        *files,
        "--env-file",
        f"{directory}/{ENV_FILE}",
    ]
