"""What a stack's files are: one answer for the page, the upgrade preview, a deploy, a
rollback and the model wiring.

The files follow from the stack as it stands: its version line and settings, its secrets,
the models now launched on it and the chat models of its remote providers (config.json lists
them). Anything that writes or shows a stack's files asks `stack_files`, so what a team
reviews is what a deploy writes.
"""

import difflib
import json

from ..choices import LaunchStatus
from ..models import LLMModelConfig, ModelLaunch, RemoteProvider, Stack
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


# What FastGPT is told of a remote provider's chat models, besides what the provider says.
PROVIDER_MAX_RESPONSE = 4000
PROVIDER_MAX_TEMPERATURE = 1


def synced_providers(stack: Stack) -> list[RemoteProvider]:
    """The stack's remote providers that One API has a channel for (their first sync made it)."""
    return list(
        RemoteProvider.objects.filter(
            stack_id=stack.pk, team_id=stack.team_id, oneapi_channel_id__isnull=False
        ).order_by("name", "id")
    )


def provider_models(stack: Stack, exclude: RemoteProvider | None = None) -> dict[str, str]:
    """The model names the stack's remote providers serve, each with its provider's name: a
    launch of a model by one of these names would make two One API channels serve it."""
    providers = RemoteProvider.objects.filter(stack_id=stack.pk).order_by("name", "id")
    if exclude is not None and exclude.pk is not None:
        providers = providers.exclude(pk=exclude.pk)
    taken: dict[str, str] = {}
    for provider in providers:
        for model in provider.model_names or []:
            taken.setdefault(model, provider.name)
    return taken


def provider_llm(provider: RemoteProvider, model: str) -> LLMModelConfig:
    """An unsaved chat model config for one of a provider's models, as render takes it."""
    max_context = max(provider.max_context, 1)
    max_response = min(PROVIDER_MAX_RESPONSE, max(max_context // 4, 1))
    return LLMModelConfig(
        team_id=provider.team_id,
        model=model,
        display_name=f"{model} ({provider.name})",
        max_context=max_context,
        max_response=max_response,
        # Room for the question, the history and the answer beside the quotes.
        quote_max_token=max(max_context - max_response - 2000, max_context // 2),
        max_temperature=PROVIDER_MAX_TEMPERATURE,
        vision=False,
        dataset_process=provider.dataset_process,
        used_in_classify=True,
        used_in_extract_fields=True,
        used_in_tool_call=True,
        used_in_query_extension=True,
        # FastGPT asks for tool calls in the prompt: not every provider has OpenAI's.
        tool_choice=False,
        function_call=False,
        default_system_chat_prompt="",
    )


def provider_configs(stack: Stack) -> list[LLMModelConfig]:
    """The chat models of the stack's remote providers, each name once."""
    configs: dict[str, LLMModelConfig] = {}
    for provider in synced_providers(stack):
        for model in provider.model_names or []:
            configs.setdefault(model, provider_llm(provider, model))
    return list(configs.values())


def fastgpt_configs(stack: Stack) -> dict[str, list]:
    """What FastGPT's config.json lists: the ready launched models, then the chat models of the
    stack's remote providers (a launched model keeps its name)."""
    configs = launched_configs(stack)
    local = {config.model for config in configs["llms"]}
    remote = [config for config in provider_configs(stack) if config.model not in local]
    return {**configs, "llms": [*configs["llms"], *remote]}


def stack_files(stack: Stack) -> RenderedStack:
    """The files a deploy of `stack` writes now, secrets included (generated if missing)."""
    return render(stack, stack_secrets(stack), **fastgpt_configs(stack))


def shown_files(stack: Stack) -> dict[str, str]:
    """The same files as the panel shows them, secrets masked. Reads only: a page that
    shows them never generates or saves anything."""
    stored = json.loads(stack.secrets) if stack.secrets else {}
    secret_values = {name: UNSET_SECRET for name in SECRET_NAMES} | stored
    return render(stack, secret_values, **fastgpt_configs(stack)).shown()


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
