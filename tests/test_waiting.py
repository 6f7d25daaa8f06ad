"""The one wait helper: a deadline, an interval, cancel honoured, a sentence on timeout."""

import pytest

from deployments.errors import PanelError, WaitTimedOut
from deployments.waiting import wait_for


class FakeClock:
    """Time that moves only when the wait sleeps, so the tests take no time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_first_answer_that_is_not_none_is_returned():
    clock = FakeClock()
    answers = iter([None, None, {"ready": True}])
    result = wait_for(
        lambda: next(answers),
        timeout=60,
        interval=2,
        on_timeout=lambda: "never",
        clock=clock,
        sleep=clock.sleep,
    )
    assert result == {"ready": True}
    assert clock.slept == [2, 2]


def test_past_the_deadline_it_raises_the_sentence_built_then_after_one_last_probe():
    clock = FakeClock()
    probes = []

    def probe():
        probes.append(clock.now)
        return None

    with pytest.raises(WaitTimedOut, match="still starting after 5 s") as timed_out:
        wait_for(
            probe,
            timeout=5,
            interval=2,
            on_timeout=lambda: f"still starting after {clock.now:.0f} s",
            clock=clock,
            sleep=clock.sleep,
        )
    # Sleeps never overshoot the deadline; the probe runs once more at it.
    assert probes == [0, 2, 4, 5]
    assert isinstance(timed_out.value, PanelError)


def test_a_cancel_stops_the_wait_before_its_next_pause():
    clock = FakeClock()
    probes = []

    class Cancelled(Exception):
        pass

    def check_cancel():
        if len(probes) == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        wait_for(
            lambda: probes.append(1),
            timeout=600,
            interval=1,
            on_timeout=lambda: "never",
            check_cancel=check_cancel,
            clock=clock,
            sleep=clock.sleep,
        )
    assert len(probes) == 2
    assert clock.slept == [1]
