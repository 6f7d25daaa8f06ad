"""Secrets masked out of log lines before any viewer gets them.

Containers print secrets: FastGPT its root password at every start ("root user init: {
username: 'root', password: '...' }"), One API its default root password before the panel
replaces it, a database a connection string with its password in it. Every line of a container
passes through the container's feed in the hub (hub.py), which masks it here once, before the
line is kept, queued or polled: the websockets, the recent-lines JSON and the page's download
(made from the lines the page received) only ever see the masked line.

What is masked, in every line of every service of a stack: each value of Stack.secrets (the
generated secrets and the credentials the services gave the panel), the API keys of the stack's
remote providers, and the SHA-256 that FastGPT takes for its root password at login; FastGPT's
root-init password whatever its value; and in One API's own log, One API's default root
password. The server's SSH private key is left out: it never leaves the panel, so no container
can print it, and its fifty-odd lines would make every line's search ten times slower.

A masker reads the stack's values from the database in the feed's thread, at most every
REFRESH_SECONDS (a cache shared by the feeds of a stack), and compiles one pattern again only
when they changed: a line costs one search of a precompiled pattern. `mask_text` masks the same
way text read from a container outside the hub.
"""

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Hashable, Iterable

from ..clients.oneapi import DEFAULT_ROOT_PASSWORD
from ..models import RemoteProvider, Service, Stack

logger = logging.getLogger(__name__)

MARKER = "\u2022" * 6
# Shorter values are not masked: they would mask ordinary words and numbers. Generated secrets
# are 20 or 32 characters; a provider's key is longer still, or a placeholder such as "EMPTY"
# that a local OpenAI-compatible server ignores.
MIN_SECRET_CHARS = 8
# How stale the values of a stack may be. A secret the panel saves (a token a service gave it,
# a provider's key) is masked from this long after, at most.
REFRESH_SECONDS = 2.0
# The compose service whose log may carry One API's default root password (stacks/render.py).
ONEAPI_SERVICE = "oneapi"
# What FastGPT keeps of its root password in Stack.secrets.
FASTGPT_ROOT_PASSWORD = "FASTGPT_ROOT_PASSWORD"  # noqa: S105 (a name, not a value)

# FastGPT's initRootUser: console.log of the user it made, its password quoted as node
# prints a string (', or " where the text has a '), or bare. One group is the value.
ROOT_INIT_TEXT = "root user init"
ROOT_INIT_RE = re.compile(
    r"root user init\b.*?\bpassword['\"]?\s*[:=]\s*"
    r"(?:'(?P<single>(?:[^'\\]|\\.)*)'|\"(?P<double>(?:[^\"\\]|\\.)*)\"|(?P<bare>[^\s,}]+))"
)
# One API's default password as a word of its own: "password is 123456", not "1234567". The
# look back comes after the literal: a pattern that starts with one is searched four times faster.
_DEFAULT = re.escape(DEFAULT_ROOT_PASSWORD)
ONEAPI_DEFAULT_RE = rf"{_DEFAULT}(?<![0-9A-Za-z]{_DEFAULT})(?![0-9A-Za-z])"


def stack_values(stack_ids: Iterable[int]) -> frozenset[str]:
    """Every secret of the stacks, read from the database (decrypted)."""
    stack_ids = list(stack_ids)
    values: set[str] = set()
    for raw in Stack.objects.filter(pk__in=stack_ids).values_list("secrets", flat=True):
        stored = json.loads(raw) if raw else {}
        values.update(value for value in stored.values() if isinstance(value, str))
        root_password = stored.get(FASTGPT_ROOT_PASSWORD)
        if isinstance(root_password, str) and root_password:
            # What the panel logs in to FastGPT with: as good as the password itself.
            values.add(hashlib.sha256(root_password.encode()).hexdigest())
    values.update(
        RemoteProvider.objects.filter(stack_id__in=stack_ids).values_list("api_key", flat=True)
    )
    return frozenset(value for value in values if len(value) >= MIN_SECRET_CHARS)


class _Cache:
    """The values of each stack as last read, shared by the feeds of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[float, frozenset[str]]] = {}

    def get(self, stack_id: int) -> tuple[frozenset[str], bool]:
        """(the values, whether the database was tried for them). A first read that fails
        raises: the feed then shows nothing rather than unmasked lines. A later one keeps the
        values it had until the next try: they are all but always still the stack's."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(stack_id)
        if entry is not None and now - entry[0] < REFRESH_SECONDS:
            return entry[1], False
        try:
            values = stack_values([stack_id])
        except Exception:
            if entry is None:
                raise
            logger.warning("Reading the secrets of stack %s failed", stack_id, exc_info=True)
            values = entry[1]
        with self._lock:
            self._entries[stack_id] = (now, values)
        return values, True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


