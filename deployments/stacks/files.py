"""What a stack's files are: one answer for the page, the upgrade preview, a deploy, a
rollback and the model wiring.

The files follow from the stack as it stands: its version line and settings, its secrets,
and the models now launched on it (config.json lists them). Anything that writes or shows a
stack's files asks `stack_files`, so what a team reviews is what a deploy writes.
"""

import difflib
import json

from ..choices import LaunchStatus
from ..models import ModelLaunch, Stack
from .render import RenderedStack, render
from .secrets import SECRET_NAMES, stack_secrets

# Stands in for a secret not generated yet, in files that are only shown (always masked).
UNSET_SECRET = "********"  # noqa: S105 (a mask, not a value)


def ready_launches(stack: Stack) -> list[ModelLaunch]:
    return list(
        ModelLaunch.objects.filter(stack_id=stack.pk, status=LaunchStatus.READY)
        .select_related("llm", "embedding", "rerank")
        .order_by("created_at", "id")
    )


def launched_configs(stack: Stack) -> dict[str, list]:
    """The configs of the stack's ready models, by kind, as `render` takes them."""
    launches = ready_launches(stack)
    return {
        "llms": [launch.llm for launch in launches if launch.llm],
        "embeddings": [launch.embedding for launch in launches if launch.embedding],
        "reranks": [launch.rerank for launch in launches if launch.rerank],
    }


def stack_files(stack: Stack) -> RenderedStack:
    """The files a deploy of `stack` writes now, secrets included (generated if missing)."""
    return render(stack, stack_secrets(stack), **launched_configs(stack))


def shown_files(stack: Stack) -> dict[str, str]:
    """The same files as the panel shows them, secrets masked. Reads only: a page that
    shows them never generates or saves anything."""
    stored = json.loads(stack.secrets) if stack.secrets else {}
    secret_values = {name: UNSET_SECRET for name in SECRET_NAMES} | stored
    return render(stack, secret_values, **launched_configs(stack)).shown()


def files_diff(before: dict[str, str], after: dict[str, str]) -> str:
    """A unified diff of two sets of (shown) files, file by file."""
    lines = []
    for name in sorted(set(before) | set(after)):
        lines.extend(
            difflib.unified_diff(
                before.get(name, "").splitlines(keepends=True),
                after.get(name, "").splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )
    return "".join(lines)
