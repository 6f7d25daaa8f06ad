"""Server facts: gather_facts and check_docker_gpu with a fake client that answers with
real recorded outputs.

The parsers are tested on their own in test_facts_system.py, test_facts_nvidia.py and
test_facts_docker.py.
"""

import json
from dataclasses import dataclass

import pytest

from deployments.servers.facts import (
    NVIDIA_QUERY_FIELDS,
    FactsError,
    check_docker_gpu,
    compose_command,
    gather_facts,
)
from testkit.recorded_outputs import DEBIAN, H100, H200, UBUNTU, UUID0, fixture, recorded

QUERY = "--query-gpu=" + ",".join(NVIDIA_QUERY_FIELDS)


# --- gather_facts with a fake client ----------------------------------------------------------


@dataclass
class FakeResult:
    argv: list
    exit_status: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class FakeSSHError(Exception):
    """Stands in for the SSH client's error, with its kind."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class FakeClient:
    """Answers argv tuples from a dict; anything else is "command not found" (exit 127)."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.calls: list[tuple[tuple, bool]] = []

    def run(self, argv, *, check=True, timeout=None, sudo=False):
        assert check is False and timeout
        key = tuple(argv)
        self.calls.append((key, sudo))
        answer = self.answers.get(key)
        if isinstance(answer, Exception):
            raise answer
        if answer is None:
            return FakeResult(argv, 127, "", f"bash: line 1: {argv[0]}: command not found\n")
        output, status = answer
        # Recorded outputs hold stdout and stderr together; a failure's goes to stderr.
        if status == 0:
            return FakeResult(argv, status, output, "")
        return FakeResult(argv, status, "", output)

    def ran(self, *argv) -> bool:
        return any(key == argv for key, _ in self.calls)


def ok(name: str) -> tuple[str, int]:
    return fixture(name), 0


DOCKER_VERSION = ("docker", "version", "--format", "{{json .}}")
DOCKER_INFO = ("docker", "info", "--format", "{{json .}}")
SMI_QUERY = ("nvidia-smi", QUERY, "--format=csv")


def h200_answers() -> dict:
    """The lent H200 machine as recorded: no Docker, no compose, no container toolkit."""
    return {
        ("cat", "/etc/os-release"): ok("nvidia_smi/os-release.txt"),
        ("uname", "-m"): ok("host/uname_m_h200.txt"),
        ("nproc",): ok("host/nproc_h200.txt"),
        ("env", "LC_ALL=C", "lscpu"): ok("host/lscpu_h200.txt"),
        ("cat", "/proc/meminfo"): ok("host/meminfo_h200.txt"),
        ("df", "-B1", "--output=size,avail", "/"): ok("host/df_root_h200.txt"),
        DOCKER_VERSION: recorded("docker/docker_not_found_bash.txt"),
        SMI_QUERY: ok("nvidia_smi/query_gpu_h200_x1.csv"),
        ("nvidia-smi",): ok("nvidia_smi/nvidia_smi_h200_x1.txt"),
    }


def debian_answers() -> dict:
    """The Debian 12 machine as recorded: Docker 20.10, docker-compose 1.29.2, no GPU."""
    return {
        ("cat", "/etc/os-release"): ok("host/os-release_debian12.txt"),
        ("uname", "-m"): ok("host/uname_m_debian12.txt"),
        ("nproc",): ok("host/nproc_debian12.txt"),
        ("cat", "/proc/meminfo"): ok("host/meminfo_debian12.txt"),
        ("df", "-B1", "--output=size,avail", "/var/lib/docker"): ok(
            "host/df_var_lib_docker_debian12.txt"
        ),
        DOCKER_VERSION: ok("docker/version_json_20.10.txt"),
        DOCKER_INFO: ok("docker/info_json_20.10.txt"),
        ("docker", "compose", "version"): recorded("docker/compose_plugin_missing_20.10.txt"),
        ("docker-compose", "version", "--short"): recorded(
            "docker/docker_compose_1.29.2_version_short.txt"
        ),
        SMI_QUERY: recorded("nvidia_smi/fail_not_found_bash.txt"),
    }


def test_gather_facts_h200():
    client = FakeClient(h200_answers())
    facts = gather_facts(client)
    docker_error = "Docker is not installed (the docker command was not found)."
    compose_error = (
        "Docker Compose is not installed: neither `docker compose` (the plugin) nor "
        "`docker-compose` works on this server."
    )
    assert facts == {
        "os": UBUNTU,
        "arch": "x86_64",
        "cpu": {"cores": 16, "model": "Intel(R) Xeon(R) Processor"},
        "memory": {"total_bytes": 135148564480, "available_bytes": 134626426880},
        "docker": {"error": docker_error},
        "disk": {"path": "/", "total_bytes": 270553174016, "free_bytes": 68701601792},
        "gpus": [H200],
        "nvidia": {"driver_version": "580.159.04", "cuda_version": "13.0"},
        "compose": {"error": compose_error},
        "nvidia_container_toolkit": {"installed": False, "version": None, "docker_runtime": False},
        "errors": {"docker": docker_error, "compose": compose_error},
    }
    assert json.loads(json.dumps(facts)) == facts
    assert not client.ran(*DOCKER_INFO)  # no docker: info is not asked


