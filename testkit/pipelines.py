"""Pipelines for tests only, registered on import (workers load this with `-I`).

Each step appends "<index> <name> attempt=<n>" to the file `params["journal"]` when it
starts, so a test can count how often each step really ran, in any process. Params:

    fail_at: index    the step at that index raises StepFailed(params["fail_message"])
    crash_at: index   the step at that index raises RuntimeError (not a StepFailed)
    block_at: index   the step at that index waits until the file params["release"] exists,
                      checking for cancellation meanwhile (a test can kill the worker then)
    until_attempt: n  fail, crash and block only while run.attempt <= n (default: always)
    sleep: seconds    every step sleeps this long (so duplicate deliveries overlap)
"""

import time
from pathlib import Path

from deployments.models import StepRun
from deployments.pipelines import Pipeline, StepContext, StepFailed, register

STEPS = "testkit.steps"
BLOCK_TIMEOUT_SECONDS = 60


def _active(ctx: StepContext, key: str) -> bool:
    if ctx.params.get(key) != ctx.index:
        return False
    until = ctx.params.get("until_attempt")
    return until is None or ctx.run.attempt <= until


def journal_lines(path: str | Path) -> list[str]:
    path = Path(path)
    return path.read_text().splitlines() if path.exists() else []


def step_rows(run) -> list[tuple]:
    """(index, name, attempt, status) of every step row of `run`, in order."""
    return list(
        StepRun.objects.filter(run=run)
        .order_by("index", "attempt")
        .values_list("index", "name", "attempt", "status")
    )


def _step(ctx: StepContext) -> str:
    journal = ctx.params.get("journal")
    if journal:
        with open(journal, "a") as handle:
            handle.write(f"{ctx.index} {ctx.name} attempt={ctx.run.attempt}\n")
    ctx.log(f"{ctx.name}: starting")
    time.sleep(ctx.params.get("sleep", 0))
    if _active(ctx, "block_at"):
        release = Path(ctx.params["release"])
        deadline = time.monotonic() + BLOCK_TIMEOUT_SECONDS
        while not release.exists():
            ctx.check_cancel()
            if time.monotonic() > deadline:
                raise StepFailed("Nobody released the blocked step.")
            time.sleep(0.05)
    if _active(ctx, "fail_at"):
        raise StepFailed(ctx.params.get("fail_message", "The test asked this step to fail."))
    if _active(ctx, "crash_at"):
        raise RuntimeError("boom")
    return f"{ctx.name}: done"


STEPS_PIPELINE = register(
    Pipeline(
        kind=STEPS,
        steps=(("first", _step), ("second", _step), ("third", _step)),
    )
)
