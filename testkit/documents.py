"""Real documents made at test time by the libraries that write them, so an import reads what a
user's PDF or Word file holds."""

from pathlib import Path

import docx
from fpdf import FPDF


def make_pdf(path: Path, sentence: str) -> Path:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    # Away from the top and bottom of the page, which FastGPT's PDF reader drops.
    pdf.set_y(60)
    pdf.multi_cell(0, 8, sentence)
    pdf.output(str(path))
    return path


def make_docx(path: Path, heading: str, sentence: str) -> Path:
    document = docx.Document()
    document.add_heading(heading, level=1)
    document.add_paragraph(sentence)
    document.save(str(path))
    return path
