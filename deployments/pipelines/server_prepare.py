"""Prepare a server: install what the stack needs (Docker engine, compose, and the NVIDIA
container toolkit where there is a GPU), restart Docker when needed, check again.

Every step looks before it acts, so a re-run on a prepared server changes nothing.
Commands are argv lists, run with sudo where the user is not root.
"""

from ..choices import PipelineKind
from ..clients.ssh import SSHClient
from ..models import Server
from ..servers.check import check_server
from ..servers.sessions import open_session
from .registry import register
from .steps import Pipeline, StepContext, StepFailed

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
SUPPORTED_OS = ("debian", "ubuntu")
NVIDIA_KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
NVIDIA_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
NVIDIA_REPO = "https://nvidia.github.io/libnvidia-container"


def _server(ctx: StepContext) -> Server:
    return Server.objects.get(pk=ctx.params["server_id"], team_id=ctx.run.team_id)


def _succeeds(client: SSHClient, argv: list[str], **kwargs) -> bool:
    return client.run(argv, check=False, timeout=60, **kwargs).exit_status == 0


def _apt_install(ctx: StepContext, client: SSHClient, packages: list[str]) -> None:
    ctx.log(f"apt-get install {' '.join(packages)}")
    client.run(["apt-get", "update", "-q"], sudo=True, env=APT_ENV, timeout=600, on_output=ctx.log)
    client.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        sudo=True,
        env=APT_ENV,
        timeout=1800,
        on_output=ctx.log,
    )


def _apt_has(client: SSHClient, package: str) -> bool:
    policy = client.run(["apt-cache", "policy", package], check=False, timeout=60).stdout
    return "Candidate:" in policy and "Candidate: (none)" not in policy


def connect_and_inspect(ctx: StepContext) -> str:
    server = _server(ctx)
    with open_session(server) as client:
        os_release = client.run(["cat", "/etc/os-release"], check=False, timeout=30).stdout
        user = client.run(["id", "-un"], timeout=30).stdout.strip()
        if user != "root" and not _succeeds(client, ["sudo", "-n", "true"]):
            raise StepFailed(
                f"User {user} needs a password for sudo. Allow passwordless sudo for it "
                "(a file in /etc/sudoers.d) or connect as root."
            )
    fields = dict(
        line.split("=", 1) for line in os_release.splitlines() if "=" in line and line.strip()
    )
    ids = {fields.get("ID", "").strip('"')} | set(fields.get("ID_LIKE", "").strip('"').split())
    name = fields.get("PRETTY_NAME", "an unknown system").strip('"')
    if not ids & set(SUPPORTED_OS):
        raise StepFailed(f"Preparing a server works on Debian and Ubuntu; this one runs {name}.")
    return f"Connected as {user} to {server.host}: {name}."


def install_docker_engine(ctx: StepContext) -> str:
    with open_session(_server(ctx)) as client:
        if _succeeds(client, ["docker", "version"], sudo=True):
            return "The Docker engine is installed and answers: nothing to do."
        if not _succeeds(client, ["sh", "-c", "command -v dockerd || command -v docker"]):
            _apt_install(ctx, client, ["docker.io"])
        if _succeeds(client, ["test", "-d", "/run/systemd/system"]):
            client.run(["systemctl", "enable", "--now", "docker"], sudo=True, timeout=120)
        if not _succeeds(client, ["docker", "version"], sudo=True):
            raise StepFailed(
                "Docker is installed but its engine does not answer: see "
                "`journalctl -u docker` on the server."
            )
    return "Docker engine installed and running."


def install_compose(ctx: StepContext) -> str:
    with open_session(_server(ctx)) as client:
        if _succeeds(client, ["docker", "compose", "version"], sudo=True):
            return "The docker compose plugin is installed: nothing to do."
        if _succeeds(client, ["docker-compose", "version"]):
            return "docker-compose (v1) is installed: nothing to do."
        # Ubuntu packages the plugin as docker-compose-v2; Debian has the v1 tool only.
        for package in ("docker-compose-v2", "docker-compose-plugin", "docker-compose"):
            if _apt_has(client, package):
                _apt_install(ctx, client, [package])
                return f"Installed {package}."
    raise StepFailed(
        "No compose package is available from this server's apt sources "
        "(tried docker-compose-v2, docker-compose-plugin, docker-compose)."
    )


def install_nvidia_toolkit(ctx: StepContext) -> str:
    with open_session(_server(ctx)) as client:
        if not _succeeds(client, ["nvidia-smi", "-L"]):
            return "No NVIDIA GPU answers nvidia-smi: the container toolkit is not needed."
        if _succeeds(client, ["nvidia-ctk", "--version"]):
            ctx.log("The NVIDIA container toolkit is installed.")
        else:
            key = client.run(["curl", "-fsSL", f"{NVIDIA_REPO}/gpgkey"], timeout=120).stdout
            client.run(["gpg", "--dearmor", "--yes", "-o", NVIDIA_KEYRING], stdin=key, sudo=True)
            source = client.run(
                ["curl", "-fsSL", f"{NVIDIA_REPO}/stable/deb/nvidia-container-toolkit.list"],
                timeout=120,
            ).stdout
            signed = source.replace("deb https://", f"deb [signed-by={NVIDIA_KEYRING}] https://")
            client.run(["tee", NVIDIA_LIST], stdin=signed, sudo=True, timeout=30)
            _apt_install(ctx, client, ["nvidia-container-toolkit"])
        client.run(
            ["nvidia-ctk", "runtime", "configure", "--runtime=docker"],
            sudo=True,
            timeout=60,
            on_output=ctx.log,
        )
    return "NVIDIA container toolkit installed and configured for Docker."


def restart_docker(ctx: StepContext) -> str:
    with open_session(_server(ctx)) as client:
        runtimes = client.run(
            ["docker", "info", "--format", "{{json .Runtimes}}"], sudo=True, check=False
        ).stdout
        toolkit = _succeeds(client, ["nvidia-ctk", "--version"])
        if toolkit and "nvidia" not in runtimes:
            if not _succeeds(client, ["test", "-d", "/run/systemd/system"]):
                raise StepFailed(
                    "The NVIDIA runtime was configured but Docker must be restarted, and this "
                    "server has no systemd to do it: restart the Docker engine by hand."
                )
            client.run(["systemctl", "restart", "docker"], sudo=True, timeout=180)
            return "Docker restarted so that it loads the NVIDIA runtime."
    return "Docker already runs with what it needs: no restart."


def recheck(ctx: StepContext) -> str:
    server = check_server(_server(ctx))
    if server.last_error:
        raise StepFailed(f"The server could not be checked again: {server.last_error}")
    docker = server.facts.get("docker") or {}
    compose = server.facts.get("compose") or {}
    if not docker.get("server_version"):
        raise StepFailed("The Docker engine still does not answer after preparing.")
    if not compose.get("version"):
        raise StepFailed("Compose is still missing after preparing.")
    return (
        f"Docker {docker['server_version']}, compose {compose.get('variant')} "
        f"{compose['version']}, {len(server.facts.get('gpus') or [])} GPU(s)."
    )


PREPARE = register(
    Pipeline(
        kind=PipelineKind.SERVER_PREPARE,
        steps=(
            ("connect", connect_and_inspect),
            ("install docker engine", install_docker_engine),
            ("install compose", install_compose),
            ("install nvidia container toolkit", install_nvidia_toolkit),
            ("restart docker", restart_docker),
            ("check again", recheck),
        ),
    )
)
