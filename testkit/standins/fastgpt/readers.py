"""The text of an uploaded file, as V488's readFile worker reads each type.

PDF, docx and xlsx are read with real libraries (pypdf, python-docx, openpyxl; Debian's
python3-pypdf, python3-docx and python3-openpyxl in the stack image). The module imports
without them, so every other route works on a bare Python; a file that needs a missing one
fails loudly with ReaderMissing instead of passing for an empty document.
"""

from __future__ import annotations

import csv
import datetime
import re
import zipfile
from io import BytesIO, StringIO
from typing import Any
from xml.etree import ElementTree

try:
    import pypdf
except ImportError:  # the stand-in still serves everything else
    pypdf = None
try:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph
except ImportError:
    docx = None
try:
    import openpyxl
    from openpyxl.utils.datetime import to_excel
except ImportError:
    openpyxl = None

SUPPORTED = "Only support .txt, .md, .html, .pdf, .docx, pptx, .csv, .xlsx"
CUSTOM_SPLIT_SIGN = "-----CUSTOM_SPLIT_SIGN-----"
DOCX_FAILED = "Can not read doc file, please convert to PDF"
PPTX_FAILED = "解析 PPT 失败"
PDF_FAILED = "Invalid PDF structure."
# pdf.js's reader in V488 drops text in the top and bottom 5% of a page (headers, footers).
PDF_HEADER_BAND = 0.95
PDF_FOOTER_BAND = 0.05
# A PDF line ends its paragraph only after one of these; other lines run into the next one.
PDF_PARAGRAPH_END = re.compile(r"[。？！.?!\n\r]$")
WORD_NS = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
DRAWING_NS = "{http://schemas.openxmlformats.org/drawingml/2006/main}"


class ReaderMissing(Exception):
    """A library this stand-in needs to read the file type is not installed."""


def _require(module: Any, package: str, debian: str, extension: str) -> None:
    if module is None:
        raise ReaderMissing(
            f"The FastGPT stand-in cannot read .{extension} files: {package} is not installed "
            f"(pip install {package}, or Debian's {debian})."
        )


