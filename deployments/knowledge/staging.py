"""Uploaded documents wait on the panel's disk until FastGPT has them.

An upload is written to the staging folder as it arrives, a chunk at a time, so a file of any
size costs the panel a buffer of memory, not the file. Names are checked before a byte is
kept; the staged copy gets a name of the panel's own, so nothing a user sends becomes a path.
"""

import os
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.utils.translation import gettext as _

from ..errors import PanelError

# What FastGPT V4.8.8 can read (packages/service/worker/readFile); anything else fails there.
EXTENSIONS = ("pdf", "docx", "pptx", "xlsx", "csv", "md", "txt", "html")
CHUNK_BYTES = 1024 * 1024
NAME_MAX_CHARS = 255
# How long an upload's token holds: a staged file no document keeps goes after this.
TOKEN_MAX_AGE = 24 * 3600


class BadUpload(PanelError):
    """A file the panel will not take; the message names it and says why."""


def limit_bytes() -> int:
    return settings.DOCUMENT_UPLOAD_MAX_MB * 1024 * 1024


def limit_text() -> str:
    return _("%(mb)s MB") % {"mb": settings.DOCUMENT_UPLOAD_MAX_MB}


def staging_dir() -> Path:
    folder = Path(settings.DOCUMENT_STAGING_DIR)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _has_control_characters(name: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in name)


def extension_of(name: str) -> str:
    """The checked extension of an uploaded file's name; BadUpload when the name won't do."""
    if not name or not name.strip():
        raise BadUpload(_("A file has no name."))
    shown = name.encode("unicode_escape").decode("ascii")[:80]
    if "/" in name or "\\" in name or name in (".", ".."):
        raise BadUpload(
            _("“%(name)s”: a file name may not contain a path (/ or \\).") % {"name": shown}
        )
    if _has_control_characters(name):
        raise BadUpload(
            _("“%(name)s”: the file name contains control characters.") % {"name": shown}
        )
    if len(name) > NAME_MAX_CHARS:
        raise BadUpload(
            _("“%(name)s…”: the file name is longer than %(max)s characters.")
            % {"name": shown, "max": NAME_MAX_CHARS}
        )
    stem, dot, extension = name.rpartition(".")
    extension = extension.lower()
    if not dot or not stem or extension not in EXTENSIONS:
        raise BadUpload(
            _("“%(name)s”: FastGPT cannot read this kind of file; it reads %(kinds)s.")
            % {"name": name, "kinds": ", ".join(f".{kind}" for kind in EXTENSIONS)}
        )
    return extension


