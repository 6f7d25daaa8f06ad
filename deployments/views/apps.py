"""Chat apps: a stack's list of them, making and changing one, its page (versions, a test
question, share links with their URL, QR code and embed snippet), deleting it.

The team sees; operators act. FastGPT's refusals and silences are shown as the sentence the
client gives, never as a traceback.
"""

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import access
from ..actions import ActionError
from ..actions.apps import (
    RUNNING,
    do_chat_test,
    do_create_app,
    do_create_share_link,
    do_delete_app,
    do_revoke_share_link,
    do_update_app,
)
from ..choices import Role
from ..clients.fastgpt import ChatAnswer
from ..forms.apps import AppDeleteForm, ChatAppForm, ChatTestForm, ShareLinkForm
from ..knowledge.apps import AppState, app_state, embed_snippet, public_url, qr_svg
from ..knowledge.bases import StackModels
from ..models import ChatApp, ShareLink, Stack
from .common import (
    HtmxHttpRequest,
    add_action_errors,
    fastgpt_models,
    form_data,
    wants_partial,
)

DETAIL = "deployments/app_detail.html"


@dataclass(frozen=True)
class LinkRow:
    """A share link as its app's page shows it."""

    link: ShareLink
    url: str
    embed: str
    qr: SafeString
    # FastGPT answered and no longer lists it (deleted there by hand, or with its data).
    missing: bool
    expired: bool


def _visible_stack(request: HtmxHttpRequest, pk: int) -> Stack:
    return access.get_visible_or_404(
        Stack.objects.select_related("team", "server"), request.user, pk=pk
    )


def _visible_app(request: HtmxHttpRequest, pk: int) -> ChatApp:
    return access.get_visible_or_404(
        ChatApp.objects.select_related("team", "stack__server", "created_by"), request.user, pk=pk
    )


def _operable_app(request: HtmxHttpRequest, pk: int) -> ChatApp:
    app = _visible_app(request, pk)
    access.require_role(request.user, app.team_id, Role.OPERATOR)
    return app


def _models(stack: Stack) -> tuple[StackModels | None, str]:
    """The models the stack's FastGPT lists, or the sentence saying why it could not tell (a
    stack that is not running is not asked: its page says so)."""
    if stack.status not in RUNNING:
        return None, ""
    return fastgpt_models(stack)


def _when(value) -> object:
    """A FastGPT time (ISO text) as a datetime for the page, or the text as it came."""
    if isinstance(value, str):
        return parse_datetime(value) or value
    return value


def detail_context(request: HtmxHttpRequest, app: ChatApp, **extra) -> dict:
    running = app.stack.status in RUNNING
    # A stack that is not running has no FastGPT to ask; the page says why instead.
    state = app_state(app) if running else AppState([], None)
    now = timezone.now()
    links = []
    for link in app.share_links.select_related("created_by"):
        url = public_url(link)
        links.append(
            LinkRow(
                link=link,
                url=url,
                embed=embed_snippet(url, title=app.name),
                # segno's own SVG of the URL: no text of a user's is in it.
                qr=mark_safe(qr_svg(url)),  # noqa: S308
                missing=state.share_ids is not None
                and bool(app.fastgpt_app_id)
                and link.fastgpt_share_id not in state.share_ids,
                expired=link.expires_at is not None and link.expires_at <= now,
            )
        )
    # Newest first, numbered from the oldest.
    versions = [
        {
            "number": len(state.versions) - index,
            "id": str(version.get("_id") or ""),
            "time": _when(version.get("time")),
        }
        for index, version in enumerate(state.versions)
    ]
    can_operate = access.has_role(request.user, app.team_id, Role.OPERATOR)
    context = {
        "app": app,
        "stack": app.stack,
        "knowledge_bases": app.knowledge_bases.all(),
        "versions": versions,
        # One sentence when FastGPT could not be asked at all, else one per question.
        "fastgpt_error": state.error if state.versions_error == state.links_error else "",
        "versions_error": state.versions_error,
        "links_error": state.links_error,
        "links": links,
        "can_operate": can_operate,
        "running": running,
        "chat_form": ChatTestForm() if can_operate else None,
        "link_form": ShareLinkForm() if can_operate else None,
        "answer": None,
        "chat_error": "",
    }
    context.update(extra)
    return context


