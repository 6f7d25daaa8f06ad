"""Chat apps and share links in a stack's FastGPT: create, change (a new published version each
time), delete, ask a test question; share links made and revoked.

The team sees them; operators act. Refusals about what was typed or chosen are ValidationErrors
keyed by field; refusals about the state of things, and FastGPT's own, are ActionErrors.
"""

import copy
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import access, audit
from ..choices import Role
from ..clients.fastgpt import ChatAnswer, FastGPTError
from ..knowledge import apps as domain
from ..knowledge.apps import AppSettings
from ..knowledge.bases import stack_models
from ..llm.launch import LAUNCHABLE
from ..models import ChatApp, KnowledgeBase, ShareLink, Stack
from . import ActionError, require_deployed

RUNNING = LAUNCHABLE
SIMILARITY_RANGE = (0.0, 1.0)
QUOTE_LIMIT_RANGE = (100, 20000)
QPM_RANGE = (1, 10000)
QUESTION_MAX = 2000
SETTINGS = ("chat_model", "system_prompt", "similarity", "quote_limit", "using_rerank")


def _fastgpt_refused(error: FastGPTError) -> ActionError:
    return ActionError(str(error))


def _validate(field: str, validator, value: str) -> None:
    """Run a domain validator, its refusal keyed by the form field it is about."""
    try:
        validator(value)
    except ValidationError as error:
        raise ValidationError({field: error.messages}) from error


def _checked_knowledge_bases(stack: Stack, chosen) -> list[KnowledgeBase]:
    """The chosen knowledge bases, if all are the stack's, made in FastGPT, and share one
    embedding model."""
    chosen = list(chosen or [])
    if not chosen:
        raise ValidationError(
            {"knowledge_bases": _("Choose at least one knowledge base to answer from.")}
        )
    for kb in chosen:
        if kb.stack_id != stack.pk or kb.team_id != stack.team_id:
            raise ValidationError(
                {
                    "knowledge_bases": _(
                        "Knowledge base “%(kb)s” is not on stack “%(stack)s”: an app answers "
                        "only from its own stack's knowledge bases."
                    )
                    % {"kb": kb.name, "stack": stack.name}
                }
            )
        if not kb.fastgpt_dataset_id:
            raise ValidationError(
                {
                    "knowledge_bases": _(
                        "Knowledge base “%(kb)s” is not in FastGPT yet: wait until it has "
                        "been created."
                    )
                    % {"kb": kb.name}
                }
            )
    models = domain.embedding_models(chosen)
    if len(models) > 1:
        used = "; ".join(
            f"{model}: {', '.join(f'“{name}”' for name in names)}"
            for model, names in models.items()
        )
        raise ValidationError(
            {
                "knowledge_bases": _(
                    "These knowledge bases use different embedding models (%(used)s). FastGPT "
                    "searches all of an app's knowledge bases with the first one's embedding "
                    "model, so the others would find nothing useful: choose knowledge bases "
                    "that share one embedding model."
                )
                % {"used": used}
            }
        )
    return domain.ordered(chosen)


def _checked_settings(stack: Stack, data: dict, knowledge_bases) -> AppSettings:
    """The app's settings from `data`, with its chat model among those the stack's FastGPT
    lists (an unknown one would silently be replaced by FastGPT's first)."""
    low, high = SIMILARITY_RANGE
    similarity = float(data.get("similarity", 0.4))
    if not low <= similarity <= high:
        raise ValidationError({"similarity": _("The similarity is between 0 and 1.")})
    low, high = QUOTE_LIMIT_RANGE
    quote_limit = int(data.get("quote_limit", 1500))
    if not low <= quote_limit <= high:
        raise ValidationError(
            {"quote_limit": _("The quote limit is between 100 and 20000 tokens.")}
        )
    system_prompt = data.get("system_prompt") or ""
    _validate("system_prompt", domain.validate_text, system_prompt)
    settings = AppSettings(
        chat_model=data.get("chat_model") or "",
        knowledge_bases=tuple(knowledge_bases),
        system_prompt=system_prompt,
        similarity=similarity,
        quote_limit=quote_limit,
        using_rerank=bool(data.get("using_rerank")),
    )
    try:
        models = stack_models(stack)
    except FastGPTError as error:
        raise _fastgpt_refused(error) from error
    if settings.chat_model not in {model for model, _label in models.chat}:
        raise ValidationError(
            {
                "chat_model": _(
                    "FastGPT on stack “%(stack)s” does not list the chat model “%(model)s”: "
                    "choose one it lists."
                )
                % {"stack": stack.name, "model": settings.chat_model}
            }
        )
    if settings.using_rerank and not models.rerank:
        raise ValidationError(
            {"using_rerank": _("FastGPT on this stack lists no rerank model to rerank with.")}
        )
    return settings