def receive(read: Callable[[int], bytes], name: str) -> tuple[str, int]:
    """Write an upload to the staging folder from `read` (a file's read method); return the
    staged file's name and its size. Over the limit or empty: nothing is kept, BadUpload."""
    extension = extension_of(name)
    staged = f"{uuid.uuid4().hex}.{extension}"
    path = staging_dir() / staged
    limit = limit_bytes()
    size = 0
    try:
        with open(path, "xb") as out:
            while chunk := read(CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise BadUpload(
                        _("“%(name)s” is larger than the panel's upload limit of %(limit)s.")
                        % {"name": name, "limit": limit_text()}
                    )
                out.write(chunk)
        if size == 0:
            raise BadUpload(_("“%(name)s” is empty.") % {"name": name})
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return staged, size


# The browser sends a large file in pieces: an ASGI server holds a request's whole body in
# memory before the view runs, so one request per file would cost the panel the file's size.
PIECE_BYTES = 8 * 1024 * 1024
PIECE_MAX_BYTES = 2 * PIECE_BYTES


def _too_large(name: str) -> BadUpload:
    return BadUpload(
        _("“%(name)s” is larger than the panel's upload limit of %(limit)s.")
        % {"name": name, "limit": limit_text()}
    )


def check_upload(name: str, total: int) -> None:
    """Refuse a file by its name and declared size before any of it is kept."""
    extension_of(name)
    if total <= 0:
        raise BadUpload(_("“%(name)s” is empty.") % {"name": name})
    if total > limit_bytes():
        raise _too_large(name)


def receive_piece(
    read: Callable[[int], bytes], *, name: str, total: int, offset: int, staged: str = ""
) -> tuple[str, int]:
    """Append one piece of a file sent in order; the staged name and its size so far. The
    first piece (offset 0) starts the staged file; a piece out of order, too large or running
    past the declared size is refused, and a refused upload keeps nothing."""
    check_upload(name, total)
    if offset == 0:
        staged = f"{uuid.uuid4().hex}.{extension_of(name)}"
        staged_path(staged).touch(mode=0o600, exist_ok=False)
    path = staged_path(staged)
    if not path.exists():
        raise BadUpload(_("An uploaded file is no longer known: upload it again."))
    try:
        size = path.stat().st_size
        if size != offset:
            raise BadUpload(
                _("“%(name)s”: a piece arrived out of order; upload the file again.")
                % {"name": name}
            )
        with open(path, "ab") as out:
            received = 0
            while chunk := read(CHUNK_BYTES):
                received += len(chunk)
                if received > PIECE_MAX_BYTES or size + received > total:
                    raise BadUpload(
                        _("“%(name)s”: more arrived than the file's size; upload it again.")
                        % {"name": name}
                    )
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return staged, size + received


def staged_path(staged: str) -> Path:
    """Where a staged file is; only names this module made are accepted."""
    if not staged or os.path.basename(staged) != staged or staged.startswith("."):
        raise ValueError(f"Not a staged file name: {staged!r}")
    return staging_dir() / staged


def sweep(kept: set[str], older_than_seconds: int = TOKEN_MAX_AGE) -> list[str]:
    """Delete staged files no document keeps (uploads abandoned half-way, or never imported
    into a one-click chatbot) once their tokens have expired; the names deleted."""
    deadline = time.time() - older_than_seconds
    swept = []
    for path in staging_dir().iterdir():
        if path.name not in kept and path.is_file() and path.stat().st_mtime < deadline:
            path.unlink(missing_ok=True)
            swept.append(path.name)
    return swept


def discard(staged: str) -> None:
    if staged:
        staged_path(staged).unlink(missing_ok=True)


# A staged file can be named in a later request (the one-click publish form) by a token that
# only this panel can make, bound to the stack it was uploaded for.
SIGNING_SALT = "deployments.staged-upload"


def token_for(staged: str, stack_id: int, name: str, size: int) -> str:
    return signing.dumps(
        {"staged": staged, "stack": stack_id, "name": name, "size": size}, salt=SIGNING_SALT
    )


def staged_from_token(token: str, stack_id: int) -> dict:
    """The staged file a token names ({"staged", "name", "size"}); BadUpload when the token is
    forged, stale or for another stack, or the file is gone."""
    try:
        found = signing.loads(token, salt=SIGNING_SALT, max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:
        raise BadUpload(_("An uploaded file is no longer known: upload it again.")) from None
    if found.get("stack") != stack_id or not staged_path(found.get("staged", "")).exists():
        raise BadUpload(_("An uploaded file is no longer known: upload it again."))
    return {"staged": found["staged"], "name": found["name"], "size": found["size"]}


def piece_token(staged: str, *, name: str, total: int, target: str, user_id: int) -> str:
    """Names a file being uploaded in pieces, for the next piece's request: only this panel can
    make it, and it holds only for the same file, destination and user."""
    return signing.dumps(
        {"staged": staged, "name": name, "total": total, "target": target, "user": user_id},
        salt=SIGNING_SALT + ".piece",
    )


def staged_from_piece_token(token: str, *, name: str, total: int, target: str, user_id: int) -> str:
    try:
        found = signing.loads(token, salt=SIGNING_SALT + ".piece", max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:
        found = {}
    expected = {"name": name, "total": total, "target": target, "user": user_id}
    if any(found.get(key) != value for key, value in expected.items()):
        raise BadUpload(_("An uploaded file is no longer known: upload it again."))
    return found["staged"]


@dataclass(frozen=True)
class Piece:
    """One request of a file sent in pieces: which file, its size, where this piece starts, and
    the token the previous piece's answer gave (empty for the first)."""

    name: str
    total: int
    offset: int
    token: str = ""


@dataclass(frozen=True)
class Received:
    staged: str
    size: int
    # For the next piece; empty once the whole file is here.
    token: str

    @property
    def done(self) -> bool:
        return not self.token


def take_piece(
    read: Callable[[int], bytes], piece: Piece, *, target: str, user_id: int
) -> Received:
    """Append a piece to the upload it belongs to (`target` names where it goes, e.g. a
    knowledge base), checking that it continues that upload."""
    staged = ""
    if piece.offset:
        staged = staged_from_piece_token(
            piece.token, name=piece.name, total=piece.total, target=target, user_id=user_id
        )
    staged, size = receive_piece(
        read, name=piece.name, total=piece.total, offset=piece.offset, staged=staged
    )
    if size == piece.total:
        return Received(staged, size, "")
    token = piece_token(staged, name=piece.name, total=piece.total, target=target, user_id=user_id)
    return Received(staged, size, token)
