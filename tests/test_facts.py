"""Server facts: the parsers on real recorded outputs, and gather_facts with a fake client.

The fixtures are described in tests/fixtures/{nvidia_smi,docker,host}/README.md. Files that
end in an added `exit=N` line are read with `recorded()`, which splits that line off.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployments.servers.facts import (
    NVIDIA_QUERY_FIELDS,
    FactsError,
    check_docker_gpu,
    compose_command,
    explain_docker_failure,
    explain_nvidia_smi_failure,
    gather_facts,
    parse_compose_version,
    parse_cpu,
    parse_df_bytes,
    parse_docker_info,
    parse_docker_version,
    parse_meminfo,
    parse_nvidia_smi_csv,
    parse_nvidia_smi_list,
    parse_nvidia_smi_table,
    parse_os_release,
    parse_toolkit_version,
)

FIXTURES = Path(__file__).parent / "fixtures"
UUID0 = "GPU-00000000-0000-0000-0000-000000000000"
UUID1 = "GPU-00000000-0000-0000-0000-000000000001"
QUERY = "--query-gpu=" + ",".join(NVIDIA_QUERY_FIELDS)

H100 = {
    "index": 0,
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": UUID0,
    "memory_total_mib": 81559,
    "memory_used_mib": 0,
    "memory_free_mib": 81079,
    "driver_version": "580.159.04",
    "compute_cap": "9.0",
}
H200 = {
    "index": 0,
    "name": "NVIDIA H200",
    "uuid": UUID0,
    "memory_total_mib": 143771,
    "memory_used_mib": 0,
    "memory_free_mib": 143156,
    "driver_version": "580.159.04",
    "compute_cap": "9.0",
}
UBUNTU = {"id": "ubuntu", "version_id": "24.04", "pretty_name": "Ubuntu 24.04.3 LTS"}
DEBIAN = {"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)"}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def recorded(name: str) -> tuple[str, int]:
    """(output, exit status) of a fixture whose added last line is `exit=N`."""
    text = fixture(name)
    body, _, last = text.rstrip("\n").rpartition("\n")
    assert last.startswith("exit="), f"{name} has no exit line"
    return (body + "\n" if body else ""), int(last.removeprefix("exit="))


# --- system -----------------------------------------------------------------------------------


def test_os_release_ubuntu_and_debian():
    assert parse_os_release(fixture("nvidia_smi/os-release.txt")) == UBUNTU
    assert parse_os_release(fixture("host/os-release_debian12.txt")) == DEBIAN


def test_os_release_garbage():
    with pytest.raises(FactsError, match=r"does not look like /etc/os-release.*'hello there'"):
        parse_os_release("hello there\n")
    with pytest.raises(FactsError, match="does not look like /etc/os-release"):
        parse_os_release("")


def test_meminfo():
    assert parse_meminfo(fixture("host/meminfo_h200.txt")) == {
        "total_bytes": 135148564480,
        "available_bytes": 134626426880,
    }
    assert parse_meminfo(fixture("host/meminfo_debian12.txt")) == {
        "total_bytes": 25276502016,
        "available_bytes": 24521617408,
    }


def test_meminfo_without_memavailable_adds_free_buffers_and_cached():
    # The real H200 file with its MemAvailable line taken out, as kernels before 3.14 print.
    text = "".join(
        line
        for line in fixture("host/meminfo_h200.txt").splitlines(keepends=True)
        if not line.startswith("MemAvailable:")
    )
    assert parse_meminfo(text)["available_bytes"] == (130653220 + 69688 + 948036) * 1024


def test_meminfo_garbage():
    with pytest.raises(FactsError, match=r"/proc/meminfo \(no MemTotal\).*'cat: /proc/mem"):
        parse_meminfo("cat: /proc/meminfo: No such file or directory\n")


def test_cpu_from_lscpu_or_cpuinfo():
    nproc = fixture("host/nproc_h200.txt")
    expected = {"cores": 16, "model": "Intel(R) Xeon(R) Processor"}
    assert parse_cpu(nproc, fixture("host/lscpu_h200.txt")) == expected
    assert parse_cpu(nproc, fixture("host/cpuinfo_first_cpu_h200.txt")) == expected
    assert parse_cpu(fixture("host/nproc_debian12.txt"), None) == {"cores": 2, "model": None}


def test_cpu_garbage():
    with pytest.raises(FactsError, match="nproc's output is not a whole number"):
        parse_cpu("bash: line 1: nproc: command not found\n", "")
    with pytest.raises(FactsError, match="at least one processor"):
        parse_cpu("0\n")


def test_df_bytes():
    assert parse_df_bytes(fixture("host/df_root_h200.txt")) == {
        "total_bytes": 270553174016,
        "free_bytes": 68701601792,
    }
    assert parse_df_bytes(fixture("host/df_var_lib_docker_debian12.txt")) == {
        "total_bytes": 270553174016,
        "free_bytes": 83204403200,
    }


def test_df_failure_output_is_refused():
    output, status = recorded("host/fail_df_missing_h200.txt")
    assert status == 1
    with pytest.raises(FactsError, match=r"df did not print.*No such file or directory"):
        parse_df_bytes(output)


# --- nvidia-smi -------------------------------------------------------------------------------


def test_csv_h100_with_header_and_units_ignores_other_fields():
    # This file also has utilization, temperature and power columns.
    assert parse_nvidia_smi_csv(fixture("nvidia_smi/query_gpu_h100_x1.csv")) == [H100]


def test_csv_h100_noheader_nounits_with_its_fields():
    fields = ("index", "name", "memory.total", "memory.used", "memory.free", "driver_version")
    gpus = parse_nvidia_smi_csv(
        fixture("nvidia_smi/query_gpu_h100_x1_noheader_nounits.csv"), fields
    )
    assert gpus == [{**H100, "uuid": None, "compute_cap": None}]


def test_csv_h200_both_forms():
    assert parse_nvidia_smi_csv(fixture("nvidia_smi/query_gpu_h200_x1.csv")) == [H200]
    noheader = fixture("nvidia_smi/query_gpu_h200_x1_noheader_nounits.csv")
    assert parse_nvidia_smi_csv(noheader) == [H200]
    assert parse_nvidia_smi_csv(noheader, NVIDIA_QUERY_FIELDS) == [H200]


def test_csv_two_gpus_synthetic_fixture():
    """SYNTHETIC fixture: the real H100 row copied as GPU 1 (no multi-GPU machine was lent)."""
    gpus = parse_nvidia_smi_csv(fixture("nvidia_smi/two_gpus_synthetic.csv"))
    assert gpus == [H100, {**H100, "index": 1, "uuid": UUID1}]


def test_csv_not_available_values_are_none():
    # The real H200 header with a hand-edited row: "[N/A]" as nvidia-smi prints under MIG.
    header = fixture("nvidia_smi/query_gpu_h200_x1.csv").splitlines()[0]
    row = f"0, NVIDIA H200, {UUID0}, 143771 MiB, [N/A], [N/A], 580.159.04, 9.0"
    gpu = parse_nvidia_smi_csv(f"{header}\n{row}\n")[0]
    assert gpu["memory_used_mib"] is None and gpu["memory_free_mib"] is None
    assert gpu["memory_total_mib"] == 143771


def test_csv_empty_is_no_gpu():
    assert parse_nvidia_smi_csv("") == []
    assert parse_nvidia_smi_csv(fixture("nvidia_smi/query_gpu_h200_x1.csv").splitlines()[0]) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            recorded("nvidia_smi/fail_invalid_field_h200.txt")[0],
            r"line 1 has 1 fields where 8 were expected: 'Field \"bogus_field\"",
        ),
        (
            recorded("nvidia_smi/fail_no_nvml_library_h200.txt")[0],
            r"line 1 has 1 fields where 8 were expected: \"NVIDIA-SMI couldn't find",
        ),
        ("0, NVIDIA H200\n", "line 1 has 2 fields where 8 were expected"),
        (
            "index, memory.total [MiB]\n0, lots MiB\n",
            "line 2: memory.total should be a number, got 'lots MiB'",
        ),
        ("index, name\nzero, NVIDIA H200\n", "line 2: index should be a number"),
        ("memory.total [MiB]\n1 MiB\n", "neither an index, a name nor a UUID column"),
    ],
)
def test_csv_garbage(text, message):
    with pytest.raises(FactsError, match=message):
        parse_nvidia_smi_csv(text)


@pytest.mark.parametrize("name", ["nvidia_smi_h100_x1.txt", "nvidia_smi_h200_x1.txt"])
def test_table_header(name):
    assert parse_nvidia_smi_table(fixture(f"nvidia_smi/{name}")) == {
        "driver_version": "580.159.04",
        "cuda_version": "13.0",
    }


def test_table_garbage():
    output, _ = recorded("nvidia_smi/fail_driver_unreachable_h200.txt")
    with pytest.raises(FactsError, match="did not print its table.*couldn't communicate"):
        parse_nvidia_smi_table(output)


def test_list():
    assert parse_nvidia_smi_list(fixture("nvidia_smi/list_h200_x1.txt")) == [
        {"index": 0, "name": "NVIDIA H200", "uuid": UUID0}
    ]
    assert parse_nvidia_smi_list(fixture("nvidia_smi/list_h100_x1.txt")) == [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": UUID0}
    ]


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("fail_no_nvml_library_h200.txt", 12, "NVIDIA driver is missing or broken"),
        ("fail_driver_unreachable_h200.txt", 9, "NVIDIA driver is not loaded"),
        ("fail_gpu_access_blocked_h200.txt", 17, "operating system blocks access to the GPU"),
        ("fail_not_found_bash.txt", 127, "nvidia-smi is not installed"),
        ("fail_not_found_sh.txt", 127, "nvidia-smi is not installed"),
        ("fail_not_found_timeout_wrapper.txt", 127, "nvidia-smi is not installed"),
        ("fail_invalid_field_h200.txt", 2, "does not know a field that was asked for"),
    ],
)
def test_explain_nvidia_smi_failures(name, status, words):
    output, exit_status = recorded(f"nvidia_smi/{name}")
    assert exit_status == status
    assert words in explain_nvidia_smi_failure(exit_status, output)


def test_explain_nvidia_smi_other_failures():
    assert explain_nvidia_smi_failure(3, "Something odd\n") == (
        "nvidia-smi failed (exit status 3): Something odd"
    )
    assert explain_nvidia_smi_failure(4, "") == (
        "nvidia-smi failed with exit status 4 and printed nothing."
    )


# --- Docker, compose, toolkit -----------------------------------------------------------------


def test_docker_version():
    assert parse_docker_version(fixture("docker/version_json_20.10.txt")) == {
        "client_version": "20.10.24+dfsg1",
        "server_version": "20.10.24+dfsg1",
    }
    output, status = recorded("docker/version_json_20.10_daemon_down.txt")
    assert status == 1
    assert parse_docker_version(output) == {
        "client_version": "20.10.24+dfsg1",
        "server_version": None,
    }


def test_docker_version_garbage():
    output, _ = recorded("docker/docker_not_found_bash.txt")
    with pytest.raises(FactsError, match="docker version did not print JSON: 'bash: line 1"):
        parse_docker_version(output)
    with pytest.raises(FactsError, match="broken JSON"):
        parse_docker_version('{"Client": \n')


def test_docker_info():
    assert parse_docker_info(fixture("docker/info_json_20.10.txt")) == {
        "server_version": "20.10.24+dfsg1",
        "data_root": "/var/lib/docker",
        "runtimes": ["io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc"],
        "default_runtime": "runc",
    }


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("info_json_20.10_daemon_down.txt", 0, "its engine is not running"),
        ("info_json_28.2_daemon_down.txt", 1, "its engine is not running"),
        ("info_json_20.10_permission_denied.txt", 0, "permission denied on the Docker socket"),
    ],
)
def test_docker_info_without_an_engine(name, status, words):
    output, exit_status = recorded(f"docker/{name}")
    assert exit_status == status
    with pytest.raises(FactsError, match=words):
        parse_docker_info(output)


def test_explain_docker_failures():
    output, status = recorded("docker/docker_not_found_bash.txt")
    assert explain_docker_failure(status, output) == (
        "Docker is not installed (the docker command was not found)."
    )
    assert explain_docker_failure(1, "sudo: docker: command not found\n").startswith(
        "Docker is not installed"
    )
    assert explain_docker_failure(2, "weird\n") == "docker failed (exit status 2): weird"


def test_compose_v1_real_outputs():
    assert parse_compose_version(recorded("docker/docker_compose_1.29.2_version_short.txt")[0]) == {
        "version": "1.29.2"
    }
    assert parse_compose_version(recorded("docker/docker_compose_1.29.2_version.txt")[0]) == {
        "version": "1.29.2"
    }


@pytest.mark.parametrize(
    ("text", "version"),
    [
        # Hand-written in the formats compose v2 prints (no v2 was installed to record from).
        ("Docker Compose version v2.24.5\n", "2.24.5"),
        ("Docker Compose version v2.29.1-desktop.1\n", "2.29.1-desktop.1"),
        ("Docker Compose version 2.20.2+ds1-0ubuntu1~22.04.1\n", "2.20.2+ds1-0ubuntu1~22.04.1"),
        ("2.24.5\n", "2.24.5"),
    ],
)
def test_compose_v2_formats(text, version):
    assert parse_compose_version(text) == {"version": version}


def test_compose_garbage():
    output, status = recorded("docker/compose_plugin_missing_20.10.txt")
    assert status == 1
    with pytest.raises(FactsError, match="not a compose version: \"docker: 'compose'"):
        parse_compose_version(output)
    with pytest.raises(FactsError, match=r"not a compose version: '\(nothing\)'"):
        parse_compose_version("")


@pytest.mark.parametrize(
    ("text", "version"),
    [
        # Hand-written in the formats the toolkit prints (it was not installed anywhere
        # recordings were made).
        ("NVIDIA Container Toolkit CLI version 1.17.8\ncommit: 0123abc\n", "1.17.8"),
        ("cli-version: 1.13.5\nlib-version: 1.13.5\nbuild date: 2023-07-18\n", "1.13.5"),
        ("version: 1.0.7\nbuild date: 2020-01-21T18:59+00:00\n", "1.0.7"),
    ],
)
def test_toolkit_version(text, version):
    assert parse_toolkit_version(text) == version


def test_toolkit_version_garbage():
    output, _ = recorded("nvidia_smi/fail_not_found_bash.txt")
    with pytest.raises(FactsError, match="not the version of the NVIDIA container toolkit"):
        parse_toolkit_version(output)


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


def test_compose_command():
    assert compose_command({"compose": {"variant": "plugin", "version": "2.24.5"}}) == [
        "docker",
        "compose",
    ]
    assert compose_command({"compose": {"variant": "standalone", "version": "2.24.5"}}) == [
        "docker-compose"
    ]
    with pytest.raises(FactsError, match="not found"):
        compose_command({})


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
