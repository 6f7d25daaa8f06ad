"""The one-click chatbot: drop files, pick the models, name it; one run does the rest and this
page follows it to the public URL."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.chatbot import (
    do_publish_chatbot,
    do_stage_for_publish,
    do_stage_piece_for_publish,
)
from ..choices import PipelineKind, Role, RunStatus
from ..forms.chatbot import PublishChatbotForm
from ..knowledge import staging
from ..knowledge.apps import embed_snippet, public_url, qr_svg
from ..models import ChatApp, PipelineRun, ShareLink, Stack
from .common import HtmxHttpRequest, fastgpt_models, form_data
from .knowledge import BadUploadHeaders, upload_piece
from .runs import steps_context


def _operable_stack(request, pk: int) -> Stack:
    stack = access.get_visible_or_404(
        Stack.objects.select_related("server", "team"), request.user, pk=pk
    )
    access.require_role(request.user, stack.team_id, Role.OPERATOR)
    return stack


@login_required
def chatbot_publish(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = _operable_stack(request, pk)
    models, models_error = fastgpt_models(stack)
    if models is None:
        return render(
            request,
            "deployments/chatbot_publish.html",
            {"stack": stack, "models_error": models_error},
        )
    form = PublishChatbotForm(form_data(request), models=models)
    if request.method == "POST" and form.is_valid():
        try:
            run = do_publish_chatbot(
                stack,
                **form.cleaned_data,
                files=request.POST.getlist("documents"),
                user=request.user,
                request=request,
            )
        except ActionError as error:
            form.add_error(None, str(error))
        else:
            return redirect("chatbot_progress", pk=run.pk)
    missing = [
        label
        for label, found in ((_("chat"), models.chat), (_("embedding"), models.embedding))
        if not found
    ]
    return render(
        request,
        "deployments/chatbot_publish.html",
        {
            "stack": stack,
            "form": form,
            "missing": missing,
            "extensions": ",".join(f".{kind}" for kind in staging.EXTENSIONS),
            "limit_bytes": staging.limit_bytes(),
            "piece_bytes": staging.PIECE_BYTES,
            "limit_text": staging.limit_text(),
        },
    )


@login_required
@require_POST
def chatbot_upload(request: HtmxHttpRequest, pk: int) -> JsonResponse:
    """A file as the raw body, whole or in pieces (as the knowledge base page sends them); once
    it is all in, a token for the form."""
    stack = _operable_stack(request, pk)
    try:
        name, piece = upload_piece(request)
        if piece is None:
            answer = do_stage_for_publish(stack, read=request.read, name=name, user=request.user)
        else:
            answer = do_stage_piece_for_publish(
                stack, read=request.read, piece=piece, user=request.user
            )
    except (BadUploadHeaders, ActionError) as error:
        return JsonResponse({"error": str(error)}, status=400)
    return JsonResponse(answer)


@login_required
def chatbot_progress(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The publish run's steps and, once it is done, the public URL."""
    run = access.get_visible_or_404(
        PipelineRun.objects.filter(kind=PipelineKind.CHATBOT_PUBLISH), request.user, pk=pk
    )
    link = None
    if run.status == RunStatus.SUCCEEDED:
        link = (
            ShareLink.objects.filter(pk=run.params.get("share_link_id"))
            .select_related("app__stack__server")
            .first()
        )
    app = ChatApp.objects.filter(pk=run.params.get("app_id")).first()
    url = public_url(link) if link else ""
    context = {
        **steps_context(run, request.user),
        "stack": Stack.objects.filter(pk=run.params.get("stack_id")).first(),
        "name": run.params.get("name", ""),
        "app": app,
        "link": link,
        "url": url,
        "embed": embed_snippet(url, run.params.get("name", "")) if url else "",
        "qr": qr_svg(url) if url else "",
        "polling": not run.is_terminal,
    }
    template = "deployments/chatbot_progress.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#result"
    return render(request, template, context)