def test_gather_facts_debian_docker_host_without_gpu():
    client = FakeClient(debian_answers())
    facts = gather_facts(client)
    assert facts["os"] == DEBIAN
    assert facts["cpu"] == {"cores": 2, "model": None}  # no lscpu, no /proc/cpuinfo answer
    assert facts["docker"] == {
        "client_version": "20.10.24+dfsg1",
        "server_version": "20.10.24+dfsg1",
        "data_root": "/var/lib/docker",
        "runtimes": ["io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc"],
        "default_runtime": "runc",
    }
    assert facts["disk"] == {
        "path": "/var/lib/docker",
        "total_bytes": 270553174016,
        "free_bytes": 83204403200,
    }
    assert facts["compose"] == {"variant": "v1", "version": "1.29.2"}
    assert compose_command(facts) == ["docker-compose"]
    assert facts["gpus"] == []
    assert "nvidia-smi is not installed" in facts["nvidia"]["error"]
    assert facts["errors"] == {"nvidia": facts["nvidia"]["error"]}
    assert not client.ran("nvidia-smi")  # the table is not asked for after a failed query


def test_gather_facts_survives_failing_probes():
    answers = debian_answers()
    answers.update(
        {
            ("cat", "/etc/os-release"): ("garbage without equals signs\n", 0),
            ("uname", "-m"): ("uname: cannot get system name\n", 1),
            ("nproc",): ("", 0),
            ("cat", "/proc/meminfo"): ("cat: /proc/meminfo: Permission denied\n", 1),
            DOCKER_VERSION: recorded("docker/version_json_20.10_daemon_down.txt"),
            DOCKER_INFO: recorded("docker/info_json_20.10_daemon_down.txt"),
            ("df", "-B1", "--output=size,avail", "/"): recorded("host/fail_df_missing_h200.txt"),
            SMI_QUERY: recorded("nvidia_smi/fail_no_nvml_library_h200.txt"),
            ("docker-compose", "version", "--short"): ("not a version\n", 0),
        }
    )
    facts = gather_facts(FakeClient(answers))
    assert json.loads(json.dumps(facts)) == facts
    errors = facts["errors"]
    assert set(errors) == {"os", "arch", "cpu", "memory", "docker", "disk", "nvidia", "compose"}
    assert facts["arch"] is None
    assert "does not look like /etc/os-release" in facts["os"]["error"]
    assert errors["arch"] == "`uname -m` failed with exit status 1: uname: cannot get system name"
    assert "not a whole number" in facts["cpu"]["error"]
    assert "Permission denied" in facts["memory"]["error"]
    assert facts["docker"]["client_version"] == "20.10.24+dfsg1"
    assert "its engine is not running" in facts["docker"]["error"]
    assert "No such file or directory" in facts["disk"]["error"]
    assert "NVIDIA driver is missing or broken" in facts["nvidia"]["error"]
    assert facts["gpus"] == []
    assert "not a compose version" in facts["compose"]["error"]
    with pytest.raises(FactsError, match="not a compose version"):
        compose_command(facts)


def test_gather_facts_df_falls_back_to_root_when_the_docker_root_fails():
    answers = debian_answers()
    answers[("df", "-B1", "--output=size,avail", "/var/lib/docker")] = recorded(
        "host/fail_df_missing_h200.txt"
    )
    answers[("df", "-B1", "--output=size,avail", "/")] = ok("host/df_root_h200.txt")
    disk = gather_facts(FakeClient(answers))["disk"]
    assert disk == {"path": "/", "total_bytes": 270553174016, "free_bytes": 68701601792}


def test_gather_facts_asks_old_drivers_again_without_compute_cap():
    answers = h200_answers()
    answers[SMI_QUERY] = recorded("nvidia_smi/fail_invalid_field_h200.txt")
    fields = ",".join(field for field in NVIDIA_QUERY_FIELDS if field != "compute_cap")
    answers[("nvidia-smi", f"--query-gpu={fields}", "--format=csv")] = ok(
        "nvidia_smi/query_gpu_h100_x1.csv"
    )
    client = FakeClient(answers)
    assert gather_facts(client)["gpus"] == [H100]
    assert client.ran("nvidia-smi", f"--query-gpu={fields}", "--format=csv")


def test_gather_facts_docker_driver_unreachable():
    answers = h200_answers()
    answers[SMI_QUERY] = recorded("nvidia_smi/fail_driver_unreachable_h200.txt")
    facts = gather_facts(FakeClient(answers))
    assert facts["gpus"] == []
    assert facts["nvidia"]["error"].startswith("The NVIDIA driver is not loaded")


