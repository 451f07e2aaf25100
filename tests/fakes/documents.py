"""Real document files for tests and the bench, written with the real libraries (fpdf2, pypdf, python-docx).

Each function returns the bytes of a file a user could have uploaded:

- `pdf_document([["# Title", "A paragraph."], ["Page two."]])`: one inner list a page; a paragraph that starts
  with "# " is a heading set in large bold type, "## " a smaller one. Core PDF fonts: latin-1 text only.
- `encrypted_pdf()`, `truncated_pdf()`, `scanned_pdf()`: the PDFs a reader must refuse (a password, even an empty
  one; a file cut in half; a page with only drawn shapes and no text layer).
- `docx_document([("heading", "Pricing"), ("paragraph", "..."), ("table", [["Plan", "Price"], ...]),
  ("bullets", ["one", "two"])])`: a Word document; ("heading2", ...) is a second-level heading, ("title", ...)
  the document's title.
- `png_bytes()`: a valid 2x2 PNG image (to name as something it is not).
- `markdown_document(...)`, `html_document(...)`: text documents, the HTML with a script and a style that must not
  reach the extracted text (they contain `SCRIPT_MARKER` and `STYLE_MARKER`).
- `hundred_page_pdf()`: 100 pages of varied paragraphs (~350 words a page) under headings, the same every call.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Sequence
from functools import cache
from typing import Literal

SCRIPT_MARKER = "trackVisitorScript"
STYLE_MARKER = "hiddenStyleRule"

DocxBlock = tuple[Literal["title", "heading", "heading2", "paragraph", "bullets", "table"], object]


def pdf_document(pages: Sequence[Sequence[str]]) -> bytes:
    """A PDF with one page per inner list, each paragraph set in 11 pt type ("# " and "## " paragraphs headings)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    for paragraphs in pages:
        pdf.add_page()
        for paragraph in paragraphs:
            if paragraph.startswith("## "):
                pdf.set_font("Helvetica", "B", 13)
                pdf.multi_cell(0, 7, paragraph[3:], new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
            elif paragraph.startswith("# "):
                pdf.set_font("Helvetica", "B", 17)
                pdf.multi_cell(0, 9, paragraph[2:], new_x="LMARGIN", new_y="NEXT")
                pdf.ln(3)
            else:
                pdf.set_font("Helvetica", size=11)
                pdf.multi_cell(0, 5.5, paragraph, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(3.5)
    return bytes(pdf.output())


def encrypted_pdf(user_password: str = "", paragraphs: Sequence[str] = ("Confidential figures.",)) -> bytes:
    """A PDF protected with a password; by default an empty user password (it opens without asking)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_document([list(paragraphs)]))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def truncated_pdf(pages: int = 3) -> bytes:
    """A real PDF of `pages` pages cut in half, as an interrupted upload leaves it."""
    whole = pdf_document([[f"Page {number} of a report that was never uploaded whole."] for number in range(pages)])
    return whole[: len(whole) // 2]


def scanned_pdf() -> bytes:
    """A one-page PDF with drawn shapes and no text at all, as a scan without OCR is."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_fill_color(40, 40, 40)
    for row in range(12):
        pdf.rect(20, 20 + row * 18, 90 + (row * 37) % 80, 6, style="F")
    return bytes(pdf.output())


def docx_document(blocks: Sequence[DocxBlock]) -> bytes:
    """A Word document of `blocks` in order: ("title"|"heading"|"heading2"|"paragraph", text),
    ("bullets", [items]) or ("table", [[cells of row 1], [cells of row 2], ...])."""
    import docx

    document = docx.Document()
    for kind, content in blocks:
        if kind == "title":
            document.add_heading(str(content), level=0)
        elif kind == "heading":
            document.add_heading(str(content), level=1)
        elif kind == "heading2":
            document.add_heading(str(content), level=2)
        elif kind == "paragraph":
            document.add_paragraph(str(content))
        elif kind == "bullets":
            assert isinstance(content, list)
            for item in content:
                document.add_paragraph(str(item), style="List Bullet")
        elif kind == "table":
            assert isinstance(content, list)
            table = document.add_table(rows=len(content), cols=len(content[0]))
            for row, cells in zip(table.rows, content, strict=True):
                for cell, text in zip(row.cells, cells, strict=True):
                    cell.text = str(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def png_bytes() -> bytes:
    """A valid 2x2 RGB PNG image."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def markdown_document() -> bytes:
    """A Markdown handbook page: headings, paragraphs, a list, a fenced code block and a pipe table."""
    return "\n".join(
        [
            "# Handbook",
            "",
            "Welcome to the **team** handbook. Read the [pricing](https://example.com/pricing) part first.",
            "",
            "## Pricing",
            "",
            "Plans are billed monthly.",
            "",
            "| Plan | Price |",
            "|------|------:|",
            "| Starter | 10 EUR |",
            "| Enterprise | on request |",
            "",
            "## Setup",
            "",
            "- Install the client",
            "- Sign in with your `work` account",
            "",
            "```bash",
            "stratus login --stage dev",
            "# not a heading: inside code",
            "```",
            "",
        ]
    ).encode()


def html_document() -> bytes:
    """An HTML page with a title, headings, paragraphs, a list and a table, plus a script and a style whose text
    (`SCRIPT_MARKER`, `STYLE_MARKER`) must never be extracted."""
    return f"""<!DOCTYPE html>
<html lang="en"><head>
<meta charset="utf-8"><title>Support &amp; Billing</title>
<style>.{STYLE_MARKER} {{ display: none }}</style>
<script>window.{SCRIPT_MARKER} = function () {{ return "<p>not text</p>"; }};</script>
</head><body>
<nav><a href="/">Home</a></nav>
<h1>Support &amp; Billing</h1>
<p>Invoices are sent on the   first day
of each month.</p>
<h2>Refunds</h2>
<p>Refunds take <b>5&nbsp;days</b> &mdash; sometimes less.</p>
<ul><li>Card payments</li><li>Bank transfers</li></ul>
<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Starter</td><td>10 &euro;</td></tr></table>
<noscript>Enable JavaScript to continue.</noscript>
<template><p>A template row</p></template>
</body></html>
""".encode()


_WORDS = (
    "account",
    "agent",
    "answer",
    "archive",
    "audit",
    "billing",
    "budget",
    "cache",
    "channel",
    "client",
    "cluster",
    "contract",
    "customer",
    "dashboard",
    "data",
    "deadline",
    "delivery",
    "deployment",
    "document",
    "endpoint",
    "engineer",
    "estimate",
    "export",
    "failover",
    "feature",
    "forecast",
    "gateway",
    "guidance",
    "incident",
    "index",
    "invoice",
    "latency",
    "ledger",
    "license",
    "limit",
    "manager",
    "metric",
    "migration",
    "model",
    "network",
    "notice",
    "onboarding",
    "operator",
    "outage",
    "owner",
    "partner",
    "payment",
    "pipeline",
    "plan",
    "policy",
    "pricing",
    "priority",
    "project",
    "provider",
    "quota",
    "record",
    "region",
    "release",
    "report",
    "request",
    "review",
    "risk",
    "roadmap",
    "schedule",
    "schema",
    "security",
    "service",
    "session",
    "stage",
    "storage",
    "subscription",
    "supplier",
    "support",
    "team",
    "tenant",
    "threshold",
    "ticket",
    "timeline",
    "token",
    "traffic",
    "upgrade",
    "usage",
    "vendor",
    "version",
    "warehouse",
    "workflow",
)
_VERBS = ("approves", "checks", "covers", "defines", "describes", "lists", "measures", "records", "sets", "tracks")
_LINKS = ("and", "but", "because", "so", "while", "although", "when", "since")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 6))]
    subject = f"The {words[0]} {words[1]}"
    clause = f"{rng.choice(_VERBS)} the {' '.join(words[2:])}"
    if rng.random() < 0.4:
        clause += f" {rng.choice(_LINKS)} the {rng.choice(_WORDS)} {rng.choice(_VERBS)} each {rng.choice(_WORDS)}"
    return f"{subject} {clause}."


@cache
def hundred_page_pdf() -> bytes:
    """100 A4 pages, ~350 words each in paragraphs of 40-120 words, a numbered heading every few pages; generated
    from a seeded word list, so every call writes the same document."""
    rng = random.Random(1400)
    pages = []
    for number in range(1, 101):
        paragraphs: list[str] = []
        if number % 4 == 1:
            paragraphs.append(f"# {number // 4 + 1} {rng.choice(_WORDS).title()} and {rng.choice(_WORDS).title()}")
        words = 0
        while words < 350:
            target = min(rng.randint(40, 120), 360 - words)
            sentences: list[str] = []
            while sum(len(sentence.split()) for sentence in sentences) < target:
                sentences.append(_sentence(rng))
            paragraph = " ".join(sentences)
            words += len(paragraph.split())
            paragraphs.append(paragraph)
        pages.append(paragraphs)
    return pdf_document(pages)
