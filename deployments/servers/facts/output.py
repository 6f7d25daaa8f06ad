"""What a command printed, as the parsers read it: FactsError and the helpers they share.

The parsers are pure functions of a command's output; they raise FactsError with a message
meant for people when the output is not what the command prints.
"""

from __future__ import annotations

import re
from typing import Any


class FactsError(ValueError):
    """A command's output could not be understood; the message says why, in plain words."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _first_line(text: str, limit: int = 300) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def _quote(text: str, limit: int = 120) -> str:
    text = text.strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(text)


def _int(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise FactsError(f"{what} is not a whole number: {_quote(value)}") from None


def _not_found(exit_status: int, output: str) -> bool:
    """Whether the shell (or sudo, or coreutils' timeout) could not find the command."""
    return exit_status == 127 or bool(
        re.search(
            r"command not found|: not found$|failed to run command.*No such file",
            output,
            re.MULTILINE,
        )
    )


def _timed_out(exit_status: int, output: str) -> bool:
    return exit_status == 124 or "did not finish within" in output
