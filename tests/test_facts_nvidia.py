"""nvidia-smi's parsers on real recorded outputs, and its failures in plain words."""

import pytest

from deployments.servers.facts.nvidia import (
    NVIDIA_GPU_FIELDS,
    explain_nvidia_smi_failure,
    parse_nvidia_smi_csv,
    parse_nvidia_smi_list,
    parse_nvidia_smi_table,
)
from deployments.servers.facts.output import FactsError
from testkit.recorded_outputs import H100, H200, UUID0, UUID1, fixture, recorded


def test_csv_h100_with_header_and_units_reads_utilization_and_ignores_other_fields():
    # This file also has temperature and power columns.
    assert parse_nvidia_smi_csv(fixture("nvidia_smi/query_gpu_h100_x1.csv")) == [H100]


def test_csv_h100_noheader_nounits_with_its_fields():
    fields = ("index", "name", "memory.total", "memory.used", "memory.free", "driver_version")
    gpus = parse_nvidia_smi_csv(
        fixture("nvidia_smi/query_gpu_h100_x1_noheader_nounits.csv"), fields
    )
    assert gpus == [{**H100, "uuid": None, "compute_cap": None, "utilization_percent": None}]


def test_csv_h200_both_forms():
    assert parse_nvidia_smi_csv(fixture("nvidia_smi/query_gpu_h200_x1.csv")) == [H200]
    noheader = fixture("nvidia_smi/query_gpu_h200_x1_noheader_nounits.csv")
    assert parse_nvidia_smi_csv(noheader) == [H200]
    assert parse_nvidia_smi_csv(noheader, NVIDIA_GPU_FIELDS) == [H200]


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
