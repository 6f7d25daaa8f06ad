"""`docker pull` progress from its terminal output (a real recording): bytes and layers."""

import re
from pathlib import Path

import pytest

from deployments.pipelines.pull_progress import PullProgress, human_size, parse_size

RECORDED = Path(__file__).parent / "fixtures" / "docker" / "pull_terminal.txt"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(progress: PullProgress, text: str, clock: Clock, step: float) -> None:
    # As the SSH client hands terminal output over: split at every line end and redraw.
    for line in re.split(r"\r\n|\n|\r", text):
        clock.now += step
        progress(line)


@pytest.mark.parametrize(
    ("text", "size"),
    [("229.4kB", 229_400), ("20.01MB", 20_010_000), ("1.5GB", 1_500_000_000), ("512B", 512)],
)
def test_docker_sizes_are_decimal(text, size):
    assert parse_size(text) == size


def test_human_sizes_round_to_one_decimal():
    assert (human_size(999), human_size(30_010_000)) == ("999 B", "30.0 MB")


def test_a_recorded_pull_reports_bytes_and_layers_without_terminal_codes():
    lines, clock = [], Clock()
    progress = PullProgress(lines.append, "[1/1] probe-blob:1:", clock=clock)
    feed(progress, RECORDED.read_text(), clock, step=2.0)

    assert not any("\x1b" in line or "\r" in line for line in lines)
    assert "[1/1] probe-blob:1: 1: Pulling from mirror/probe-blob" in lines
    assert any("layer 438917b63e4b: Already exists" in line for line in lines)
    # While bytes arrive: how many of how many, across the layers seen so far.
    assert "[1/1] probe-blob:1: 531.5 kB of 50.0 MB downloaded, 1/3 layers done" in lines
    assert lines[-4].endswith("Pull complete (50.0 MB of 50.0 MB downloaded, 3/3 layers done)")
    assert lines[-3].startswith("[1/1] probe-blob:1: Digest: sha256:")
    assert progress.layers_done == 3


def test_byte_counts_are_reported_at_most_once_a_second():
    lines, clock = [], Clock()
    progress = PullProgress(lines.append, "img:", clock=clock)
    feed(progress, RECORDED.read_text(), clock, step=0.01)
    counts = [line for line in lines if line.startswith("img: ") and "layer" not in line]
    assert [line for line in counts if "downloaded" in line] == []


def test_output_that_is_not_a_layer_is_passed_on():
    lines = []
    PullProgress(lines.append, "x:")("Error response from daemon: manifest unknown")
    assert lines == ["x: Error response from daemon: manifest unknown"]
