"""Uploaded files and fetched pages: the multipart form as multer reads it for V488's
`.single('file')`, the text of a file by its extension (readers.py), the text of a web page,
and chunks.

Chunking is a plain paragraph packer, not FastGPT's splitter.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from testkit.standins.fastgpt import readers

UPLOAD_FIELD = "file"
# The sign V488's xlsx reader puts between sheets; its splitter always cuts there.
CUSTOM_SPLIT_SIGN = readers.CUSTOM_SPLIT_SIGN


class NoAnswer(Exception):
    """multer's callback throws, so the request is never answered (K6); the message is what
    Node prints for the uncaught error."""


@dataclass
class Part:
    field: str
    filename: str | None  # None for a text field
    content_type: str
    data: bytes


@dataclass
class UploadForm:
    fields: dict[str, str]
    file: Part
    filename: str  # decodeURIComponent-ed, as multer's caller reads `originalname`


def _disposition(raw_header: bytes) -> tuple[str, str | None]:
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


def _boundary(content_type: str) -> str | None:
    match = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    return match.group(1) if match else None


def parse_multipart(body: bytes, boundary: str) -> list[Part]:
    """The parts of a multipart/form-data body, in the order they were sent."""
    delimiter = b"--" + boundary.encode("latin-1")
    parts: list[Part] = []
    for raw in body.split(delimiter)[1:]:
        if raw.startswith(b"--"):
            break
        raw = raw.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, _, data = raw.partition(b"\r\n\r\n")
        headers: dict[str, bytes] = {}
        for line in head.split(b"\r\n"):
            key, _, value = line.partition(b":")
            headers[key.strip().lower().decode("latin-1")] = value.strip()
        field, filename = _disposition(headers.get("content-disposition", b""))
        part_type = headers.get("content-type", b"application/octet-stream").decode("latin-1")
        parts.append(Part(field, filename, part_type, data))
    return parts


def read_upload_form(body: bytes, content_type: str, known_buckets: tuple[str, ...]) -> UploadForm:
    """multer `.single('file')` and V488's doUpload callback around it.

    ValueError: answered as an error ("Unexpected field", a bad bucket, no boundary).
    NoAnswer: the request hangs: a file name that decodeURIComponent refuses (multer's storage
    callback throws, so the upload never finishes), or no `file` part at all, or a body that is
    not multipart (the callback then reads `originalname` of an undefined file).
    """
    if not content_type.lower().startswith("multipart/") or not body:
        raise NoAnswer("TypeError: Cannot read properties of undefined (reading 'originalname')")
    boundary = _boundary(content_type)
    if boundary is None:
        raise ValueError("Multipart: Boundary not found")
    fields: dict[str, str] = {}
    upload: Part | None = None
    for part in parse_multipart(body, boundary):
        if part.filename is None:
            fields.setdefault(part.field, part.data.decode("utf-8", errors="replace"))
        elif part.field != UPLOAD_FIELD or upload is not None:
            raise ValueError("Unexpected field")
        else:
            try:
                decode_uri_component(part.filename)
            except ValueError:
                raise NoAnswer("URIError: URI malformed") from None
            upload = part
    bucket = fields.get("bucketName") or known_buckets[0]
    if bucket not in known_buckets:
        raise ValueError("BucketName is invalid")
    if upload is None:
        raise NoAnswer("TypeError: Cannot read properties of undefined (reading 'originalname')")
    return UploadForm(fields, upload, decode_uri_component(upload.filename or ""))


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


def file_encoding(data: bytes) -> str | None:
    """What jschardet names for the first 200 bytes, for the plain cases: ascii or utf-8."""
    head = data[:200]
    if all(byte < 0x80 for byte in head):
        return "ascii"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A character cut at byte 200 is still UTF-8.
        if error.start < len(head) - 3:
            return None
    return "utf-8"


def extract_text(extension: str, data: bytes) -> str:
    """The raw text of a file by its extension, as V488's readFile worker gives it.

    ValueError: the file cannot be read (the message V488 answers with).
    readers.ReaderMissing: a library the stand-in needs for this type is not installed.
    """
    if extension in ("txt", "md"):
        return readers.decode_text(data)
    if extension == "html":
        return html_text(readers.decode_text(data))
    if extension == "csv":
        return readers.csv_table(readers.decode_text(data))
    if extension == "pdf":
        return readers.pdf_text(data)
    if extension == "docx":
        return readers.docx_text(data)
    if extension == "pptx":
        return readers.pptx_text(data)
    if extension == "xlsx":
        return readers.xlsx_text(data)
    raise ValueError(readers.SUPPORTED)


_DROPPED_ELEMENTS = r"script|style|iframe|i|noscript|template"
_BLOCK_END = r"p|div|h\d|li|tr|ul|ol|table|pre|blockquote|section|article|header|footer"


def html_text(page: str) -> str:
    """The text of an HTML document, blocks on lines of their own (not turndown's Markdown).
    `<i>`, script and iframe elements are dropped, as V488's cheerio/turndown steps drop them."""
    text = re.sub(rf"(?is)<({_DROPPED_ELEMENTS})\b[^>]*>.*?</\1\s*>", "", page)
    text = re.sub(r"(?is)<!--.*?-->", "", text)
    text = re.sub(rf"(?i)<br\s*/?>|</({_BLOCK_END})\s*>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def page_title(page: str, url: str) -> str:
    """cheerio's `$('head title').text() || $('h1:first').text() || url`, untrimmed."""
    head = re.search(r"(?is)<head\b[^>]*>(.*?)</head\s*>", page)
    title = re.search(r"(?is)<title\b[^>]*>(.*?)</title\s*>", head.group(1)) if head else None
    if title and title.group(1):
        return html.unescape(title.group(1))
    heading = re.search(r"(?is)<h1\b[^>]*>(.*?)</h1\s*>", page)
    heading_text = html.unescape(re.sub(r"<[^>]+>", "", heading.group(1))) if heading else ""
    return heading_text or url


def page_body(page: str) -> str:
    """The `body` element's inner HTML (cheerio adds a body to a fragment: the whole page)."""
    body = re.search(r"(?is)<body\b[^>]*>(.*?)(?:</body\s*>|$)", page)
    if body:
        return body.group(1)
    return re.sub(r"(?is)<head\b[^>]*>.*?</head\s*>", "", page)


def simple_text(text: str) -> str:
    """simpleText: trimmed, line ends unified, runs of blank lines cut to one."""
    text = text.strip().replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"\n{3,}", "\n\n", text)
    return re.sub(r"[\x00-\x08]", " ", text)


def split_chunks(text: str, chunk_size: int, splitter: str = "") -> list[str]:
    """Paragraphs packed into chunks of at most `chunk_size` characters (a longer paragraph is
    cut). CUSTOM_SPLIT_SIGN always cuts, then a custom splitter (a regular expression, as
    FastGPT takes it)."""
    chunk_size = max(int(chunk_size or 512), 1)
    chunks: list[str] = []
    for block in text.split(CUSTOM_SPLIT_SIGN):
        for section in re.split(splitter, block) if splitter else [block]:
            chunks.extend(_pack_paragraphs(section, chunk_size))
    return chunks


def _pack_paragraphs(section: str, chunk_size: int) -> list[str]:
    chunks: list[str] = []
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
