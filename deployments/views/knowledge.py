"""Knowledge bases of a stack: list and create them, upload and import documents, follow their
training, search them, delete. Slow work (sending to FastGPT, training) runs in the import
pipeline; these pages show its progress."""

from urllib.parse import unquote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.knowledge import (
    do_add_source,
    do_create_knowledge_base,
    do_delete_document,
    do_delete_knowledge_base,
    do_reimport_document,
    do_search,
    do_stage_piece,
    do_stage_upload,
    do_start_import,
)
from ..choices import DocumentSource, DocumentStatus, Role
from ..forms.knowledge import (
    ChunkingForm,
    DeleteKnowledgeBaseForm,
    KnowledgeBaseForm,
    LinkSourceForm,
    SearchForm,
    StagedImportForm,
    TextSourceForm,
)
from ..knowledge import staging
from ..knowledge.documents import retry_options
from ..knowledge.retention import kept_until
from ..models import Document, KnowledgeBase, Stack
from .common import HtmxHttpRequest, fastgpt_models, form_data, render_page_or_partial

UNFINISHED = (DocumentStatus.PENDING, DocumentStatus.UPLOADING, DocumentStatus.TRAINING)


def _visible_stack(request, pk: int) -> Stack:
    return access.get_visible_or_404(
        Stack.objects.select_related("server", "team"), request.user, pk=pk
    )


def _visible_base(request, pk: int) -> KnowledgeBase:
    return access.get_visible_or_404(
        KnowledgeBase.objects.select_related("stack__server", "team"), request.user, pk=pk
    )


@login_required
def knowledge_list(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A stack's knowledge bases with their state, and the form to create one."""
    stack = _visible_stack(request, pk)
    if request.method == "POST":
        # Creating one is for operators: a viewer's POST is refused, not shown the list.
        access.require_role(request.user, stack.team_id, Role.OPERATOR)
    can_operate = access.has_role(request.user, stack.team_id, Role.OPERATOR)
    models, models_error = (None, "")
    form = None
    if can_operate:
        models, models_error = fastgpt_models(stack)
        if models is not None:
            form = KnowledgeBaseForm(form_data(request), models=models)
    if request.method == "POST" and form is not None and form.is_valid():
        try:
            base = do_create_knowledge_base(
                stack, **form.cleaned_data, user=request.user, request=request
            )
        except ActionError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("Knowledge base “%(name)s” created.") % {"name": base.name})
            return redirect("knowledge_detail", pk=base.pk)
    bases = stack.knowledge_bases.annotate(
        document_count=Count("documents"),
        chunks=Sum("documents__data_amount"),
        queued=Sum("documents__training_amount"),
        failed=Count("documents", filter=Q(documents__status=DocumentStatus.FAILED)),
    )
    return render(
        request,
        "deployments/knowledge_list.html",
        {
            "stack": stack,
            "bases": bases,
            "form": form,
            "models_error": models_error,
            "can_operate": can_operate,
            "no_embedding": models is not None and not models.embedding,
        },
    )


def _document_rows(base: KnowledgeBase, can_operate: bool) -> list[dict]:
    rows = []
    for document in base.documents.select_related("run"):
        total = document.data_amount + document.training_amount
        rows.append(
            {
                "document": document,
                "percent": round(100 * document.data_amount / total) if total else 0,
                "retries": retry_options(document) if can_operate else [],
                "kept_until": kept_until(document),
                # The staged copy is gone: importing it with other settings needs the file.
                "upload_again": document.status == DocumentStatus.FAILED
                and document.source == DocumentSource.FILE
                and not document.staged_file,
            }
        )
    return rows


def detail_context(request, base: KnowledgeBase) -> dict:
    can_operate = access.has_role(request.user, base.team_id, Role.OPERATOR)
    staged = base.documents.filter(
        status=DocumentStatus.PENDING, run__isnull=True, source=DocumentSource.FILE
    )
    return {
        "base": base,
        "stack": base.stack,
        "rows": _document_rows(base, can_operate),
        "staged": staged,
        "following": base.documents.filter(status__in=UNFINISHED, run__isnull=False).exists(),
        "can_operate": can_operate,
        # Four forms on one page: each gets ids of its own, so every label finds its field.
        "chunking": ChunkingForm(auto_id="upload_%s"),
        "text_form": TextSourceForm(auto_id="text_%s"),
        "link_form": LinkSourceForm(auto_id="link_%s"),
        "search_form": SearchForm(auto_id="search_%s"),
        "extensions": ",".join(f".{kind}" for kind in staging.EXTENSIONS),
        "limit_bytes": staging.limit_bytes(),
        "piece_bytes": staging.PIECE_BYTES,
        "limit_text": staging.limit_text(),
    }


@login_required
def knowledge_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    base = _visible_base(request, pk)
    return render_page_or_partial(
        request, "deployments/knowledge_detail.html", "documents", detail_context(request, base)
    )


def _operable_base(request, pk: int) -> KnowledgeBase:
    base = _visible_base(request, pk)
    access.require_role(request.user, base.team_id, Role.OPERATOR)
    return base


class BadUploadHeaders(ValueError):
    pass


def upload_piece(request) -> tuple[str, staging.Piece | None]:
    """The file name of an upload request and, when the body is one piece of a larger file,
    which piece. The page sends the name URI-encoded, so any file name fits in a header."""
    try:
        name = unquote(request.headers.get("X-Upload-Name", ""), errors="strict")
    except UnicodeDecodeError:
        raise BadUploadHeaders(_("The file name is not valid UTF-8.")) from None
    total = request.headers.get("X-Upload-Size")
    if total is None:
        return name, None
    offset = request.headers.get("X-Upload-Offset", "0")
    if not (total.isdigit() and offset.isdigit()):
        raise BadUploadHeaders(_("The upload's size or offset is not a number."))
    token = request.headers.get("X-Upload-Token", "")
    return name, staging.Piece(name, int(total), int(offset), token)