cache = _Cache()


def compile_pattern(values: Iterable[str], extra: Iterable[str] = ()) -> re.Pattern | None:
    """One pattern for all the values, the longest first (a secret that holds another is
    masked whole), and `extra` patterns; None where there is nothing to look for."""
    literals = [re.escape(value) for value in sorted(set(values), key=lambda v: (-len(v), v))]
    alternatives = [*literals, *extra]
    return re.compile("|".join(alternatives)) if alternatives else None


def mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each span (sorted, not overlapping) replaced by MARKER."""
    pieces = []
    position = 0
    for start, end in spans:
        pieces.append(text[position:start])
        pieces.append(MARKER)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def mask_segments(segments: list, spans: list[tuple[int, int]]) -> list:
    """The coloured segments of a line (their texts make up the line's text) with the same
    spans masked: the marker goes in the segment where a span starts, so a secret split by a
    colour change is masked whole."""
    masked = []
    offset = 0
    index = 0
    for text, classes in segments:
        end = offset + len(text)
        pieces = []
        position = offset
        while index < len(spans) and spans[index][0] < end:
            start, stop = spans[index]
            if start >= position:
                pieces.append(text[position - offset : start - offset])
                pieces.append(MARKER)
            if stop > end:
                position = end  # the span goes on into the next segment
                break
            position = max(position, stop)
            index += 1
        if position < end:
            pieces.append(text[position - offset :])
        piece = "".join(pieces)
        if piece:
            masked.append([piece, classes])
        offset = end
    return masked


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class Masker:
    """Masks the lines of one container: its stack's secrets, and the patterns its service
    calls for. Reads the database (in refresh): build and use it off the event loop."""

    def __init__(self, stack_ids: Iterable[int] = (), *, oneapi: bool = False) -> None:
        self.stack_ids = tuple(sorted(set(stack_ids)))
        self._extra = (ONEAPI_DEFAULT_RE,) if oneapi else ()
        self._values: frozenset[str] | None = None
        self._pattern: re.Pattern | None = None
        self.refresh()

    def refresh(self) -> bool:
        """Take up the stack's current values, where they are due for a look; whether the
        database was read (the caller's thread then holds a connection)."""
        read = False
        values: frozenset[str] = frozenset()
        for stack_id in self.stack_ids:
            stack_set, from_database = cache.get(stack_id)
            values |= stack_set
            read = read or from_database
        if values != self._values:
            self._values = values
            self._pattern = compile_pattern(values, self._extra)
        return read

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where `text` holds a secret, merged and in order."""
        pattern = self._pattern
        # One search answers for nearly every line; only a line with a secret is searched again.
        found = (
            [match.span() for match in pattern.finditer(text)]
            if pattern is not None and pattern.search(text)
            else []
        )
        if ROOT_INIT_TEXT in text:
            for match in ROOT_INIT_RE.finditer(text):
                start, end = match.span(match.lastgroup)
                if end > start:
                    found.append((start, end))
        return _merged(found) if found else found

    def text(self, text: str) -> str:
        spans = self.spans(text)
        return mask_spans(text, spans) if spans else text

    def line(self, line: dict) -> dict:
        """A line of lines.py with its text (and coloured segments) masked, in place."""
        spans = self.spans(line["text"])
        if spans:
            line["text"] = mask_spans(line["text"], spans)
            if "segments" in line:
                line["segments"] = mask_segments(line["segments"], spans)
        return line


def mask_text(stack_id: int, text: str, *, service: str = "") -> str:
    """`text` read from a container of the stack some other way than the hub (the tail of a
    failed deploy's log, a log read for a reason) masked as the log viewers' lines are; the
    text may hold several lines. Reads the database."""
    return Masker((stack_id,), oneapi=service == ONEAPI_SERVICE).text(text)


def masker_for(key: Hashable) -> Masker:
    """The masker of the container `key` of the hub: (server id, container name). A key of
    another shape (a test's) gets the patterns that need no stack."""
    if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], int)):
        return Masker()
    server_id, container = key
    services = list(
        Service.objects.filter(stack__server_id=server_id, container_name=container).values_list(
            "stack_id", "name"
        )
    )
    return Masker(
        (stack_id for stack_id, _name in services),
        oneapi=any(name == ONEAPI_SERVICE for _stack_id, name in services),
    )


__all__ = ["MARKER", "Masker", "cache", "mask_text", "masker_for", "stack_values"]
