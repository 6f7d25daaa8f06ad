"""Whether a model fits a server's GPUs, on facts parsed by the real parser from the real
nvidia-smi outputs in tests/fixtures/nvidia_smi (see its README). Rows that no recorded
machine printed (a busy GPU, memory not reported) are written under a real header and say so.
"""

import json
from pathlib import Path

import pytest

from deployments.choices import Device
from deployments.llm.fit import FitResult, check_fit
from deployments.servers.facts import (
    explain_nvidia_smi_failure,
    parse_nvidia_smi_csv,
    parse_nvidia_smi_table,
)

FIXTURES = Path(__file__).parent / "fixtures" / "nvidia_smi"
UUID0 = "GPU-00000000-0000-0000-0000-000000000000"
UUID1 = "GPU-00000000-0000-0000-0000-000000000001"
GIB = 1024
H100_NAME = "GPU 0 (NVIDIA H100 80GB HBM3)"
H200_NAME = "GPU 0 (NVIDIA H200)"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def recorded(name: str) -> tuple[str, int]:
    """(output, exit status) of a fixture whose added last line is `exit=N`."""
    body, _, last = fixture(name).rstrip("\n").rpartition("\n")
    return body + "\n", int(last.removeprefix("exit="))


def gpu_facts(csv_text: str, table: str = "nvidia_smi_h100_x1.txt") -> dict:
    """The GPU part of a server's facts, as gather_facts records it from these outputs."""
    return {
        "gpus": parse_nvidia_smi_csv(csv_text),
        "nvidia": parse_nvidia_smi_table(fixture(table)),
    }


def no_gpu_facts(failure: str) -> dict:
    """The facts of a server whose nvidia-smi failed as recorded in FAILURE."""
    output, status = recorded(failure)
    return {"gpus": [], "nvidia": {"error": explain_nvidia_smi_failure(status, output)}}


@pytest.fixture
def h100() -> dict:
    return gpu_facts(fixture("query_gpu_h100_x1.csv"))


@pytest.fixture
def h200() -> dict:
    return gpu_facts(fixture("query_gpu_h200_x1.csv"), "nvidia_smi_h200_x1.txt")


def h100_header() -> str:
    return fixture("query_gpu_h100_x1.csv").splitlines()[0]


# One GPU ------------------------------------------------------------------------------------


def test_a_model_that_fits_an_idle_h100_names_the_gpu_and_its_free_memory(h100):
    fit = check_fit(h100, 16 * GIB, 1, Device.GPU)
    assert fit == FitResult(
        fits=True,
        message=f"The model fits: it needs 16 GiB on 1 GPU; {H100_NAME} has 79.2 GiB free.",
        gpus=[0],
    )


def test_the_free_memory_is_what_nvidia_smi_reported_not_the_total(h100):
    # The idle H100 reports 81559 MiB in all and 81079 MiB free.
    assert check_fit(h100, 81079, 1, "gpu").fits
    fit = check_fit(h100, 81080, 1, "gpu")
    assert not fit.fits
    # Both round to 79.2 GiB: the sentence then gives MiB, so the shortfall shows.
    assert fit.message == (
        "The model does not fit: it needs 81080 MiB on 1 GPU; the largest free is 81079 MiB "
        f"on {H100_NAME}."
    )


def test_a_model_too_big_for_the_h100_fits_the_h200(h100, h200):
    fit = check_fit(h100, 100 * GIB, 1, "gpu")
    assert not fit.fits and fit.gpus == []
    assert fit.message == (
        "The model does not fit: it needs 100 GiB on 1 GPU; the largest free is 79.2 GiB on "
        f"{H100_NAME}."
    )
    fit = check_fit(h200, 100 * GIB, 1, "gpu")
    assert fit.fits and not fit.warning
    assert (
        fit.message == f"The model fits: it needs 100 GiB on 1 GPU; {H200_NAME} has 139.8 GiB free."
    )


def test_the_h200_without_header_or_units_gives_the_same_answer(h200):
    plain = gpu_facts(fixture("query_gpu_h200_x1_noheader_nounits.csv"), "nvidia_smi_h200_x1.txt")
    for need in (0, 40 * GIB, 150 * GIB):
        assert check_fit(plain, need, 1, "gpu") == check_fit(h200, need, 1, "gpu")


def test_a_busy_gpu_counts_only_its_free_memory():
    # Not recorded: the real H100 header with a row of a GPU that has 9.5 GiB left.
    row = f"0, NVIDIA H100 80GB HBM3, {UUID0}, 81559 MiB, 71831 MiB, 9728 MiB, 580.159.04, "
    row += "100 %, 61, 402.10 W, 9.0"
    busy = gpu_facts(f"{h100_header()}\n{row}\n")
    fit = check_fit(busy, 16 * GIB, 1, "gpu")
    assert not fit.fits
    assert fit.message == (
        "The model does not fit: it needs 16 GiB on 1 GPU; the largest free is 9.5 GiB on "
        f"{H100_NAME}."
    )
    small = check_fit(busy, 600, 1, "gpu")
    assert small.fits
    assert (
        small.message == f"The model fits: it needs 600 MiB on 1 GPU; {H100_NAME} has 9.5 GiB free."
    )


