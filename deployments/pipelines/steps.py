"""What a pipeline is: a kind and a fixed tuple of named steps, and what a step is given."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.db import DatabaseError

from ..choices import EventKind, RunStatus
from ..errors import PanelError
from ..models import PipelineRun
from . import events
from .connection import reconnect_if_dropped

logger = logging.getLogger(__name__)


class StepFailed(PanelError):
    """A step cannot go on. The message is shown to the user as is: say what went wrong.

    Any PanelError a step lets through (one raised by domain code) fails the step the same way.
    """


class RunInterrupted(Exception):
    """The run must stop before its next step; raised by StepContext.check_cancel()."""


class RunCancelled(RunInterrupted):
    """Someone asked for the run to be cancelled."""


class ClaimLost(RunInterrupted):
    """The run no longer belongs to this worker (the reaper failed it, or it was taken away)."""


def check_claim(run_id: int, worker: str) -> None:
    """Raise RunCancelled or ClaimLost when the run should not go on in this worker."""
    row = (
        PipelineRun.objects.filter(pk=run_id)
        .values("status", "claimed_by", "cancel_requested")
        .first()
    )
    if row is None or row["status"] != RunStatus.RUNNING or row["claimed_by"] != worker:
        raise ClaimLost(f"Run {run_id} is no longer held by {worker}.")
    if row["cancel_requested"]:
        raise RunCancelled(f"Run {run_id} was cancelled.")


@dataclass
class StepContext:
    """What a step function receives: its run, the run's params and a way to report output."""

    run: PipelineRun
    index: int
    name: str
    worker: str
    lines: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, Any]:
        return self.run.params

    def log(self, text: str) -> None:
        """Report output, one event per line; the browser shows it as it comes."""
        for line in str(text).splitlines() or [""]:
            self.lines.append(line)
            try:
                events.record(
                    self.run.pk,
                    EventKind.OUTPUT,
                    step_index=self.index,
                    message=line,
                    status=RunStatus.RUNNING,
                )
            except DatabaseError as error:
                # The database away for a moment does not end the step: the line is kept in
                # the step's output, written with its outcome; only its live copy is lost.
                logger.warning("Could not record a line of run %s: %s", self.run.pk, error)
                reconnect_if_dropped()

    def check_cancel(self) -> None:
        """Steps that wait for a long time call this now and then to stop early when asked.

        A database that does not answer for a moment (a restart) does not end the step: the
        next check asks again, on a new connection.
        """
        try:
            check_claim(self.run.pk, self.worker)
        except DatabaseError as error:
            logger.warning("Could not check run %s for a cancel: %s", self.run.pk, error)
            reconnect_if_dropped()


StepFunction = Callable[[StepContext], str | None]


class Step(NamedTuple):
    name: str
    func: StepFunction


@dataclass(frozen=True)
class Pipeline:
    """A named, fixed sequence of idempotent steps. Register it with registry.register().

    The product's pipelines take their kind (and so their name) from choices.PipelineKind.
    """

    kind: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        steps = tuple(Step(*step) for step in self.steps)
        names = [step.name for step in steps]
        if not self.kind or not steps:
            raise ValueError("A pipeline needs a kind and at least one step.")
        if len(set(names)) != len(names) or not all(names):
            raise ValueError(f"Step names of pipeline {self.kind!r} must be unique and non-empty.")
        object.__setattr__(self, "steps", steps)

    def step_name(self, index: int) -> str | None:
        return self.steps[index].name if 0 <= index < len(self.steps) else None
