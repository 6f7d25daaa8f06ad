"""Cutting `docker logs --timestamps` output into lines a browser can show safely."""

import json

import pytest

from deployments.logs.ansi import render, visible_controls
from deployments.logs.lines import (
    MAX_LINE_BYTES,
    PENDING_LIMIT,
    LineSplitter,
    join_pieces,
)

TS = b"2025-01-31T12:00:00.123456789Z "


def feed_bytewise(data: bytes, stream: str = "stdout") -> list[dict]:
    splitter = LineSplitter(stream)
    lines = []
    for i in range(len(data)):
        lines += splitter.feed(data[i : i + 1])
    return lines + splitter.feed(b"", final=True)


def docker_line(content: bytes, stamp: bytes = TS) -> bytes:
    """A line as `docker logs --timestamps` prints it from json-file: each 16 KiB piece after
    the first has its own stamp."""
    pieces = [content[i : i + 16384] for i in range(0, len(content), 16384)] or [b""]
    return b"".join(stamp + piece for piece in pieces) + b"\n"


def test_a_stamped_line_has_its_time_in_milliseconds_and_its_stream():
    (line,) = LineSplitter("stderr").feed(TS + b"ready\n")

    assert line == {"ts": "2025-01-31T12:00:00.123Z", "stream": "stderr", "text": "ready"}


def test_stamps_without_a_fraction_or_with_a_short_one_are_padded():
    lines = LineSplitter("stdout").feed(
        b"2025-01-31T12:00:00Z a\n2025-01-31T12:00:00.5Z b\n2025-01-31T12:00:00.05Z c\n"
    )

    assert [line["ts"] for line in lines] == [
        "2025-01-31T12:00:00.000Z",
        "2025-01-31T12:00:00.500Z",
        "2025-01-31T12:00:00.050Z",
    ]


def test_a_line_without_a_stamp_keeps_all_its_text_and_no_time():
    (line,) = LineSplitter("stdout").feed(b"Error: No such container: x\n")

    assert line["ts"] is None
    assert line["text"] == "Error: No such container: x"


def test_multibyte_characters_split_across_every_chunk_boundary_stay_whole():
    text = "€ 中文 ✓ 🚀 Ünïcödé"

    lines = feed_bytewise(TS + text.encode() + b"\n")

    assert [line["text"] for line in lines] == [text]


def test_a_chunk_ending_inside_a_character_gives_nothing_until_the_rest_comes():
    splitter = LineSplitter("stdout")

    assert splitter.feed(TS + "€".encode()[:2]) == []
    assert [line["text"] for line in splitter.feed("€".encode()[2:] + b" euro\n")] == ["€ euro"]


def test_invalid_bytes_become_replacement_characters():
    (line,) = LineSplitter("stdout").feed(TS + b"bad \xff\xfe\xc3 end\n")

    assert line["text"] == "bad \ufffd\ufffd\ufffd end"


def test_control_characters_become_visible_symbols_and_tabs_stay():
    (line,) = LineSplitter("stdout").feed(TS + b"a\tb\x00c\x07d\x7fe\x08\n")

    assert line["text"] == "a\tb\u2400c\u2407d\u2421e\u2408"
    assert "segments" not in line


def test_crlf_endings_of_tty_containers_are_removed():
    lines = LineSplitter("stdout").feed(TS + b"one\r\n" + TS + b"two\r\n")

    assert [line["text"] for line in lines] == ["one", "two"]


def test_a_carriage_return_inside_a_line_keeps_what_a_terminal_shows():
    (line,) = LineSplitter("stdout").feed(TS + b"10%\r50%\r100% done\n")

    assert line["text"] == "100% done"


def test_colours_become_segments_with_classes_and_plain_text():
    (line,) = LineSplitter("stdout").feed(
        TS + b"\x1b[32mINFO\x1b[0m:     started \x1b[1;31mERROR\x1b[0m\n"
    )

    assert line["text"] == "INFO:     started ERROR"
    assert line["segments"] == [
        ["INFO", "ansi-green"],
        [":     started ", ""],
        ["ERROR", "ansi-bold ansi-red"],
    ]


def test_other_escape_sequences_are_dropped_not_shown():
    (line,) = LineSplitter("stdout").feed(
        TS
        + b"\x1b[2K\x1b[1Gclear \x1b]0;title\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b(B\n"
    )

    assert line["text"] == "clear link "
    assert "segments" not in line
    assert "\x1b" not in json.dumps(line)


def test_a_lone_escape_is_shown_as_a_symbol():
    text, segments = render("a\x1b")

    assert text == "a\u241b"
    assert segments is None


