"""Command outputs recorded on real servers, and what their facts are.

The recordings are in tests/fixtures/{nvidia_smi,docker,host}, described in each folder's
README.md. Files that end in an added `exit=N` line are read with `recorded()`, which splits
that line off.
"""

from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "tests" / "fixtures"
UUID0 = "GPU-00000000-0000-0000-0000-000000000000"
UUID1 = "GPU-00000000-0000-0000-0000-000000000001"

H100 = {
    "index": 0,
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": UUID0,
    "memory_total_mib": 81559,
    "memory_used_mib": 0,
    "memory_free_mib": 81079,
    "driver_version": "580.159.04",
    "compute_cap": "9.0",
    "utilization_percent": 0,
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
    # Recorded without the utilization.gpu field.
    "utilization_percent": None,
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