def decode_text(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


# PDF ------------------------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    """Each page's text lines inside the header/footer bands, joined as V488 joins pdf.js
    tokens: a newline only after a line ending in sentence punctuation, else nothing."""
    _require(pypdf, "pypdf", "python3-pypdf", "pdf")
    try:
        reader = pypdf.PdfReader(BytesIO(data))
        pages = [_pdf_page_lines(page) for page in reader.pages]
    except (pypdf.errors.PyPdfError, ValueError, KeyError, TypeError) as error:
        raise ValueError(PDF_FAILED) from error
    return "".join(_join_pdf_lines(lines) for lines in pages)


def _pdf_page_lines(page: Any) -> list[str]:
    height = float(page.mediabox.height)
    lines: list[str] = [""]

    def visit(text: str, cm: list[float], tm: list[float], *_: Any) -> None:
        # The text's baseline in user space: the text matrix's origin through the CTM.
        y = cm[1] * tm[4] + cm[3] * tm[5] + cm[5]
        pieces = text.split("\n")
        for index, piece in enumerate(pieces):
            if index:
                lines.append("")
            if piece and height * PDF_FOOTER_BAND < y < height * PDF_HEADER_BAND:
                lines[-1] += piece

    page.extract_text(visitor_text=visit)
    return [line for line in lines if line]


def _join_pdf_lines(lines: list[str]) -> str:
    return "".join(line + "\n" if PDF_PARAGRAPH_END.search(line) else line for line in lines)


# docx -----------------------------------------------------------------------------------------


def docx_text(data: bytes) -> str:
    """mammoth's HTML through turndown, roughly: headings as `#`, tables as rows of cells,
    blocks apart by a blank line, empty paragraphs left out."""
    _require(docx, "python-docx", "python3-docx", "docx")
    try:
        document = docx.Document(BytesIO(data))
        blocks = [_docx_block(child, document) for child in document.element.body.iterchildren()]
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ValueError(DOCX_FAILED) from error
    return "\n\n".join(block for block in blocks if block)


def _docx_block(element: Any, document: Any) -> str:
    if element.tag == f"{WORD_NS}p":
        return _docx_paragraph(Paragraph(element, document))
    if element.tag == f"{WORD_NS}tbl":
        return _docx_table(Table(element, document))
    return ""


def _docx_paragraph(paragraph: Any) -> str:
    text = paragraph.text.strip()
    style = paragraph.style.name if paragraph.style is not None else ""
    level = re.fullmatch(r"Heading ([1-6])", style or "")
    if text and level:
        return "#" * int(level.group(1)) + " " + text
    return text


def _docx_table(table: Any) -> str:
    rows = [[cell.text.strip() for cell in row.cells] for row in table.rows]
    if not rows:
        return ""
    lines = [_table_row(rows[0]), _table_row(["---"] * len(rows[0]))]
    lines.extend(_table_row(row) for row in rows[1:])
    return "\n".join(lines)


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# pptx -----------------------------------------------------------------------------------------


def pptx_text(data: bytes) -> str:
    """Slides and speaker notes in archive order, each `a:p` with text on its own line."""
    slide = re.compile(r"ppt/slides/slide\d+\.xml")
    wanted = re.compile(r"ppt/(notesSlides|slides)/(notesSlide|slide)\d+\.xml")
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            names = [name for name in archive.namelist() if wanted.search(name)]
            if not any(slide.search(name) for name in names):
                raise ValueError(PPTX_FAILED)
            return "\n".join(_pptx_part_text(archive.read(name)) for name in names)
    except (zipfile.BadZipFile, ElementTree.ParseError) as error:
        raise ValueError(PPTX_FAILED) from error


def _pptx_part_text(xml: bytes) -> str:
    root = ElementTree.fromstring(xml)  # noqa: S314 - a test's own upload
    lines = []
    for paragraph in root.iter(f"{DRAWING_NS}p"):
        runs = list(paragraph.iter(f"{DRAWING_NS}t"))
        if runs:
            lines.append("".join(run.text or "" for run in runs))
    return "\n".join(lines)


# csv and xlsx: V488 turns them into Markdown tables ------------------------------------------


def csv_table(text: str) -> str:
    """papaparse's rows of the file as a Markdown table, the first row as its header."""
    rows = _parse_csv(text)
    if not rows:
        raise ValueError("Cannot read properties of undefined (reading 'join')")
    body = "\n".join(_escaped_row(row) for row in rows[1:])
    return f"{_table_row(rows[0])}\n{_table_row(['---'] * len(rows[0]))}\n{body}"


def xlsx_text(data: bytes) -> str:
    """Each sheet as node-xlsx reads it, joined into CSV and parsed again, as a Markdown table
    (with the indentation V488's template leaves in it); sheets apart by CUSTOM_SPLIT_SIGN."""
    _require(openpyxl, "openpyxl", "python3-openpyxl", "xlsx")
    try:
        workbook = openpyxl.load_workbook(BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise ValueError(str(error)) from error
    tables = []
    for sheet in workbook.worksheets:
        rows_of_cells = sheet.iter_rows(values_only=True)
        csv_text = "\n".join(",".join(_cell_text(value) for value in row) for row in rows_of_cells)
        rows = _parse_csv(csv_text)
        if rows:
            tables.append(_indented_table(rows))
    workbook.close()
    return CUSTOM_SPLIT_SIGN.join(tables)


def _indented_table(rows: list[list[str]]) -> str:
    indent = " " * 6
    body = "\n".join(_escaped_row(row) for row in rows[1:])
    separator = _table_row(["---"] * len(rows[0]))
    return f"{_table_row(rows[0])}\n{indent}{separator}\n{indent}{body}"


def _escaped_row(row: list[str]) -> str:
    return _table_row([cell.replace("\n", "\\n") for cell in row])


def _parse_csv(text: str) -> list[list[str]]:
    """papaparse's rows: an empty line is one empty cell, and so is a final line break."""
    if not text:
        return []
    rows = [row or [""] for row in csv.reader(StringIO(text))]
    if text.endswith(("\n", "\r")):
        rows.append([""])
    return rows


def _cell_text(value: Any) -> str:
    """A raw cell value as JavaScript's Array.join writes it (dates as Excel serial numbers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        value = to_excel(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