@login_required
@require_POST
def knowledge_upload(request: HtmxHttpRequest, pk: int) -> JsonResponse:
    """A file as the raw request body, streamed to the staging folder: whole, or in pieces
    (X-Upload-Size, X-Upload-Offset, and the token the previous piece's answer gave), as the
    page sends each dropped file with its own progress bar. The answer is JSON."""
    base = _operable_base(request, pk)
    try:
        name, piece = upload_piece(request)
        if piece is None:
            document = do_stage_upload(base, read=request.read, name=name, user=request.user)
        else:
            document, received = do_stage_piece(
                base, read=request.read, piece=piece, user=request.user
            )
            if document is None:
                return JsonResponse({"next": received.token, "received": received.size})
    except (BadUploadHeaders, ActionError) as error:
        return JsonResponse({"error": str(error)}, status=400)
    return JsonResponse({"id": document.pk, "name": document.name, "size": document.size_bytes})


@login_required
@require_POST
def knowledge_import(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Import the uploaded files with the chosen chunk settings."""
    base = _operable_base(request, pk)
    staged = list(
        base.documents.filter(status=DocumentStatus.PENDING, run__isnull=True).values_list(
            "pk", "name"
        )
    )
    form = StagedImportForm(request.POST, staged=staged)
    if not form.is_valid():
        messages.error(request, " ".join(" ".join(errors) for errors in form.errors.values()))
        return redirect("knowledge_detail", pk=base.pk)
    try:
        do_start_import(
            base,
            document_ids=form.cleaned_data["documents"],
            training_type=form.cleaned_data["training_type"],
            chunk_size=form.cleaned_data["chunk_size"],
            chunk_splitter=form.cleaned_data["chunk_splitter"],
            user=request.user,
            request=request,
        )
    except ActionError as error:
        messages.error(request, str(error))
    return redirect("knowledge_detail", pk=base.pk)


@login_required
@require_POST
def knowledge_add_source(request: HtmxHttpRequest, pk: int, source: str) -> HttpResponse:
    """Import pasted text or a web page."""
    base = _operable_base(request, pk)
    form = (
        TextSourceForm(request.POST)
        if source == DocumentSource.TEXT
        else LinkSourceForm(request.POST)
    )
    if not form.is_valid():
        messages.error(request, " ".join(" ".join(errors) for errors in form.errors.values()))
        return redirect("knowledge_detail", pk=base.pk)
    data = form.cleaned_data
    try:
        do_add_source(
            base,
            source=DocumentSource.TEXT if source == DocumentSource.TEXT else DocumentSource.LINK,
            name=data["name"] if source == DocumentSource.TEXT else data["link"],
            text=data.get("text", ""),
            training_type=data["training_type"],
            chunk_size=data["chunk_size"],
            chunk_splitter=data["chunk_splitter"],
            user=request.user,
            request=request,
        )
    except ActionError as error:
        messages.error(request, str(error))
    return redirect("knowledge_detail", pk=base.pk)


@login_required
def knowledge_search(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """FastGPT's search test, shown as a fragment under the query box."""
    base = _visible_base(request, pk)
    form = SearchForm(request.GET or None)
    hits, error = [], ""
    if form.is_valid():
        try:
            hits = do_search(base, form.cleaned_data["text"], user=request.user)
        except ActionError as failure:
            error = str(failure)
    elif form.is_bound:
        error = " ".join(" ".join(errors) for errors in form.errors.values())
    return render(
        request,
        "deployments/knowledge_detail.html#search-results",
        {"base": base, "hits": hits, "search_error": error, "searched": form.is_bound},
    )


def _visible_document(request, pk: int) -> Document:
    return access.get_visible_or_404(
        Document.objects.select_related("knowledge_base__stack__server", "run"), request.user, pk=pk
    )


@login_required
@require_POST
def document_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    document = _visible_document(request, pk)
    base = document.knowledge_base
    try:
        do_delete_document(document, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Document “%(name)s” deleted.") % {"name": document.name})
    return redirect("knowledge_detail", pk=base.pk)


@login_required
@require_POST
def document_reimport(request: HtmxHttpRequest, pk: int, option: int) -> HttpResponse:
    """One of the "import again with …" buttons of a failed document."""
    document = _visible_document(request, pk)
    base = document.knowledge_base
    access.require_role(request.user, base.team_id, Role.OPERATOR)
    options = retry_options(document)
    if not 0 <= option < len(options):
        messages.error(request, _("That way of importing again no longer applies."))
        return redirect("knowledge_detail", pk=base.pk)
    chosen = options[option]
    try:
        do_reimport_document(
            document,
            training_type=chosen.training_type,
            chunk_size=chosen.chunk_size,
            user=request.user,
            request=request,
        )
    except ActionError as error:
        messages.error(request, str(error))
    return redirect("knowledge_detail", pk=base.pk)


@login_required
def knowledge_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    base = _operable_base(request, pk)
    form = DeleteKnowledgeBaseForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        stack = base.stack
        try:
            do_delete_knowledge_base(
                base,
                confirm_name=form.cleaned_data["confirm_name"],
                user=request.user,
                request=request,
            )
        except ActionError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("Knowledge base “%(name)s” deleted.") % {"name": base.name})
            return redirect("knowledge_list", pk=stack.pk)
    return render(
        request, "deployments/knowledge_confirm_delete.html", {"base": base, "form": form}
    )
