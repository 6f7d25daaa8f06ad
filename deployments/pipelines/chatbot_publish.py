"""Publish a chatbot in one run: knowledge base -> import -> training -> chat app -> share link.

Params: {"stack_id", "name", "embedding_model", "agent_model", "chat_model", "training_type",
"chunk_size", "chunk_splitter", "files": [{"staged", "name", "size"}]}; the steps add
"knowledge_base_id", "app_id" and "share_link_id" as they make them, so a retry from any step
goes on with what the earlier ones made instead of making it twice.
"""

from django.db import transaction
from django.utils.translation import gettext as _

from ..choices import DocumentSource, PipelineKind
from ..clients.fastgpt import FastGPTError
from ..knowledge import bases
from ..knowledge.apps import create_app, create_share_link, public_url
from ..models import ChatApp, Document, KnowledgeBase, PipelineRun, ShareLink, Stack
from .dataset_import import follow_training, send_documents
from .registry import register
from .steps import Pipeline, StepContext, StepFailed


def _remember(ctx: StepContext, **found: int) -> None:
    """Keep ids in the run's params, so a retried step finds what an earlier one made."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=ctx.run.pk)
        run.params = {**run.params, **found}
        run.save(update_fields=["params"])
    ctx.run.params = run.params


def _stack(ctx: StepContext) -> Stack:
    return Stack.objects.select_related("server").get(pk=ctx.params["stack_id"])


def create_knowledge_base(ctx: StepContext) -> str:
    stack = _stack(ctx)
    params = ctx.params
    base = KnowledgeBase.objects.filter(pk=params.get("knowledge_base_id")).first()
    if base is None:
        base = KnowledgeBase.objects.create(
            team_id=stack.team_id,
            stack=stack,
            name=params["name"],
            embedding_model=params["embedding_model"],
            agent_model=params["agent_model"],
            created_by=ctx.run.created_by,
        )
        _remember(ctx, knowledge_base_id=base.pk)
    if not base.fastgpt_dataset_id:
        try:
            base.fastgpt_dataset_id = bases.create_dataset(base)
        except FastGPTError as error:
            raise StepFailed(str(error)) from error
        base.save(update_fields=["fastgpt_dataset_id"])
    if not Document.objects.filter(run_id=ctx.run.pk).exists():
        Document.objects.bulk_create(
            Document(
                knowledge_base=base,
                source=DocumentSource.FILE,
                name=file["name"],
                size_bytes=file["size"],
                staged_file=file["staged"],
                training_type=params["training_type"],
                chunk_size=params["chunk_size"],
                chunk_splitter=params.get("chunk_splitter", ""),
                run_id=ctx.run.pk,
                uploaded_by=ctx.run.created_by,
            )
            for file in params["files"]
        )
    return _("Knowledge base “%(name)s” is ready for %(count)s documents.") % {
        "name": base.name,
        "count": len(params["files"]),
    }


def create_chat_app(ctx: StepContext) -> str:
    stack = _stack(ctx)
    params = ctx.params
    base = KnowledgeBase.objects.get(pk=params["knowledge_base_id"])
    app = ChatApp.objects.filter(pk=params.get("app_id")).first()
    if app is None:
        app = ChatApp.objects.create(
            team_id=stack.team_id,
            stack=stack,
            name=params["name"],
            chat_model=params["chat_model"],
            created_by=ctx.run.created_by,
        )
        app.knowledge_bases.set([base])
        _remember(ctx, app_id=app.pk)
    if not app.fastgpt_app_id:
        try:
            create_app(app)
        except FastGPTError as error:
            raise StepFailed(str(error)) from error
    return _("Chat app “%(name)s” answers from “%(base)s” with %(model)s.") % {
        "name": app.name,
        "base": base.name,
        "model": app.chat_model,
    }


def publish_share_link(ctx: StepContext) -> str:
    app = ChatApp.objects.select_related("stack__server").get(pk=ctx.params["app_id"])
    link = ShareLink.objects.filter(pk=ctx.params.get("share_link_id")).first()
    if link is None:
        try:
            link = create_share_link(app, name=app.name, created_by=ctx.run.created_by)
        except FastGPTError as error:
            raise StepFailed(str(error)) from error
        _remember(ctx, share_link_id=link.pk)
    url = public_url(link)
    ctx.log(_("Public chat page: %(url)s") % {"url": url})
    return url


PUBLISH = register(
    Pipeline(
        kind=PipelineKind.CHATBOT_PUBLISH,
        steps=(
            ("create knowledge base", create_knowledge_base),
            ("send documents to FastGPT", send_documents),
            ("follow training", follow_training),
            ("create chat app", create_chat_app),
            ("publish share link", publish_share_link),
        ),
    )
)
