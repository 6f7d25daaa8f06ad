"""Knowledge bases in a stack's FastGPT: the models it offers for them, create, delete, search."""

from dataclasses import dataclass

from ..clients.fastgpt import FastGPTClient, SearchHit
from ..models import ChatApp, Document, KnowledgeBase, Stack
from ..stacks.endpoints import fastgpt_url
from . import staging
from .session import signed_in_fastgpt


@dataclass(frozen=True)
class StackModels:
    """The models FastGPT lists for a stack, as (model id, display name) pairs per use."""

    chat: list[tuple[str, str]]
    # Chat models FastGPT marks for file processing (datasetProcess), first; then the rest.
    file_processing: list[tuple[str, str]]
    embedding: list[tuple[str, str]]
    rerank: list[tuple[str, str]]


def _pairs(entries) -> list[tuple[str, str]]:
    """(model id, label) of each entry; the label shows the id when the name differs."""
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("model"):
            model_id = str(entry["model"])
            name = str(entry.get("name") or "")
            found.append(
                (model_id, f"{name} ({model_id})" if name and name != model_id else model_id)
            )
    return found


def stack_models(stack: Stack, *, timeout: float = 15) -> StackModels:
    """What FastGPT loaded from config.json; FastGPTError when it does not answer."""
    with FastGPTClient(fastgpt_url(stack), timeout=timeout) as fastgpt:
        data = fastgpt.init_data() or {}
    llms = [entry for entry in data.get("llmModels") or [] if isinstance(entry, dict)]
    processing = [entry for entry in llms if entry.get("datasetProcess")]
    others = [entry for entry in llms if not entry.get("datasetProcess")]
    return StackModels(
        chat=_pairs(llms),
        file_processing=_pairs(processing + others),
        embedding=_pairs(data.get("vectorModels")),
        rerank=_pairs(data.get("reRankModels")),
    )


def create_dataset(base: KnowledgeBase) -> str:
    """Make the dataset in FastGPT; its id. The models are sent explicitly (K1)."""
    with signed_in_fastgpt(base.stack) as fastgpt:
        return fastgpt.create_dataset(
            base.name,
            vector_model=base.embedding_model,
            agent_model=base.agent_model,
            intro=base.intro,
        )


def delete_dataset(base: KnowledgeBase) -> None:
    if not base.fastgpt_dataset_id:
        return
    with signed_in_fastgpt(base.stack) as fastgpt:
        fastgpt.delete_dataset(base.fastgpt_dataset_id)


def search(base: KnowledgeBase, text: str, *, using_rerank: bool = False) -> list[SearchHit]:
    with signed_in_fastgpt(base.stack) as fastgpt:
        return fastgpt.search_test(base.fastgpt_dataset_id, text, using_rerank=using_rerank)


def forget_stack(stack: Stack) -> tuple[int, int]:
    """The stack's FastGPT data is deleted: its knowledge bases (with their documents and the
    staged copies) and its chat apps (with their share links) go from the panel too.
    Returns how many knowledge bases and apps went."""
    staged = Document.objects.filter(knowledge_base__stack=stack).exclude(staged_file="")
    for name in staged.values_list("staged_file", flat=True):
        staging.discard(name)
    apps = ChatApp.objects.filter(stack=stack)
    app_count = apps.count()
    apps.delete()
    bases = KnowledgeBase.objects.filter(stack=stack)
    base_count = bases.count()
    bases.delete()
    return base_count, app_count