@login_required
def app_list(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A stack's chat apps."""
    stack = _visible_stack(request, pk)
    apps = (
        ChatApp.objects.filter(stack=stack)
        .annotate(
            kb_count=Count("knowledge_bases", distinct=True),
            link_count=Count("share_links", distinct=True),
        )
        .order_by("name")
    )
    context = {
        "stack": stack,
        "apps": apps,
        "can_operate": access.has_role(request.user, stack.team_id, Role.OPERATOR),
        "running": stack.status in RUNNING,
    }
    return render(request, "deployments/app_list.html", context)


@login_required
def app_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    stack = _visible_stack(request, pk)
    access.require_role(request.user, stack.team_id, Role.OPERATOR)
    models, fastgpt_error = _models(stack)
    form = None
    if models is not None:
        form = ChatAppForm(
            form_data(request), stack=stack, chat_models=models.chat, rerank=bool(models.rerank)
        )
        if request.method == "POST" and form.is_valid():
            try:
                app = do_create_app(
                    stack, data=form.cleaned_data, user=request.user, request=request
                )
            except ValidationError as error:
                add_action_errors(form, error)
            except ActionError as error:
                form.add_error(None, str(error))
            else:
                messages.success(
                    request, _("Chat app “%(name)s” created in FastGPT.") % {"name": app.name}
                )
                return redirect("app_detail", pk=app.pk)
    context = {
        "stack": stack,
        "app": None,
        "form": form,
        "fastgpt_error": fastgpt_error,
        "running": stack.status in RUNNING,
    }
    return render(request, "deployments/app_form.html", context)


@login_required
def app_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    app = _operable_app(request, pk)
    stack = app.stack
    models, fastgpt_error = _models(stack)
    form = None
    model_gone = False
    if models is not None:
        form = ChatAppForm(
            form_data(request),
            stack=stack,
            chat_models=models.chat,
            rerank=bool(models.rerank),
            app=app,
        )
        model_gone = app.chat_model not in {model for model, _label in models.chat}
        if request.method == "POST" and form.is_valid():
            try:
                update = do_update_app(
                    app, data=form.cleaned_data, user=request.user, request=request
                )
            except ValidationError as error:
                add_action_errors(form, error)
            except ActionError as error:
                form.add_error(None, str(error))
            else:
                if update.renamed_from:
                    messages.success(
                        request,
                        _("Chat app “%(old)s” is now called “%(name)s”.")
                        % {"old": update.renamed_from, "name": app.name},
                    )
                if update.published:
                    messages.success(
                        request,
                        _("Chat app “%(name)s” saved and published as version %(version)s.")
                        % {"name": app.name, "version": app.versions_published},
                    )
                if not update:
                    messages.info(request, _("Nothing changed, so no new version was published."))
                return redirect("app_detail", pk=app.pk)
    context = {
        "stack": stack,
        "app": app,
        "form": form,
        "fastgpt_error": fastgpt_error,
        "model_gone": model_gone,
        "running": stack.status in RUNNING,
    }
    return render(request, "deployments/app_form.html", context)


@login_required
def app_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    app = _visible_app(request, pk)
    return render(request, DETAIL, detail_context(request, app))


@login_required
@require_POST
def app_chat_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Ask the app a question; htmx swaps in the answer and its quotes, else the whole page."""
    app = _operable_app(request, pk)
    form = ChatTestForm(request.POST)
    answer: ChatAnswer | None = None
    chat_error = ""
    if form.is_valid():
        try:
            answer = do_chat_test(
                app, question=form.cleaned_data["question"], user=request.user, request=request
            )
        except ValidationError as error:
            add_action_errors(form, error)
        except ActionError as error:
            chat_error = str(error)
    extra = {"chat_form": form, "answer": answer, "chat_error": chat_error}
    if wants_partial(request):
        context = {"app": app, "can_operate": True, **extra}
        return render(request, f"{DETAIL}#chat-test", context)
    return render(request, DETAIL, detail_context(request, app, **extra))


@login_required
@require_POST
def app_share_link_create(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    app = _operable_app(request, pk)
    form = ShareLinkForm(request.POST)
    if form.is_valid():
        try:
            link = do_create_share_link(
                app, data=form.cleaned_data, user=request.user, request=request
            )
        except ValidationError as error:
            add_action_errors(form, error)
        except ActionError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("Share link “%(name)s” published.") % {"name": link.name})
            return redirect(f"{reverse('app_detail', args=[app.pk])}#share-links")
    return render(request, DETAIL, detail_context(request, app, link_form=form))


@login_required
@require_POST
def app_share_link_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    link = access.get_visible_or_404(
        ShareLink.objects.select_related("app__team", "app__stack__server"), request.user, pk=pk
    )
    app = link.app
    access.require_role(request.user, app.team_id, Role.OPERATOR)
    name = link.name
    try:
        do_revoke_share_link(link, user=request.user, request=request)
    except ActionError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            _("Share link “%(name)s” revoked: its page no longer answers.") % {"name": name},
        )
    return redirect(f"{reverse('app_detail', args=[app.pk])}#share-links")


@login_required
def app_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Confirm by typing the app's name, then delete it in FastGPT and here."""
    app = _operable_app(request, pk)
    form = AppDeleteForm(form_data(request))
    if request.method == "POST" and form.is_valid():
        try:
            do_delete_app(
                app,
                confirm_name=form.cleaned_data["confirm_name"],
                user=request.user,
                request=request,
            )
        except ValidationError as error:
            add_action_errors(form, error)
        except ActionError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("Chat app “%(name)s” deleted.") % {"name": app.name})
            return redirect("app_list", pk=app.stack_id)
    context = {"app": app, "stack": app.stack, "form": form, "links": app.share_links.count()}
    return render(request, "deployments/app_confirm_delete.html", context)
