"""`docker pull` progress, read from its terminal output, as bytes and layers per image.

Docker only draws byte counts to a terminal: each redraw is "<layer>: Downloading [==>  ]
12.3MB/45.6MB" between cursor movements. The deploy runs the pull with a pseudo-terminal and
feeds each redrawn line here.
"""

import re
import time
from collections.abc import Callable

CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LAYER_LINE = re.compile(
    r"^(?P<layer>[0-9a-f]{12}): (?P<state>[A-Za-z][A-Za-z ]*?)\s*"
    r"(?:\[[=> ]*\]\s*(?P<current>[\d.]+\s*[kMGT]?B)/(?P<total>[\d.]+\s*[kMGT]?B))?\s*$"
)
UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
DONE_STATES = ("Download complete", "Pull complete", "Already exists")
# How often a running count is reported while bytes arrive.
REPORT_EVERY_SECONDS = 1.0


def parse_size(text: str) -> int:
    """Docker's human sizes ("229.4kB", "20.01MB"): decimal units."""
    number, unit = re.fullmatch(r"([\d.]+)\s*([kMGT]?B)", text.strip()).groups()
    return int(float(number) * UNITS[unit])


def human_size(size: int) -> str:
    for unit in ("GB", "MB", "kB"):
        if size >= UNITS[unit]:
            return f"{size / UNITS[unit]:.1f} {unit}"
    return f"{size} B"


class PullProgress:
    """Keeps each layer's state and bytes; reports state changes and, at most once a second,
    the bytes downloaded of the bytes known so far."""

    def __init__(
        self,
        report: Callable[[str], None],
        label: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.report, self.label, self.clock = report, label, clock
        self.states: dict[str, str] = {}
        self.downloaded: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self._last_report = float("-inf")

    def __call__(self, line: str) -> None:
        text = CSI.sub("", line).strip()
        if not text:
            return
        match = LAYER_LINE.match(text)
        if match is None:
            self.report(f"{self.label} {text}")
            return
        layer, state = match["layer"], match["state"]
        if match["total"]:
            total = parse_size(match["total"])
            if state == "Downloading":
                self.sizes[layer] = total
                self.downloaded[layer] = parse_size(match["current"])
        elif state == "Download complete" and layer in self.sizes:
            self.downloaded[layer] = self.sizes[layer]
        changed = self.states.get(layer) != state
        self.states[layer] = state
        if changed and state != "Downloading":
            self.report(f"{self.label} layer {layer}: {state} ({self.summary()})")
            self._last_report = self.clock()
        elif state == "Downloading" and self.clock() - self._last_report >= REPORT_EVERY_SECONDS:
            self.report(f"{self.label} {self.summary()}")
            self._last_report = self.clock()

    @property
    def layers_done(self) -> int:
        return sum(1 for state in self.states.values() if state in DONE_STATES)

    def summary(self) -> str:
        layers = f"{self.layers_done}/{len(self.states)} layers done"
        if not self.sizes:
            return layers
        done, known = sum(self.downloaded.values()), sum(self.sizes.values())
        return f"{human_size(done)} of {human_size(known)} downloaded, {layers}"
