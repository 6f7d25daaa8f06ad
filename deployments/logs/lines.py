"""The output of `docker logs --timestamps`, as it arrives in chunks, cut into lines.

Each stream (stdout, stderr) has its own splitter. Chunks are cut on the newline byte, which is
never part of a multi-byte UTF-8 character, and only whole lines are decoded: a character split
between two chunks stays whole. Invalid bytes become U+FFFD. A line is a dict:

    {"ts": "2025-01-31T12:00:00.123Z" or None, "stream": "stdout" or "stderr", "text": "...",
     "segments": [[text, classes], ...]   only where the line has colours (see ansi.py),
     "cut": 83616}                        only where the line was cut: the bytes left out

Memory stays bounded whatever arrives: a line without an end is kept up to PENDING_LIMIT bytes,
then only its head is kept and the rest counted.
"""

import codecs
import re

from .ansi import render

# A longer line is cut here, with a marker saying how much was left out.
MAX_LINE_BYTES = 16 * 1024
# `docker logs --timestamps` stamps each 16 KiB piece of a long line (json-file keeps a long
# line as pieces); those stamps are taken out again.
DOCKER_PIECE_BYTES = 16 * 1024
PENDING_LIMIT = 1 << 20
HEAD_BYTES = 4 * MAX_LINE_BYTES

STAMP_RE = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z")
STAMP_PREFIX_RE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z ")


def browser_time(match: re.Match) -> str:
    """A docker stamp (nanoseconds, trailing zeros dropped) as ISO 8601 with milliseconds,
    which every browser's Date parses."""
    fraction = (match.group(2) or b"").decode("ascii")
    return f"{match.group(1).decode('ascii')}.{fraction[:3].ljust(3, '0')}Z"


def join_pieces(body: bytes) -> bytes:
    """A long line without the stamps docker put before each 16 KiB piece after the first."""
    pieces = [body[:DOCKER_PIECE_BYTES]]
    position = DOCKER_PIECE_BYTES
    while position < len(body):
        stamp = STAMP_PREFIX_RE.match(body, position)
        if stamp:
            position = stamp.end()
        pieces.append(body[position : position + DOCKER_PIECE_BYTES])
        position += DOCKER_PIECE_BYTES
    return b"".join(pieces)


def cut_marker(left_out: int) -> str:
    return f" \u2026 [{left_out:,} more bytes]"


class LineSplitter:
    """Turns the chunks of one stream into lines; `feed(b"", final=True)` ends it."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self._pending = b""
        # A line longer than PENDING_LIMIT: its head, and how many bytes of it were dropped.
        self._head: bytes | None = None
        self._dropped = 0
        # The last stamp up to its milliseconds, and its time: lines that come in the same
        # millisecond (all of them, in a flood) skip the parsing.
        self._stamp_key = b""
        self._stamp_ts: str | None = None

    def feed(self, data: bytes, final: bool = False) -> list[dict]:
        if self._pending:
            data = self._pending + data
            self._pending = b""
        parts = data.split(b"\n")
        rest = parts.pop()
        lines = []
        if parts and self._head is not None:
            lines.append(self._overlong_end(parts[0]))
            del parts[0]
        make = self.line
        for raw in parts:
            lines.append(make(raw))
        if rest:
            if self._head is not None:
                self._dropped += _content_size(rest)
            elif len(rest) > PENDING_LIMIT:
                self._head = rest[:HEAD_BYTES]
                self._dropped = _content_size(rest[HEAD_BYTES:])
            else:
                self._pending = rest
        if final:
            if self._head is not None:
                lines.append(self._overlong_end(b""))
            elif self._pending:
                lines.append(make(self._pending))
                self._pending = b""
        return lines

    def _overlong_end(self, tail: bytes) -> dict:
        line = self.line(self._head, dropped=self._dropped + _content_size(tail))
        self._head = None
        self._dropped = 0
        return line

    def _time(self, raw: bytes, space: int) -> str | None:
        """The browser time of the stamp raw[:space], or None where it is not a stamp."""
        key = raw[: min(space, 23)]
        if key == self._stamp_key and (space <= 23 or _cached_stamp(raw, space)):
            return self._stamp_ts
        stamp = STAMP_RE.fullmatch(raw, 0, space)
        if stamp is None:
            return None
        self._stamp_key = key
        self._stamp_ts = browser_time(stamp)
        return self._stamp_ts

    def line(self, raw: bytes, dropped: int = 0) -> dict:
        """One line (without its newline) as a dict; `dropped` bytes of it were not kept."""
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        ts = None
        space = raw.find(b" ", 0, 40)
        if space > 0:
            ts = self._time(raw, space)
            if ts is not None:
                raw = raw[space + 1 :]
        if len(raw) > DOCKER_PIECE_BYTES:
            raw = join_pieces(raw)
        if len(raw) > MAX_LINE_BYTES:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            text = decoder.decode(raw[:MAX_LINE_BYTES])
            # An incomplete character at the cut counts as left out.
            dropped += len(raw) - MAX_LINE_BYTES + len(decoder.getstate()[0])
        else:
            text = raw.decode("utf-8", "replace")
        line = {"ts": ts, "stream": self.stream, "text": text}
        if not text.isprintable():
            line["text"], segments = render(text)
            if segments:
                line["segments"] = segments
        if dropped:
            marker = cut_marker(dropped)
            line["text"] += marker
            if "segments" in line:
                line["segments"].append([marker, "log-cut"])
            line["cut"] = dropped
        return line


def _cached_stamp(raw: bytes, space: int) -> bool:
    """Whether what follows the milliseconds of a stamp (raw[:space]) is digits and "Z"."""
    return space <= 30 and raw[space - 1] == 0x5A and (space == 24 or raw[23 : space - 1].isdigit())


def _content_size(data: bytes) -> int:
    """Bytes of a long line's dropped part, less docker's stamps in it (near enough: a stamp
    split between two chunks is counted)."""
    return len(data) - sum(len(m.group()) for m in STAMP_PREFIX_RE.finditer(data))