def _name_taken(stack: Stack, name: str) -> ValidationError:
    return ValidationError(
        {
            "name": _("Stack “%(stack)s” already has a chat app named “%(name)s”.")
            % {"stack": stack.name, "name": name}
        },
        code="unique",
    )


def _details(app: ChatApp, settings: AppSettings) -> dict:
    return {
        "app": app.name,
        "stack": app.stack.name,
        "chat_model": settings.chat_model,
        "knowledge_bases": [kb.name for kb in settings.knowledge_bases],
        "similarity": settings.similarity,
        "quote_limit": settings.quote_limit,
        "using_rerank": settings.using_rerank,
    }


# Apps -----------------------------------------------------------------------------------------


def do_create_app(stack: Stack, *, data: dict, user, request=None) -> ChatApp:
    """Make a chat app in the stack's FastGPT from `data` (the fields of ChatAppForm) and keep
    its row. Operators may."""
    access.require_role(user, stack.team_id, Role.OPERATOR)
    require_deployed(stack)
    name = data.get("name") or ""
    _validate("name", domain.validate_display_name, name)
    knowledge_bases = _checked_knowledge_bases(stack, data.get("knowledge_bases"))
    settings = _checked_settings(stack, data, knowledge_bases)
    if ChatApp.objects.filter(stack=stack, name=name).exists():
        raise _name_taken(stack, name)
    try:
        with transaction.atomic():
            app = ChatApp.objects.create(
                team=stack.team,
                stack=stack,
                name=name,
                created_by=user,
                **{field: getattr(settings, field) for field in SETTINGS},
            )
            app.knowledge_bases.set(knowledge_bases)
    except IntegrityError as error:
        raise _name_taken(stack, name) from error
    try:
        domain.create_app(app)
    except FastGPTError as error:
        # Nothing was made in FastGPT: the row goes too, so the name is free to try again.
        app.delete()
        raise _fastgpt_refused(error) from error
    audit.record(
        "app.create",
        actor=user,
        request=request,
        target=app,
        details={**_details(app, settings), "fastgpt_app_id": app.fastgpt_app_id},
    )
    return app


@dataclass(frozen=True)
class AppUpdate:
    """What saving an app's form did: renamed it (from this name), published a version."""

    renamed_from: str = ""
    published: bool = False

    def __bool__(self) -> bool:
        return bool(self.renamed_from) or self.published


def do_update_app(app: ChatApp, *, data: dict, user, request=None) -> AppUpdate:
    """Rename the app, and publish changed settings as its newest version (always the whole
    graph). Nothing is sent where nothing changed."""
    access.require_role(user, app.team_id, Role.OPERATOR)
    stack = app.stack
    require_deployed(stack)
    name = data.get("name") or app.name
    if name != app.name:
        _validate("name", domain.validate_display_name, name)
        if ChatApp.objects.filter(stack=stack, name=name).exclude(pk=app.pk).exists():
            raise _name_taken(stack, name)
    knowledge_bases = _checked_knowledge_bases(stack, data.get("knowledge_bases"))
    settings = _checked_settings(stack, data, knowledge_bases)
    before = AppSettings.of(app)
    renamed_from = app.name if name != app.name else ""
    publishing = not app.fastgpt_app_id or settings != before
    if not renamed_from and not publishing:
        return AppUpdate()
    try:
        if app.fastgpt_app_id:
            if renamed_from:
                domain.rename(app, name)
            if publishing:
                domain.publish(app, settings)
        else:
            # Its creation was cut short: make it in FastGPT now, with these settings.
            app.name = name
            _save_settings(app, settings)
            domain.create_app(app)
    except FastGPTError as error:
        raise _fastgpt_refused(error) from error
    except IntegrityError as error:
        raise _name_taken(stack, name) from error
    _save_settings(app, settings)
    details = _details(app, settings)
    if renamed_from:
        details["renamed_from"] = renamed_from
    if publishing:
        details["version"] = app.versions_published
    audit.record("app.update", actor=user, request=request, target=app, details=details)
    return AppUpdate(renamed_from=renamed_from, published=publishing)


