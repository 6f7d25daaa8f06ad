"""Uploaded files: the multipart form as multer/busboy read it, text out of the file, chunks.

Text extraction covers what a test can hand over without extra packages: txt, md, csv and html
as text, docx/pptx/xlsx through their XML, and PDF content streams (plain or FlateDecode) through
their `Tj`/`TJ` operators. Chunking is a plain paragraph packer, not FastGPT's splitter.
"""

from __future__ import annotations

import html
import re
import zipfile
import zlib
from dataclasses import dataclass
from io import BytesIO
from urllib.parse import unquote_to_bytes

SUPPORTED = "Only support .txt, .md, .html, .pdf, .docx, pptx, .csv, .xlsx"


@dataclass
class UploadedFile:
    field: str
    filename: str
    content_type: str
    data: bytes


def _disposition_filename(raw_header: bytes) -> tuple[str, str | None]:
    """(field name, file name) from a part's Content-Disposition, decoded as busboy does:
    a plain `filename="..."` is read as latin1, `filename*=UTF-8''...` is percent-decoded."""
    text = raw_header.decode("latin-1")
    name = re.search(r'(?<![\w*])name="((?:[^"\\]|\\.)*)"', text)
    extended = re.search(r"filename\*=([\w-]+)'[^']*'([^;\s]+)", text, re.IGNORECASE)
    plain = re.search(r'(?<![\w*])filename="((?:[^"\\]|\\.)*)"', text, re.IGNORECASE)
    field = name.group(1) if name else ""
    if extended:
        charset = extended.group(1).lower()
        return field, unquote_to_bytes(extended.group(2)).decode(charset, errors="replace")
    if plain:
        return field, plain.group(1).replace('\\"', '"')
    return field, None


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], list[UploadedFile]]:
    """Fields (UTF-8) and files of a multipart/form-data body; ValueError when it is not one."""
    match = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    if not content_type.lower().startswith("multipart/form-data") or not match:
        raise ValueError("Unsupported content type: " + (content_type or "none"))
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, str] = {}
    files: list[UploadedFile] = []
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        part = part.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, _, data = part.partition(b"\r\n\r\n")
        headers: dict[str, bytes] = {}
        for line in head.split(b"\r\n"):
            key, _, value = line.partition(b":")
            headers[key.strip().lower().decode("latin-1")] = value.strip()
        field, filename = _disposition_filename(headers.get("content-disposition", b""))
        if filename is None:
            fields[field] = data.decode("utf-8", errors="replace")
        else:
            part_type = headers.get("content-type", b"application/octet-stream").decode("latin-1")
            files.append(UploadedFile(field, filename, part_type, data))
    return fields, files


def decode_uri_component(text: str) -> str:
    """JavaScript's decodeURIComponent: URIError('URI malformed') on a bad escape."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise ValueError("URI malformed")
            out.append(int(pair, 16))
            i += 3
        else:
            out.extend(text[i].encode("utf-8"))
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("URI malformed") from None


def _decode_text(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


def _xml_text(data: bytes, paragraph_tag: str) -> str:
    text = data.decode("utf-8", errors="replace")
    text = re.sub(rf"</{paragraph_tag}>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _office_text(data: bytes, extension: str) -> str:
    with zipfile.ZipFile(BytesIO(data)) as archive:
        names = archive.namelist()
        if extension == "docx":
            return _xml_text(archive.read("word/document.xml"), "w:p")
        if extension == "pptx":
            slides = sorted(
                (n for n in names if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
                key=lambda n: int(re.findall(r"\d+", n)[-1]),
            )
            return "\n".join(_xml_text(archive.read(n), "a:p") for n in slides)
        shared = "xl/sharedStrings.xml"
        return _xml_text(archive.read(shared), "si") if shared in names else ""


_PDF_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _pdf_string(raw: bytes) -> str:
    out = bytearray()
    i = 0
    while i < len(raw):
        byte = raw[i : i + 1]
        if byte == b"\\" and i + 1 < len(raw):
            nxt = raw[i + 1 : i + 2]
            octal = re.match(rb"[0-7]{1,3}", raw[i + 1 : i + 4])
            if octal:
                out.append(int(octal.group(), 8) & 0xFF)
                i += 1 + len(octal.group())
                continue
            out.extend(_PDF_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.extend(byte)
        i += 1
    return out.decode("latin-1")


def _pdf_text(data: bytes) -> str:
    lines = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.DOTALL):
        try:
            content = zlib.decompress(stream)
        except zlib.error:
            content = stream
        for block in re.findall(rb"BT(.*?)ET", content, re.DOTALL):
            strings = re.findall(rb"\(((?:\\.|[^\\)])*)\)", block, re.DOTALL)
            line = "".join(_pdf_string(s) for s in strings).strip()
            if line:
                lines.append(line)
    return "\n".join(lines)


def extract_text(extension: str, data: bytes) -> str:
    """The raw text of a file by its extension; ValueError(SUPPORTED) for other extensions."""
    if extension in ("txt", "md", "csv"):
        return _decode_text(data)
    if extension == "html":
        text = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", _decode_text(data))
        text = re.sub(r"(?i)<br\s*/?>|</(p|div|h\d|li|tr)>", "\n", text)
        return html.unescape(re.sub(r"<[^>]+>", "", text))
    if extension == "pdf":
        return _pdf_text(data)
    if extension in ("docx", "pptx", "xlsx"):
        try:
            return _office_text(data, extension)
        except (zipfile.BadZipFile, KeyError):
            return ""
    raise ValueError(SUPPORTED)


def simple_text(text: str) -> str:
    """simpleText: trimmed, line ends unified, runs of blank lines cut to one."""
    text = text.strip().replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"\n{3,}", "\n\n", text)
    return re.sub(r"[\x00-\x08]", " ", text)


def split_chunks(text: str, chunk_size: int, splitter: str = "") -> list[str]:
    """Paragraphs packed into chunks of at most `chunk_size` characters (a longer paragraph is
    cut); a custom splitter (a regular expression, as FastGPT takes it) cuts first."""
    chunk_size = max(int(chunk_size or 512), 1)
    sections = re.split(splitter, text) if splitter else [text]
    chunks: list[str] = []
    for section in sections:
        current = ""
        for paragraph in re.split(r"\n\s*\n", section):
            paragraph = paragraph.strip()
            while len(paragraph) > chunk_size:
                if current:
                    chunks.append(current)
                    current = ""
                chunks.append(paragraph[:chunk_size])
                paragraph = paragraph[chunk_size:].strip()
            if not paragraph:
                continue
            if current and len(current) + 2 + len(paragraph) > chunk_size:
                chunks.append(current)
                current = paragraph
            else:
                current = f"{current}\n\n{paragraph}" if current else paragraph
        if current:
            chunks.append(current)
    return chunks
