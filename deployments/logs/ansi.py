"""Terminal escape codes in log lines, made safe to show.

Colours are kept, as data: services colour their log levels (uvicorn, Xinference, One API), and
a red ERROR is worth keeping. A line with colours gets `segments`, a list of [text, classes]
pairs where classes are names from a fixed set ("ansi-red", "ansi-bold", ...), for the page to
put on spans as text, never as HTML. Every other escape sequence (cursor movement, titles,
hyperlinks) is dropped, and the remaining control characters become visible symbols.
"""

import re

COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")

# CSI sequences (SGR is the one ending in "m"), OSC strings (to BEL or ST, or to the end of
# the line when cut), other escapes (ESC, intermediates, a final byte), and a lone ESC.
ESCAPE_RE = re.compile(
    r"\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]|\x1b"
)
# C0 controls but tab, DEL and C1 controls.
CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _control_symbol(match: re.Match) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␀ ␇ ␛ ...
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def visible_controls(text: str) -> str:
    """Control characters (not tab) replaced by symbols that show what they were."""
    return CONTROL_RE.sub(_control_symbol, text)


def _basic(red: int, green: int, blue: int, scale: int) -> str:
    """The nearest of the 16 basic colours to an RGB colour with components 0..scale."""
    index = (red * 2 > scale) * 1 + (green * 2 > scale) * 2 + (blue * 2 > scale) * 4
    bright = max(red, green, blue) * 6 > scale * 5
    name = COLOURS[index]
    return f"bright-{name}" if bright and index else name


def _extended(params: list[int], at: int) -> tuple[str | None, int]:
    """A 38/48 colour (5;n or 2;r;g;b) starting at params[at]: (colour name, params used)."""
    if at < len(params) and params[at] == 5 and at + 1 < len(params):
        n = params[at + 1]
        if n < 8:
            return COLOURS[n], 2
        if n < 16:
            return f"bright-{COLOURS[n - 8]}", 2
        if n < 232:
            n -= 16
            return _basic(n // 36, n // 6 % 6, n % 6, 5), 2
        if n < 256:
            return ("bright-black" if n < 244 else "white"), 2
        return None, 2
    if at < len(params) and params[at] == 2 and at + 3 < len(params):
        red, green, blue = (min(p, 255) for p in params[at + 1 : at + 4])
        return _basic(red, green, blue, 255), 4
    return None, len(params) - at


class Style:
    """The SGR attributes in force: the classes of the text that follows."""

    __slots__ = ("fg", "bg", "bold", "dim", "italic", "underline", "strike")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.fg: str | None = None
        self.bg: str | None = None
        self.bold = self.dim = self.italic = self.underline = self.strike = False

    def apply(self, text: str) -> None:
        try:
            params = [int(p) if p else 0 for p in text.split(";")] if text else [0]
        except ValueError:  # private parameters ("?", "<"): not SGR
            return
        i = 0
        while i < len(params):
            p = params[i]
            i += 1
            if p == 0:
                self.reset()
            elif p == 1:
                self.bold = True
            elif p == 2:
                self.dim = True
            elif p == 3:
                self.italic = True
            elif p == 4:
                self.underline = True
            elif p == 9:
                self.strike = True
            elif p == 22:
                self.bold = self.dim = False
            elif p == 23:
                self.italic = False
            elif p == 24:
                self.underline = False
            elif p == 29:
                self.strike = False
            elif 30 <= p <= 37:
                self.fg = COLOURS[p - 30]
            elif 90 <= p <= 97:
                self.fg = f"bright-{COLOURS[p - 90]}"
            elif p == 39:
                self.fg = None
            elif 40 <= p <= 47:
                self.bg = COLOURS[p - 40]
            elif 100 <= p <= 107:
                self.bg = f"bright-{COLOURS[p - 100]}"
            elif p == 49:
                self.bg = None
            elif p in (38, 48):
                colour, used = _extended(params, i)
                i += used
                if p == 38:
                    self.fg = colour
                else:
                    self.bg = colour

    @property
    def classes(self) -> str:
        names = []
        if self.bold:
            names.append("ansi-bold")
        if self.dim:
            names.append("ansi-dim")
        if self.italic:
            names.append("ansi-italic")
        if self.underline:
            names.append("ansi-underline")
        if self.strike:
            names.append("ansi-strike")
        if self.fg:
            names.append(f"ansi-{self.fg}")
        if self.bg:
            names.append(f"ansi-bg-{self.bg}")
        return " ".join(names)


def render(text: str) -> tuple[str, list[list[str]] | None]:
    """(plain text, segments) of a line that may hold escapes and control characters.

    Segments are None where the line has no colour. A carriage return inside the line keeps
    what a terminal would show, the text after the last one (progress bars).
    """
    if "\r" in text:
        text = text[text.rfind("\r") + 1 :]
    style = Style()
    segments: list[list[str]] = []
    position = 0
    for match in ESCAPE_RE.finditer(text):
        piece = text[position : match.start()]
        position = match.end()
        if piece:
            _append(segments, visible_controls(piece), style.classes)
        if match.group() == "\x1b":
            _append(segments, "\u241b", style.classes)  # a lone ESC: ␛
        elif match.group(2) == "m":
            style.apply(match.group(1))
    piece = text[position:]
    if piece:
        _append(segments, visible_controls(piece), style.classes)
    plain = "".join(segment[0] for segment in segments)
    if not any(segment[1] for segment in segments):
        return plain, None
    return plain, segments


def _append(segments: list[list[str]], text: str, classes: str) -> None:
    if segments and segments[-1][1] == classes:
        segments[-1][0] += text
    else:
        segments.append([text, classes])
