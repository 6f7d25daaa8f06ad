"""Bring a stack's remote model providers into One API and FastGPT.

One API gets one channel per provider, named after it (the "xinference" channel of the launched
models is never touched), with the channels of providers removed since deleted; each channel is
tested through One API; then FastGPT's config.json lists the providers' chat models next to the
launched ones, and FastGPT is asked that it does.

Each step works from the providers as they are now, so a retry or a later run leaves the same
result. The writes hold the stack's models lock, so a sync never races a model launch's wiring.
Params: {"stack_id", "removed_channels": [{"id", "name"}]}.
"""

from ..choices import PipelineKind
from ..llm.launch import LAUNCHABLE
from ..llm.wiring import (
    check_provider_channels,
    models_lock,
    update_fastgpt,
    update_provider_channels,
    verify_fastgpt,
)
from ..models import Stack
from .registry import register
from .steps import Pipeline, StepContext, StepFailed


def stack_of(ctx: StepContext) -> Stack:
    return Stack.objects.select_related("server", "team").get(pk=ctx.params["stack_id"])


def deployed_stack(ctx: StepContext) -> Stack:
    """The run's stack, which must be deployed: its One API and FastGPT run."""
    stack = stack_of(ctx)
    if stack.status not in LAUNCHABLE:
        raise StepFailed(
            f"Stack “{stack.name}” is {stack.get_status_display().lower()}: deploy it, then "
            "run this again."
        )
    return stack


def sync_channels(ctx: StepContext) -> str:
    stack = deployed_stack(ctx)
    removed = ctx.params.get("removed_channels") or []
    with models_lock(stack):
        return update_provider_channels(stack, ctx.log, removed, ctx.check_cancel)


def channel_tests(ctx: StepContext) -> str:
    stack = deployed_stack(ctx)
    with models_lock(stack):
        return check_provider_channels(stack, ctx.log)


def wire_fastgpt(ctx: StepContext) -> str:
    stack = deployed_stack(ctx)
    with models_lock(stack):
        return update_fastgpt(stack, ctx.log)


def check_fastgpt(ctx: StepContext) -> str:
    return verify_fastgpt(deployed_stack(ctx), ctx.log, ctx.check_cancel)


SYNC = register(
    Pipeline(
        kind=PipelineKind.PROVIDERS_SYNC,
        steps=(
            ("update One API", sync_channels),
            ("test channels", channel_tests),
            ("update FastGPT", wire_fastgpt),
            ("check FastGPT", check_fastgpt),
        ),
    )
)