def test_gather_facts_sudo_applies_to_docker_commands_only():
    client = FakeClient(debian_answers())
    gather_facts(client, sudo=True)
    with_sudo = {key[0] for key, sudo in client.calls if sudo}
    without = {key[0] for key, sudo in client.calls if not sudo}
    assert with_sudo == {"docker", "docker-compose"}
    assert "docker" not in without and "cat" in without


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("The connection to gpu-host:22 was lost while `cat /proc/meminfo` ran.", "unreachable"),
        ("gpu-host:22 did not answer within 10 seconds.", "timeout"),
    ],
)
def test_gather_facts_lets_transport_errors_through(message, kind):
    answers = h200_answers()
    answers[("cat", "/proc/meminfo")] = FakeSSHError(message, kind)
    with pytest.raises(FakeSSHError, match=message[:20]):
        gather_facts(FakeClient(answers))


def test_gather_facts_a_probe_past_its_timeout_is_an_entry():
    answers = debian_answers()
    answers[DOCKER_INFO] = FakeSSHError(
        "`docker info --format '{{json .}}'` did not finish within 30 seconds on gpu-host:22 "
        "and was stopped.",
        "timeout",
    )
    answers[SMI_QUERY] = FakeSSHError(
        f"`nvidia-smi {QUERY} --format=csv` did not finish within 30 seconds on gpu-host:22 "
        "and was stopped.",
        "timeout",
    )
    facts = gather_facts(FakeClient(answers))
    assert facts["docker"] == {
        "error": "Docker did not answer in time: its engine may be hung or overloaded.",
        "client_version": "20.10.24+dfsg1",
    }
    assert facts["nvidia"]["error"].startswith("nvidia-smi did not finish in time")
    assert facts["compose"] == {"variant": "v1", "version": "1.29.2"}


def test_compose_plugin_is_preferred():
    answers = debian_answers()
    # Hand-written: what the plugin prints (no v2 plugin was installed to record from).
    answers[("docker", "compose", "version")] = ("Docker Compose version v2.24.5\n", 0)
    facts = gather_facts(FakeClient(answers))
    assert facts["compose"] == {"variant": "plugin", "version": "2.24.5"}
    assert compose_command(facts) == ["docker", "compose"]


# --- check_docker_gpu -------------------------------------------------------------------------

IMAGE = "ubuntu:22.04"
GPU_RUN = ("docker", "run", "--rm", "--gpus", "all", IMAGE, "nvidia-smi", "-L")


def gpu_docker_facts() -> dict:
    return {
        "gpus": [H200],
        "docker": {"server_version": "20.10.24+dfsg1", "runtimes": ["runc"]},
        "nvidia_container_toolkit": {"installed": True, "version": "1.17.8"},
    }


def test_docker_gpu_without_gpu_runs_nothing():
    client = FakeClient(debian_answers())
    facts = gather_facts(client)
    calls = len(client.calls)
    assert check_docker_gpu(client, IMAGE, facts) == {"ok": False, "reason": "No NVIDIA GPU found"}
    assert len(client.calls) == calls


def test_docker_gpu_gathers_what_it_needs_when_not_given_facts():
    client = FakeClient(debian_answers())
    assert check_docker_gpu(client, IMAGE) == {"ok": False, "reason": "No NVIDIA GPU found"}
    assert not client.ran(*GPU_RUN)


def test_docker_gpu_without_toolkit_runs_nothing():
    client = FakeClient(h200_answers())
    result = check_docker_gpu(client, IMAGE, gather_facts(client))
    assert result == {"ok": False, "reason": "The NVIDIA container toolkit is not installed"}
    assert not client.ran(*GPU_RUN)


def test_docker_gpu_works():
    client = FakeClient({GPU_RUN: ok("nvidia_smi/list_h200_x1.txt")})
    assert check_docker_gpu(client, IMAGE, gpu_docker_facts()) == {
        "ok": True,
        "reason": "",
        "gpus": [{"index": 0, "name": "NVIDIA H200", "uuid": UUID0}],
    }


def test_docker_gpu_engine_without_nvidia_runtime():
    output, status = recorded("docker/run_gpus_no_nvidia_runtime_20.10.txt")
    assert status == 125
    client = FakeClient({GPU_RUN: (output, status)})
    result = check_docker_gpu(client, IMAGE, gpu_docker_facts(), sudo=True)
    assert result["ok"] is False
    assert "nvidia-ctk runtime configure --runtime=docker" in result["reason"]
    assert client.calls == [(GPU_RUN, True)]


def test_docker_gpu_other_failure_says_what_docker_said():
    client = FakeClient({GPU_RUN: ("docker: Error response from daemon: boom.\n", 125)})
    result = check_docker_gpu(client, IMAGE, gpu_docker_facts())
    assert result == {
        "ok": False,
        "reason": "A container with GPUs did not start (exit status 125): "
        "docker: Error response from daemon: boom.",
    }


def test_docker_gpu_engine_down_runs_nothing():
    facts = gpu_docker_facts()
    facts["docker"] = {"error": "Docker is installed but its engine is not running."}
    client = FakeClient({})
    result = check_docker_gpu(client, IMAGE, facts)
    assert result == {"ok": False, "reason": "Docker is installed but its engine is not running."}
    assert client.calls == []
