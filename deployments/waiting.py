"""One way to wait for something: a deadline, an interval, cancel honoured, a sentence on
timeout. Every poll of a server or a service goes through `wait_for`."""

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import WaitTimedOut

T = TypeVar("T")


def never_cancelled() -> None:
    """The `check_cancel` of a wait that nothing cancels."""
    return None


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float,
    on_timeout: Callable[[], str],
    check_cancel: Callable[[], None] = never_cancelled,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `probe` until it returns something other than None, and return that.

    `check_cancel` runs before every pause and raises to stop the wait (a pipeline step
    passes its context's check_cancel). Past `timeout` seconds, raises WaitTimedOut with
    the sentence `on_timeout` builds then, so it can name the last state seen. The probe
    always runs at least once, and once more after the deadline has passed.
    """
    deadline = clock() + timeout
    while True:
        expired = clock() >= deadline
        result = probe()
        if result is not None:
            return result
        if expired:
            raise WaitTimedOut(on_timeout())
        check_cancel()
        sleep(min(interval, max(0.0, deadline - clock())))