def _save_settings(app: ChatApp, settings: AppSettings) -> None:
    with transaction.atomic():
        for field in SETTINGS:
            setattr(app, field, getattr(settings, field))
        app.save(update_fields=["name", *SETTINGS, "updated_at"])
        app.knowledge_bases.set(settings.knowledge_bases)


def do_delete_app(app: ChatApp, *, confirm_name: str, user, request=None) -> None:
    """Delete the app in FastGPT (with its versions and share links) and its rows, once its
    name has been typed."""
    access.require_role(user, app.team_id, Role.OPERATOR)
    if confirm_name != app.name:
        raise ValidationError(
            {
                "confirm_name": _("Type the app's name, “%(name)s”, to delete it.")
                % {"name": app.name}
            }
        )
    if app.fastgpt_app_id:
        require_deployed(app.stack)
        try:
            domain.delete_app(app)
        except FastGPTError as error:
            raise _fastgpt_refused(error) from error
    with transaction.atomic():
        audit.record(
            "app.delete",
            actor=user,
            request=request,
            target=app,
            details={
                "app": app.name,
                "stack": app.stack.name,
                "fastgpt_app_id": app.fastgpt_app_id,
                "share_links": app.share_links.count(),
            },
        )
        app.delete()


def do_chat_test(app: ChatApp, *, question: str, user, request=None) -> ChatAnswer:
    """Ask the app's published version one question; the answer and the chunks it quoted.
    Operators may: an answer costs the stack's GPU time."""
    access.require_role(user, app.team_id, Role.OPERATOR)
    question = (question or "").strip()
    if not question or len(question) > QUESTION_MAX:
        raise ValidationError(
            {"question": _("Ask a question of 1 to %(max)s characters.") % {"max": QUESTION_MAX}}
        )
    _validate("question", domain.validate_text, question)
    require_deployed(app.stack)
    if not app.fastgpt_app_id:
        raise ActionError(
            _("App “%(name)s” is not in FastGPT yet: save it first.") % {"name": app.name}
        )
    try:
        answer = domain.ask(app, question)
    except FastGPTError as error:
        raise _fastgpt_refused(error) from error
    audit.record(
        "app.chat_test",
        actor=user,
        request=request,
        target=app,
        details={"app": app.name, "question": question[:200], "quotes": len(answer.quotes)},
    )
    return answer


# Share links ----------------------------------------------------------------------------------


def do_create_share_link(app: ChatApp, *, data: dict, user, request=None) -> ShareLink:
    """A public chat page for the app: name, whether answers show their quotes, a rate limit
    (stored; FastGPT's community edition does not enforce it) and an optional expiry."""
    access.require_role(user, app.team_id, Role.OPERATOR)
    name = data.get("name") or ""
    _validate("name", domain.validate_display_name, name)
    qpm = int(data.get("qpm") or 0)
    low, high = QPM_RANGE
    if not low <= qpm <= high:
        raise ValidationError({"qpm": _("The rate limit is 1 to 10000 questions a minute.")})
    expires_at = data.get("expires_at")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": _("Choose an expiry in the future.")})
    require_deployed(app.stack)
    if not app.fastgpt_app_id:
        raise ActionError(
            _("App “%(name)s” is not in FastGPT yet: save it first.") % {"name": app.name}
        )
    try:
        link = domain.create_share_link(
            app,
            name=name,
            show_references=bool(data.get("show_references")),
            qpm=qpm,
            expires_at=expires_at,
            created_by=user,
        )
    except FastGPTError as error:
        raise _fastgpt_refused(error) from error
    audit.record(
        "app.share_link.create",
        actor=user,
        request=request,
        target=link,
        team=app.team,
        details={
            "app": app.name,
            "name": link.name,
            "share_id": link.fastgpt_share_id,
            "show_references": link.show_references,
            "qpm": link.qpm,
            "expires_at": link.expires_at.isoformat() if link.expires_at else None,
        },
    )
    return link


def do_revoke_share_link(link: ShareLink, *, user, request=None) -> None:
    """Delete the link in FastGPT (by its `_id`), so its page stops answering, then its row."""
    app = link.app
    access.require_role(user, app.team_id, Role.OPERATOR)
    require_deployed(app.stack)
    # The row as it was, for the audit trail: deleting it clears its id.
    revoked = copy.copy(link)
    try:
        domain.revoke_share_link(link)
    except FastGPTError as error:
        raise _fastgpt_refused(error) from error
    audit.record(
        "app.share_link.revoke",
        actor=user,
        request=request,
        target=revoked,
        team=app.team,
        details={"app": app.name, "name": revoked.name, "share_id": revoked.fastgpt_share_id},
    )
