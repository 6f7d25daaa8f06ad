"""Whether a model fits a server's free GPU memory, told with the numbers, before a launch.

The numbers come from the server's facts (deployments.servers.facts: "gpus", each with
"memory_total_mib", "memory_used_mib" and "memory_free_mib" as nvidia-smi reported them when
the server was last checked). A model asked to run on several GPUs is counted as spread
evenly over them, each GPU holding its share, on the GPUs with the most free memory.
"""

import math
from dataclasses import asdict, dataclass, field

from deployments.choices import Device


@dataclass(frozen=True)
class FitResult:
    fits: bool
    message: str  # one sentence for the page, with the numbers
    # Passes although the panel could not check it (unknown need, unknown free memory).
    warning: bool = False
    # The GPUs (nvidia-smi indexes) with the most free memory that would hold the model.
    gpus: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _size(mib: int) -> str:
    """16384 -> "16 GiB", 9728 -> "9.5 GiB", 500 -> "500 MiB"."""
    if mib < 1024:
        return f"{mib} MiB"
    gib = round(mib / 1024, 1)
    return f"{gib:g} GiB"


def _sizes(need: int, free: int) -> tuple[str, str]:
    """Both sizes, in MiB when rounding to GiB would make a shortfall look like none."""
    if _size(need) == _size(free) and need != free:
        return f"{need} MiB", f"{free} MiB"
    return _size(need), _size(free)


def _free_mib(gpu: dict) -> int | None:
    free = gpu.get("memory_free_mib")
    if free is not None:
        return free
    total, used = gpu.get("memory_total_mib"), gpu.get("memory_used_mib")
    if total is not None and used is not None:
        return max(total - used, 0)
    return None


def _name(gpu: dict) -> str:
    index = gpu.get("index")
    label = f"GPU {index}" if index is not None else "a GPU"
    return f"{label} ({gpu['name']})" if gpu.get("name") else label


def _gpus_phrase(count: int) -> str:
    return f"{count} GPU" if count == 1 else f"{count} GPUs"


def check_fit(facts: dict | None, needed_mib: int, gpu_count: int, device: str) -> FitResult:
    """Whether a model needing NEEDED_MIB MiB in all, over GPU_COUNT GPUs, fits the free GPU
    memory the server's FACTS recorded. DEVICE "cpu" needs no GPU; a NEEDED_MIB of 0 (not
    known) passes with a warning once the GPUs are there; a GPU_COUNT below 1 means one GPU,
    as Xinference's "auto" does."""
    if str(device).lower() == Device.CPU:
        return FitResult(True, "Runs on the CPU: no GPU is used.")

    gpus = list((facts or {}).get("gpus") or [])
    if not gpus:
        if not facts:
            return FitResult(
                False,
                "The server has not been checked yet: check it first, so the panel knows "
                "its GPUs and their free memory.",
            )
        reason = ((facts.get("nvidia") or {}).get("error") or "").strip()
        because = f" ({reason.rstrip('.')})" if reason else ""
        return FitResult(
            False,
            f"The server's facts list no NVIDIA GPU{because}: check the server first, then "
            "launch on the GPU or run the model on the CPU.",
        )

    count = max(gpu_count, 1)
    if count > len(gpus):
        present = ", ".join(_name(gpu) for gpu in gpus)
        return FitResult(
            False,
            f"The model asks for {_gpus_phrase(count)} but the server has {len(gpus)}: {present}.",
        )

    known = [gpu for gpu in gpus if _free_mib(gpu) is not None]
    # Most free memory first; the lower index first among equals.
    known.sort(key=lambda gpu: (-_free_mib(gpu), gpu.get("index") or 0))
    if len(known) < count:
        unknown = ", ".join(_name(gpu) for gpu in gpus if _free_mib(gpu) is None)
        return FitResult(
            True,
            f"nvidia-smi did not report the free memory of {unknown}, so the panel cannot "
            "tell whether the model fits.",
            warning=True,
        )

    largest = known[0]
    if needed_mib <= 0:
        return FitResult(
            True,
            "The model's memory need is not known, so the panel cannot tell whether it "
            f"fits; the largest free is {_size(_free_mib(largest))} on {_name(largest)}.",
            warning=True,
            gpus=[gpu["index"] for gpu in known[:count]],
        )

    chosen = known[:count]
    share = math.ceil(needed_mib / count)
    weakest = chosen[-1]
    weakest_free = _free_mib(weakest)
    if count == 1:
        need, free = _sizes(needed_mib, weakest_free)
        needs = f"needs {need} on 1 GPU"
        if weakest_free < share:
            return FitResult(
                False,
                f"The model does not fit: it {needs}; the largest free is {free} on "
                f"{_name(weakest)}.",
            )
        return FitResult(
            True,
            f"The model fits: it {needs}; {_name(weakest)} has {free} free.",
            gpus=[weakest["index"]],
        )

    need, free = _sizes(share, weakest_free)
    needs = f"needs {_size(needed_mib)} across {count} GPUs ({need} on each)"
    if weakest_free < share:
        return FitResult(
            False,
            f"The model does not fit: it {needs}; of the {count} GPUs with the most free "
            f"memory, {_name(weakest)} has only {free} free.",
        )
    frees = ", ".join(f"{_name(gpu)} {_size(_free_mib(gpu))}" for gpu in chosen)
    return FitResult(
        True,
        f"The model fits: it {needs}; free: {frees}.",
        gpus=[gpu["index"] for gpu in chosen],
    )
