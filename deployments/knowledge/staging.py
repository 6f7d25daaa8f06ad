"""Uploaded documents wait on the panel's disk until FastGPT has them.

An upload is written to the staging folder as it arrives, a chunk at a time, so a file of any
size costs the panel a buffer of memory, not the file. Names are checked before a byte is
kept; the staged copy gets a name of the panel's own, so nothing a user sends becomes a path.
"""

import os
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.utils.translation import gettext as _

from ..errors import PanelError

# What FastGPT V4.8.8 can read (packages/service/worker/readFile); anything else fails there.
EXTENSIONS = ("pdf", "docx", "pptx", "xlsx", "csv", "md", "txt", "html")
CHUNK_BYTES = 1024 * 1024
NAME_MAX_CHARS = 255


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


def staged_path(staged: str) -> Path:
    """Where a staged file is; only names this module made are accepted."""
    if not staged or os.path.basename(staged) != staged or staged.startswith("."):
        raise ValueError(f"Not a staged file name: {staged!r}")
    return staging_dir() / staged


def discard(staged: str) -> None:
    if staged:
        staged_path(staged).unlink(missing_ok=True)


# A staged file can be named in a later request (the one-click publish form) by a token that
# only this panel can make, bound to the stack it was uploaded for.
SIGNING_SALT = "deployments.staged-upload"
TOKEN_MAX_AGE = 24 * 3600


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