@pytest.mark.parametrize(
    ("codes", "classes"),
    [
        ("38;5;196", "ansi-bright-red"),
        ("38;5;9", "ansi-bright-red"),
        ("38;5;2", "ansi-green"),
        ("38;2;0;0;200", "ansi-blue"),
        ("48;5;11", "ansi-bg-bright-yellow"),
        ("93;4", "ansi-underline ansi-bright-yellow"),
        ("1;2;3;9", "ansi-bold ansi-dim ansi-italic ansi-strike"),
        ("31;39", ""),
        ("38;5", ""),
        ("?25", ""),
    ],
)
def test_sgr_codes_map_to_a_fixed_set_of_classes(codes, classes):
    _, segments = render(f"\x1b[{codes}mx")

    assert (segments or [["x", ""]])[0][1] == classes


def test_every_class_comes_from_the_fixed_set():
    allowed_words = {
        "ansi-bold", "ansi-dim", "ansi-italic", "ansi-underline", "ansi-strike",
    }  # fmt: skip
    colours = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]
    for colour in colours:
        allowed_words |= {f"ansi-{colour}", f"ansi-bright-{colour}"}
        allowed_words |= {f"ansi-bg-{colour}", f"ansi-bg-bright-{colour}"}
    for code in range(0, 256):
        for sgr in (f"{code}", f"38;5;{code}", f"48;5;{code}", f"38;2;{code};{255 - code};7"):
            _, segments = render(f"\x1b[{sgr}mx")
            for _, classes in segments or []:
                assert set(classes.split()) <= allowed_words, sgr


def test_visible_controls_leaves_printable_text_alone():
    assert visible_controls("plain — 中文\t") == "plain — 中文\t"


def test_a_long_line_is_cut_with_a_marker_and_docker_piece_stamps_are_removed():
    content = b"x" * 100_000

    (line,) = LineSplitter("stdout").feed(docker_line(content))

    left_out = 100_000 - MAX_LINE_BYTES
    assert line["text"] == "x" * MAX_LINE_BYTES + f" \u2026 [{left_out:,} more bytes]"
    assert line["cut"] == left_out
    assert line["ts"] == "2025-01-31T12:00:00.123Z"


def test_a_line_just_over_a_docker_piece_loses_no_text_to_stamps():
    content = b"a" * 16384 + b"tail"

    (line,) = LineSplitter("stdout").feed(docker_line(content))

    assert line["cut"] == 4
    assert "2025" not in line["text"]


def test_join_pieces_removes_the_stamps_between_pieces_only():
    content = (b"0123456789abcdef" * 1024) * 3 + b"end 2025-01-31T12:00:00Z kept"

    joined = join_pieces(docker_line(content)[len(TS) : -1])

    assert joined == content


def test_cutting_inside_a_multibyte_character_counts_it_as_left_out():
    content = b"a" * (MAX_LINE_BYTES - 1) + "€".encode() + b"b"

    (line,) = LineSplitter("stdout").feed(TS + content + b"\n")

    assert line["text"].startswith("a" * (MAX_LINE_BYTES - 1) + " \u2026")
    assert line["cut"] == 4


def test_a_coloured_long_line_gets_the_marker_as_its_own_segment():
    content = b"\x1b[31m" + b"r" * (MAX_LINE_BYTES + 10)

    (line,) = LineSplitter("stdout").feed(TS + content + b"\n")

    assert line["segments"][-1][1] == "log-cut"
    assert line["segments"][0][1] == "ansi-red"


def test_a_line_that_never_ends_is_held_in_bounded_memory():
    splitter = LineSplitter("stdout")
    chunk = b"y" * 65536

    splitter.feed(TS)
    for _ in range(64):  # 4 MiB without a newline
        assert splitter.feed(chunk) == []
        assert len(splitter._pending) <= PENDING_LIMIT
        assert splitter._head is None or len(splitter._head) <= 4 * MAX_LINE_BYTES
    (line,) = splitter.feed(b"\n" + TS + b"next\n")[:1]

    assert line["text"].startswith("y" * 100)
    assert line["cut"] == 64 * 65536 - MAX_LINE_BYTES
    assert splitter.feed(b"", final=True) == []


def test_the_final_feed_gives_the_unfinished_last_line():
    splitter = LineSplitter("stdout")

    assert splitter.feed(TS + b"no newline") == []
    assert [line["text"] for line in splitter.feed(b"", final=True)] == ["no newline"]


def test_binary_garbage_gives_lines_of_bounded_size_that_encode_as_json():
    garbage = bytes(range(256)) * 400  # newlines included, invalid UTF-8 everywhere

    lines = feed_bytewise(garbage)

    assert lines
    for line in lines:
        encoded = json.dumps(line, ensure_ascii=False)
        assert "\x1b" not in encoded
        assert len(line["text"].encode()) <= MAX_LINE_BYTES * 3 + 100
