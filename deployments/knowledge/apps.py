"""Chat apps and their share links in a stack's FastGPT.

An app is FastGPT's simple knowledge base chat: a search over the app's knowledge bases feeding
a chat model. FastGPT's chat runs the newest published version, and a publish stores exactly the
graph it is sent (an empty one when sent none, K8), so every change publishes the whole graph
again, built from the panel's settings.

Share links are FastGPT outLinks: made by name, found again by their shareId, and deleted by
their Mongo `_id` (K9). Their public page is on the stack's FastGPT port.
"""

import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import segno
from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils.html import escape
from django.utils.translation import gettext as _

from ..clients.fastgpt import (
    AppGraph,
    ChatAnswer,
    FastGPTClient,
    FastGPTError,
    share_url,
    simple_dataset_chat,
)
from ..models import ChatApp, KnowledgeBase, ShareLink
from ..stacks.endpoints import fastgpt_url
from .session import signed_in_fastgpt

# FastGPT's names for "already gone": deleting what is gone is done, not an error.
APP_GONE = "appUnExist"
LINK_GONE = "outlinkUnExist"
EMBED_HEIGHT = 600
NAME_MAX = 100
# One line of printable text, not only blanks (the lookahead). Format characters (bidi
# overrides, zero-width joiners and the like) are refused separately, below.
NAME_RE = re.compile(r"(?=.*\S)[^\x00-\x1f\x7f-\x9f]+")
# Text a person writes (prompts, questions): line breaks and tabs, no other control characters.
TEXT_RE = re.compile(r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*")
INVISIBLE = ("Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def validate_display_name(value: str) -> None:
    """A name of an app or a share link: 1 to 100 characters on one line, no control or
    invisible format characters."""
    if (
        len(value) > NAME_MAX
        or not NAME_RE.fullmatch(value)
        or any(unicodedata.category(char) in INVISIBLE for char in value)
    ):
        raise ValidationError(
            _("Use 1 to %(max)s characters on one line, without control or invisible characters.")
            % {"max": NAME_MAX},
            code="invalid_name",
        )


def validate_text(value: str) -> None:
    """A prompt or a question: any text, line breaks and tabs, but no other control character."""
    if not TEXT_RE.fullmatch(value) or any(unicodedata.category(c) in ("Cs",) for c in value):
        raise ValidationError(
            _("Remove the control characters from this text."), code="control_characters"
        )


@dataclass(frozen=True)
class AppSettings:
    """What an app's graph is built from: the panel's settings of a chat app."""

    chat_model: str
    knowledge_bases: tuple[KnowledgeBase, ...]
    system_prompt: str = ""
    similarity: float = 0.4
    quote_limit: int = 1500
    using_rerank: bool = False

    @classmethod
    def of(cls, app: ChatApp) -> "AppSettings":
        return cls(
            chat_model=app.chat_model,
            knowledge_bases=tuple(ordered(app.knowledge_bases.all())),
            system_prompt=app.system_prompt,
            similarity=app.similarity,
            quote_limit=app.quote_limit,
            using_rerank=app.using_rerank,
        )

    @property
    def dataset_ids(self) -> list[str]:
        return [kb.fastgpt_dataset_id for kb in self.knowledge_bases]

    def graph(self) -> AppGraph:
        """The whole graph FastGPT runs for these settings."""
        return simple_dataset_chat(
            dataset_ids=self.dataset_ids,
            model=self.chat_model,
            system_prompt=self.system_prompt,
            similarity=self.similarity,
            limit=self.quote_limit,
            using_rerank=self.using_rerank,
        )


def ordered(knowledge_bases) -> list[KnowledgeBase]:
    """Knowledge bases in the order an app lists them: by name. FastGPT searches all of them
    with the first one's embedding model."""
    return sorted(knowledge_bases, key=lambda kb: (kb.name, kb.pk or 0))


def embedding_models(knowledge_bases) -> dict[str, list[str]]:
    """The embedding models of these knowledge bases, each with the names of those using it."""
    models: dict[str, list[str]] = {}
    for kb in ordered(knowledge_bases):
        models.setdefault(kb.embedding_model, []).append(kb.name)
    return models


# Apps -----------------------------------------------------------------------------------------


def create_app(app: ChatApp) -> str:
    """Make the app in FastGPT from its saved row and record its id. FastGPT writes the first
    version as it creates the app, so the app answers at once."""
    graph = AppSettings.of(app).graph()
    with signed_in_fastgpt(app.stack) as fastgpt:
        app_id = fastgpt.create_app(app.name, graph)
    ChatApp.objects.filter(pk=app.pk).update(fastgpt_app_id=app_id, versions_published=1)
    app.fastgpt_app_id, app.versions_published = app_id, 1
    return app_id


def rename(app: ChatApp, name: str) -> None:
    """Rename the app in FastGPT, then its row."""
    with signed_in_fastgpt(app.stack) as fastgpt:
        fastgpt.rename_app(app.fastgpt_app_id, name)
    ChatApp.objects.filter(pk=app.pk).update(name=name)
    app.name = name


def publish(app: ChatApp, settings: AppSettings) -> None:
    """Publish `settings` as the app's newest version: always the whole graph (K8)."""
    graph = settings.graph()
    with signed_in_fastgpt(app.stack) as fastgpt:
        fastgpt.publish_app(app.fastgpt_app_id, graph)
    ChatApp.objects.filter(pk=app.pk).update(versions_published=F("versions_published") + 1)
    app.refresh_from_db(fields=["versions_published"])


def delete_app(app: ChatApp) -> None:
    """Delete the app in FastGPT, with its versions and share links; gone already is done."""
    if not app.fastgpt_app_id:
        return
    with signed_in_fastgpt(app.stack) as fastgpt:
        try:
            fastgpt.delete_app(app.fastgpt_app_id)
        except FastGPTError as error:
            if error.status_text != APP_GONE:
                raise


def ask(app: ChatApp, question: str) -> ChatAnswer:
    """One question to the app's published version, with no history; the answer and quotes."""
    with signed_in_fastgpt(app.stack) as fastgpt:
        return fastgpt.chat(app.fastgpt_app_id, question)


@dataclass(frozen=True)
class AppState:
    """What FastGPT says of an app now: its versions, newest first, and the shareIds of its share
    links (None when unknown). Each error is the sentence saying why FastGPT could not tell."""

    versions: list[dict[str, Any]]
    share_ids: set[str] | None
    versions_error: str = ""
    links_error: str = ""

    @property
    def error(self) -> str:
        """The sentence to show when FastGPT could not be asked at all, or either question
        failed (the same sentence twice is shown once)."""
        return self.links_error or self.versions_error


def app_state(app: ChatApp, *, timeout: float = 10) -> AppState:
    """Ask FastGPT about the app, briefly: a page waits for the answer."""
    if not app.fastgpt_app_id:
        return AppState([], set())
    try:
        with signed_in_fastgpt(app.stack, timeout=timeout) as fastgpt:
            try:
                links = fastgpt.share_links(app.fastgpt_app_id)
                share_ids, links_error = {str(link.get("shareId")) for link in links}, ""
            except FastGPTError as error:
                share_ids, links_error = None, str(error)
            try:
                versions, versions_error = fastgpt.app_versions(app.fastgpt_app_id), ""
            except FastGPTError as error:
                versions, versions_error = [], str(error)
    except FastGPTError as error:
        # Not even the login: FastGPT is down or unreachable.
        return AppState([], None, str(error), str(error))
    return AppState(versions, share_ids, versions_error, links_error)


# Share links ----------------------------------------------------------------------------------


def _link_id(fastgpt: FastGPTClient, app: ChatApp, share_id: str) -> str:
    """The `_id` of the app's share link with this shareId, or "" when FastGPT has none."""
    for found in fastgpt.share_links(app.fastgpt_app_id):
        if isinstance(found, dict) and found.get("shareId") == share_id:
            return str(found.get("_id") or "")
    return ""


def create_share_link(
    app: ChatApp,
    *,
    name: str,
    show_references: bool = False,
    qpm: int = 100,
    expires_at: datetime | None = None,
    created_by=None,
) -> ShareLink:
    """A share link in FastGPT and its row, with the `_id` FastGPT deletes it by."""
    with signed_in_fastgpt(app.stack) as fastgpt:
        share_id = fastgpt.create_share_link(
            app.fastgpt_app_id,
            name,
            show_references=show_references,
            qpm=qpm,
            expires_at=expires_at,
        )
        try:
            link_id = _link_id(fastgpt, app, share_id)
        except FastGPTError:
            # The link exists in FastGPT: keep it; revoking finds its _id by the shareId.
            link_id = ""
    return ShareLink.objects.create(
        app=app,
        name=name,
        show_references=show_references,
        qpm=qpm,
        expires_at=expires_at,
        fastgpt_share_id=share_id,
        fastgpt_link_id=link_id,
        created_by=created_by,
    )


def share_links(app: ChatApp) -> list[dict[str, Any]]:
    """The app's share links as FastGPT lists them."""
    if not app.fastgpt_app_id:
        return []
    with signed_in_fastgpt(app.stack) as fastgpt:
        return fastgpt.share_links(app.fastgpt_app_id)


def revoke_share_link(link: ShareLink) -> None:
    """Delete the link in FastGPT by its `_id` (found by its shareId if the row lacks it), then
    its row. A link FastGPT no longer has is revoked already."""
    app = link.app
    if app.fastgpt_app_id and link.fastgpt_share_id:
        with signed_in_fastgpt(app.stack) as fastgpt:
            link_id = link.fastgpt_link_id or _link_id(fastgpt, app, link.fastgpt_share_id)
            if link_id:
                try:
                    fastgpt.delete_share_link(link_id)
                except FastGPTError as error:
                    if error.status_text != LINK_GONE:
                        raise
    link.delete()


def public_url(link: ShareLink) -> str:
    """The link's public chat page on the stack's FastGPT."""
    return share_url(fastgpt_url(link.app.stack), link.fastgpt_share_id)


def embed_snippet(url: str, title: str = "") -> str:
    """HTML to paste into a web page: the chat in an iframe. A plain string (the page showing it
    escapes it again); the URL and title inside are escaped for their attributes."""
    title_attr = f' title="{escape(title)}"' if title else ""
    return (
        f'<iframe src="{escape(url)}"{title_attr} width="100%" height="{EMBED_HEIGHT}" '
        'style="border: 0" allow="microphone"></iframe>'
    )


def qr_svg(url: str, *, scale: int = 4) -> str:
    """The URL as a QR code, an inline SVG element made by segno."""
    code = segno.make(url, error="m")
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        scale=scale,
        dark="#000",
        light="#fff",
        svgclass="qr-code",
        nl=False,
    )
    return out.getvalue().decode("utf-8")
