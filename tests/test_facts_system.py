"""System facts' parsers on real recorded outputs: os-release, meminfo, nproc/lscpu, df."""

import pytest

from deployments.servers.facts.output import FactsError
from deployments.servers.facts.system import (
    parse_cpu,
    parse_df_bytes,
    parse_meminfo,
    parse_os_release,
)
from testkit.recorded_outputs import DEBIAN, UBUNTU, fixture, recorded


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