def test_free_memory_that_nvidia_smi_did_not_report_passes_with_a_warning():
    # Not recorded: the real H100 header with "[N/A]" where nvidia-smi has no number (MIG).
    row = f"0, NVIDIA H100 80GB HBM3, {UUID0}, 81559 MiB, [N/A], [N/A], 580.159.04, "
    row += "[N/A], 38, 127.87 W, 9.0"
    fit = check_fit(gpu_facts(f"{h100_header()}\n{row}\n"), 16 * GIB, 1, "gpu")
    assert fit.fits and fit.warning
    assert fit.message == (
        f"nvidia-smi did not report the free memory of {H100_NAME}, so the panel cannot tell "
        "whether the model fits."
    )


def test_an_unknown_need_passes_with_a_warning_and_the_largest_free(h200):
    fit = check_fit(h200, 0, 1, "gpu")
    assert fit == FitResult(
        fits=True,
        message="The model's memory need is not known, so the panel cannot tell whether it "
        f"fits; the largest free is 139.8 GiB on {H200_NAME}.",
        warning=True,
        gpus=[0],
    )


def test_no_gpu_count_means_one_gpu_as_xinference_auto(h100):
    assert check_fit(h100, 16 * GIB, 0, "gpu") == check_fit(h100, 16 * GIB, 1, "gpu")


# Several GPUs -------------------------------------------------------------------------------


def test_two_gpus_share_the_model_evenly():
    # SYNTHETIC fixture: the H100 row copied as a second GPU (no two-GPU machine was lent).
    two = gpu_facts(fixture("two_gpus_synthetic.csv"))
    fit = check_fit(two, 120 * GIB, 2, "gpu")
    assert fit.fits and fit.gpus == [0, 1]
    assert fit.message == (
        "The model fits: it needs 120 GiB across 2 GPUs (60 GiB on each); free: "
        "GPU 0 (NVIDIA H100 80GB HBM3) 79.2 GiB, GPU 1 (NVIDIA H100 80GB HBM3) 79.2 GiB."
    )
    fit = check_fit(two, 200 * GIB, 2, "gpu")
    assert not fit.fits
    assert fit.message == (
        "The model does not fit: it needs 200 GiB across 2 GPUs (100 GiB on each); of the 2 "
        "GPUs with the most free memory, GPU 1 (NVIDIA H100 80GB HBM3) has only 79.2 GiB free."
    )


def test_the_gpus_with_the_most_free_memory_are_chosen():
    # Not recorded: the real H100 header, GPU 0 busy and GPU 1 idle.
    rows = [
        f"0, NVIDIA H100 80GB HBM3, {UUID0}, 81559 MiB, 71831 MiB, 9728 MiB, 580.159.04, "
        "100 %, 61, 402.10 W, 9.0",
        f"1, NVIDIA H100 80GB HBM3, {UUID1}, 81559 MiB, 0 MiB, 81079 MiB, 580.159.04, "
        "0 %, 38, 127.87 W, 9.0",
    ]
    facts = gpu_facts("\n".join([h100_header(), *rows]) + "\n")
    one = check_fit(facts, 40 * GIB, 1, "gpu")
    assert one.fits and one.gpus == [1]
    assert "GPU 1 (NVIDIA H100 80GB HBM3) has 79.2 GiB free" in one.message
    both = check_fit(facts, 40 * GIB, 2, "gpu")
    assert not both.fits
    assert both.message.endswith("GPU 0 (NVIDIA H100 80GB HBM3) has only 9.5 GiB free.")
    assert check_fit(facts, 16 * GIB, 2, "gpu").gpus == [1, 0]


def test_more_gpus_than_the_server_has_do_not_fit(h200):
    fit = check_fit(h200, 16 * GIB, 2, "gpu")
    assert fit == FitResult(
        fits=False, message=f"The model asks for 2 GPUs but the server has 1: {H200_NAME}."
    )
    # Even with an unknown need.
    assert not check_fit(h200, 0, 4, "gpu").fits


# No GPU -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        ("fail_not_found_bash.txt", "nvidia-smi is not installed"),
        ("fail_no_nvml_library_h200.txt", "The NVIDIA driver is missing or broken"),
        ("fail_driver_unreachable_h200.txt", "The NVIDIA driver is not loaded"),
    ],
)
def test_a_server_without_a_usable_gpu_does_not_fit_and_says_why(failure, words):
    fit = check_fit(no_gpu_facts(failure), 16 * GIB, 1, "gpu")
    assert not fit.fits
    assert fit.message.startswith("The server's facts list no NVIDIA GPU (")
    assert words in fit.message
    assert "check the server first" in fit.message
    # An unknown need does not help: there is no GPU to run on.
    assert not check_fit(no_gpu_facts(failure), 0, 1, "gpu").fits


@pytest.mark.parametrize("facts", [None, {}])
def test_a_server_never_checked_does_not_fit(facts):
    fit = check_fit(facts, 16 * GIB, 1, "gpu")
    assert not fit.fits
    assert fit.message.startswith("The server has not been checked yet: check it first")


@pytest.mark.parametrize("device", [Device.CPU, "cpu", "CPU"])
def test_the_cpu_needs_no_gpu(device, h100):
    for facts in (no_gpu_facts("fail_not_found_bash.txt"), h100, None):
        fit = check_fit(facts, 16 * GIB, 1, device)
        assert fit == FitResult(fits=True, message="Runs on the CPU: no GPU is used.")


def test_the_result_is_json_serialisable(h100):
    result = check_fit(h100, 16 * GIB, 1, "gpu").as_dict()
    assert json.loads(json.dumps(result)) == result
    assert set(result) == {"fits", "message", "warning", "gpus"}
