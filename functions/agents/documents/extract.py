"""A document's text, block by block, with the headings each block sits under and (for a PDF) its page.

One reader per format. The bytes are sniffed first: a declared type they contradict is `wrong_type`, named in words
("The file is a PNG image, not a Word document"). Every reader's failure becomes an `UnreadableDocument` whose
reason is safe to show: parsers raise many kinds of exceptions on a damaged file, and none of them escapes.
"""

from __future__ import annotations

import codecs
import io
import itertools
import logging
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from functions.agents.documents.models import (
    MAX_DOCUMENT_BYTES,
    SUPPORTED_TYPES,
    ExtractedDocument,
    Format,
    Section,
    SectionKind,
    UnreadableDocument,
)

# Bounds on the work one document may cost: a PDF's pages read, a DOCX's size once unzipped.
MAX_PDF_PAGES = 2_000
MAX_UNZIPPED_BYTES = 8 * MAX_DOCUMENT_BYTES

_DESCRIPTIONS: dict[Format, str] = {
    "pdf": "a PDF document",
    "docx": "a Word document",
    "markdown": "a Markdown document",
    "html": "an HTML page",
    "text": "a text file",
}
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_PNG = b"\x89PNG\r\n\x1a\n"
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_SCANNED = "no text layer: a scanned document needs OCR, which is not offered"


def extract(data: bytes, content_type: str) -> ExtractedDocument:
    """The document's sections in reading order; raises `UnreadableDocument` with the reason it cannot be read."""
    media_type, charset = _parse_content_type(content_type)
    if len(data) > MAX_DOCUMENT_BYTES:
        limit = MAX_DOCUMENT_BYTES // (1024 * 1024)
        raise UnreadableDocument("too_large", f"The file is larger than the {limit} MB a document may be.")
    document_format = SUPPORTED_TYPES.get(media_type)
    if document_format is None:
        supported = "PDF, Word (.docx), Markdown, HTML and plain text"
        named = f"{media_type!r} files" if media_type else "Files without a type"
        raise UnreadableDocument("unsupported_type", f"{named} are not supported: upload {supported}.")
    if not data.strip():
        raise UnreadableDocument("no_text", "The file is empty.")
    _check_content(data, document_format)
    if document_format == "pdf":
        document = _read_pdf(data)
    elif document_format == "docx":
        document = _read_docx(data)
    else:
        text = _decode(data, charset)
        reader = {"markdown": _read_markdown, "html": _read_html, "text": _read_text}[document_format]
        document = ExtractedDocument(format=document_format, sections=tuple(reader(text)), pages=None)
    if not any(section.text.strip() for section in document.sections):
        raise UnreadableDocument("no_text", "The document has no text in it.")
    return document


def _parse_content_type(content_type: str) -> tuple[str, str | None]:
    media_type, *parameters = content_type.split(";")
    charset = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media_type.strip().lower(), charset


# --- Sniffing ---------------------------------------------------------------------------------------------------


def _check_content(data: bytes, document_format: Format) -> None:
    """Refuse bytes that are not what their declared type says, naming what they are when it is known."""
    actual = _sniff(data)
    expected = _DESCRIPTIONS[document_format]
    if document_format == "pdf":
        if actual != "pdf":
            raise UnreadableDocument("wrong_type", _wrong_type(actual, expected))
    elif document_format == "docx":
        if actual == "damaged_zip":  # a Word document is a ZIP archive: this one was cut or damaged
            raise UnreadableDocument("corrupt", "The Word document is damaged or incomplete and cannot be read.")
        if actual != "docx":
            raise UnreadableDocument("wrong_type", _wrong_type(actual, expected))
        _check_unzipped_size(data)
    elif actual not in {"text", "html"}:
        raise UnreadableDocument("wrong_type", _wrong_type(actual, expected))


_KIND_NAMES = {
    "pdf": "a PDF document",
    "docx": "a Word document",
    "xlsx": "an Excel workbook",
    "pptx": "a PowerPoint presentation",
    "zip": "a ZIP archive",
    "damaged_zip": "a damaged ZIP archive",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "html": "an HTML page",
    "binary": "binary data",
    "text": "plain text",
}


def _wrong_type(actual: str, expected: str) -> str:
    return f"The file is {_KIND_NAMES[actual]}, not {expected}."


_MAGIC = ((_PNG, "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))


def _sniff(data: bytes) -> str:
    """What the bytes are, from their first bytes: a format name, "binary" or "text"."""
    head = data[: 1024 + 5]
    known = next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)
    if known is None and head.startswith(_ZIP):
        known = _sniff_zip(data)
    elif known is None and head.startswith(_UTF16_BOMS):
        known = "text"
    if known is not None:
        return known
    start = head.removeprefix(_UTF8_BOM)
    marker = start.find(b"%PDF-")
    if marker >= 0 and not start[:marker].strip():
        return "pdf"
    if b"\x00" in data[:8192]:
        return "binary"
    return "html" if re.match(rb"\s*(<!doctype\s+html|<html[\s>])", start, re.IGNORECASE) else "text"


def _sniff_zip(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return "damaged_zip"
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    return "zip"


def _check_unzipped_size(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    if unzipped > MAX_UNZIPPED_BYTES:
        limit = MAX_UNZIPPED_BYTES // (1024 * 1024)
        raise UnreadableDocument("too_large", f"The document expands to more than {limit} MB once unpacked.")


def _decode(data: bytes, charset: str | None) -> str:
    """Text as its declared charset, else UTF-8 (a BOM is fine), else cp1252, else latin-1: never a failure."""
    if data.startswith(_UTF16_BOMS):
        return data.decode("utf-16", errors="replace")
    candidates = [charset] if charset else []
    for encoding in (*candidates, "utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1")


def _normalise(text: str) -> str:
    return " ".join(text.split())


# --- Headings -----------------------------------------------------------------------------------------------------


@dataclass
class _Outline:
    """The headings open at a point of the document: a heading closes those at its level and below."""

    open: list[tuple[float, str]] = field(default_factory=list)

    def heading(self, level: float, text: str, page: int | None) -> Section:
        while self.open and self.open[-1][0] >= level:
            self.open.pop()
        section = Section(text=text, kind="heading", page=page, headings=self.path)
        self.open.append((level, text))
        return section

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.open)

    def block(self, text: str, kind: SectionKind, page: int | None = None) -> Section:
        return Section(text=text, kind=kind, page=page, headings=self.path)


# --- PDF ----------------------------------------------------------------------------------------------------------


@dataclass
class _Line:
    text: str
    y: float
    size: float
    bold: bool


def _read_pdf(data: bytes) -> ExtractedDocument:
    from pypdf import PdfReader

    # pypdf logs every oddity of a damaged file as a warning; what matters reaches the owner as the reason.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise UnreadableDocument(
                "encrypted", "The PDF is password-protected: remove its password (or upload an unprotected copy)."
            )
        page_count = len(reader.pages)
        pages = [_pdf_page_lines(reader.pages[index]) for index in range(min(page_count, MAX_PDF_PAGES))]
    except UnreadableDocument:
        raise
    except Exception as error:  # pypdf raises many types on a damaged file: each means "corrupt"
        raise UnreadableDocument("corrupt", "The PDF is damaged or incomplete and cannot be read.") from error
    if page_count == 0:
        raise UnreadableDocument("corrupt", "The PDF has no pages.")
    if not any(lines for lines in pages):
        raise UnreadableDocument("no_text", f"The PDF has {_SCANNED}.")
    return ExtractedDocument(format="pdf", sections=tuple(_pdf_sections(pages)), pages=page_count)


def _pdf_page_lines(page: Any) -> list[_Line]:
    """The page's lines as pypdf extracts them (its spacing and line breaks), each with the vertical position, type
    size and weight of its text."""
    lines: list[_Line] = []
    line_open = False

    def visit(text: str, cm: Sequence[float], tm: Sequence[float], font: Any, font_size: float) -> None:
        nonlocal line_open
        # The text matrix in page space (tm x cm): its translation is the position, its vertical scale the size.
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        scale = ((tm[2] * cm[0] + tm[3] * cm[2]) ** 2 + (tm[2] * cm[1] + tm[3] * cm[3]) ** 2) ** 0.5
        size = abs(font_size * scale) or font_size
        name = str(font.get("/BaseFont", "")).lower() if hasattr(font, "get") else ""
        bold = "bold" in name or "black" in name
        for number, piece in enumerate(text.split("\n")):
            line_open = line_open and number == 0
            if line_open:
                last = lines[-1]
                last.text += piece
                if piece.strip():
                    last.size, last.bold = max(last.size, size), last.bold and bold
            elif piece.strip():  # a line starts with text (a space or a break alone has no position worth keeping)
                lines.append(_Line(text=piece, y=y, size=size, bold=bold))
                line_open = True

    page.extract_text(visitor_text=visit)
    for line in lines:
        line.text = _normalise(line.text)
    return [line for line in lines if line.text]


def _pdf_sections(pages: Sequence[list[_Line]]) -> Iterator[Section]:
    all_lines = [line for lines in pages for line in lines]
    # The body's type size: the size most of the text is set in.
    weights: dict[float, int] = {}
    for line in all_lines:
        weights[round(line.size, 1)] = weights.get(round(line.size, 1), 0) + len(line.text)
    body = max(weights, key=lambda size: (weights[size], -size))
    outline = _Outline()
    for number, lines in enumerate(pages, start=1):
        items: list[str] = []
        for block in _pdf_blocks(lines, body):
            text = _join_lines([line.text for line in block])
            if _LIST_ITEM.match(text):
                items.append(text)
                continue
            if items:
                yield outline.block("\n".join(items), "list", number)
                items = []
            if _is_pdf_heading(block, text, body):
                # Larger type is an outer heading; a bold line at body size sits under the sized ones.
                yield outline.heading(-max(line.size for line in block), text, number)
            else:
                yield outline.block(text, "paragraph", number)
        if items:
            yield outline.block("\n".join(items), "list", number)


def _pdf_blocks(lines: Sequence[_Line], body: float) -> Iterator[list[_Line]]:
    """Lines grouped into paragraphs: a paragraph ends at a wider gap than the page's usual line spacing, a change
    of type size, or a line that starts a list item."""
    # The line spacing inside a paragraph: the closest two body-size lines follow each other.
    gaps = [
        previous.y - line.y
        for previous, line in itertools.pairwise(lines)
        if 0.8 * body <= previous.y - line.y < 3 * body and _near(previous.size, body) and _near(line.size, body)
    ]
    spacing = min(gaps) if gaps else 1.2 * body
    block: list[_Line] = []
    for line in lines:
        if block:
            previous = block[-1]
            gap = previous.y - line.y
            breaks = (
                gap <= 0
                or gap > 1.3 * spacing
                or abs(line.size - previous.size) > 0.1 * body
                or line.bold != previous.bold
                or _LIST_ITEM.match(line.text) is not None
            )
            if breaks:
                yield block
                block = []
        block.append(line)
    if block:
        yield block


def _near(size: float, body: float) -> bool:
    return abs(size - body) <= 0.1 * body


_NUMBERED_HEADING = re.compile(r"^(\d+(\.\d+)*\.?|[IVX]+\.)\s+\S")


def _is_pdf_heading(block: Sequence[_Line], text: str, body: float) -> bool:
    """Conservative: a short block, not a sentence, set larger than the body, or bold and numbered or title-cased."""
    if len(block) > 2 or len(text) > 120 or len(text.split()) > 12 or text.endswith((".", ",", ";")):
        return False
    if min(line.size for line in block) >= 1.15 * body:
        return True
    if all(line.bold for line in block):
        return bool(_NUMBERED_HEADING.match(text)) or _title_cased(text)
    return False


_MINOR_WORDS = frozenset(
    ("a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to", "with")
)


def _title_cased(text: str) -> bool:
    words: list[str] = re.findall(r"[^\W\d_][\w'\u2019-]*", text)
    if not words or not words[0][0].isupper():
        return False
    return all(word[0].isupper() or word.lower() in _MINOR_WORDS for word in words)


def _join_lines(lines: Sequence[str]) -> str:
    """A paragraph's lines as one line, rejoining a word the line break hyphenated ("docu-" + "ment")."""
    text = ""
    for line in lines:
        if text.endswith("-") and len(text) > 1 and text[-2].isalpha() and line[:1].islower():
            text = text[:-1] + line
        else:
            text = f"{text} {line}" if text else line
    return text


# --- DOCX ---------------------------------------------------------------------------------------------------------


def _read_docx(data: bytes) -> ExtractedDocument:
    try:
        import docx

        document = docx.Document(io.BytesIO(data))
        sections = tuple(_docx_sections(document.iter_inner_content()))
    except Exception as error:  # python-docx and lxml raise many types on a damaged file
        raise UnreadableDocument("corrupt", "The Word document is damaged and cannot be read.") from error
    return ExtractedDocument(format="docx", sections=sections, pages=None)


_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def _docx_sections(blocks: Iterable[Any]) -> Iterator[Section]:
    from docx.table import Table

    outline = _Outline()
    items: list[str] = []
    for block in blocks:
        if isinstance(block, Table):
            yield from _flush_list(outline, items)
            rows = _docx_table_rows(block)
            if rows:
                yield outline.block("\n".join(rows), "table")
            continue
        text = _normalise(block.text)
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        level = _HEADING_STYLE.match(style.strip())
        if level or style.strip().lower() == "title":
            yield from _flush_list(outline, items)
            yield outline.heading(int(level.group(1)) if level else 0, text, None)
        elif style.lower().startswith("list") or _numbered(block):
            items.append(text)
        else:
            yield from _flush_list(outline, items)
            yield outline.block(text, "paragraph")
    yield from _flush_list(outline, items)


def _numbered(paragraph: Any) -> bool:
    properties = paragraph._p.pPr  # python-docx has no public view of a paragraph's numbering
    return properties is not None and properties.numPr is not None


def _flush_list(outline: _Outline, items: list[str]) -> Iterator[Section]:
    if items:
        yield outline.block("\n".join(items), "list")
        items.clear()


def _docx_table_rows(table: Any) -> list[str]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: list[Any] = []
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans: keep it once.
            if any(cell._tc is other for other in seen):
                continue
            seen.append(cell._tc)
            cells.append(_normalise(cell.text))
        if any(cells):
            rows.append(" | ".join(cells))
    return rows


# --- Markdown -----------------------------------------------------------------------------------------------------

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_MARKER = r"^\s*(?:[-*+\u2022\u25aa\u2013]|\d{1,3}[.)])\s+"  # -, *, +, bullets, en dash, "1." or "1)"
_LIST_ITEM = re.compile(_LIST_MARKER + r"\S")
_TABLE_DELIMITER = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")
_INLINE_CODE = re.compile(r"`([^`]+)`")


def _markdown_inline(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    return _normalise(_INLINE_CODE.sub(r"\1", text))


def _table_cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [_markdown_inline(cell) for cell in re.split(r"(?<!\\)\|", line)]


def _read_markdown(text: str) -> Iterator[Section]:
    reader = _MarkdownReader(text.splitlines())
    while reader.index < len(reader.lines):
        yield from reader.next_block()
    yield from reader.flush()


class _MarkdownReader:
    """Markdown block by block: ATX headings, paragraphs, lists, fenced code (kept as code) and pipe tables."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.index = 0
        self.outline = _Outline()
        self.paragraph: list[str] = []
        self.items: list[str] = []

    def next_block(self) -> Iterator[Section]:
        line = self.lines[self.index]
        fence = _FENCE.match(line)
        heading = _ATX_HEADING.match(line)
        if fence:
            yield from self.flush()
            yield from self._code(fence.group(1))
            return
        if heading:
            yield from self.flush()
            if title := _markdown_inline(heading.group(2) or ""):
                yield self.outline.heading(len(heading.group(1)), title, None)
        elif self._table_starts():
            yield from self.flush()
            yield from self._table()
            return
        elif not line.strip():
            yield from self.flush()
        elif _LIST_ITEM.match(line):
            if self.paragraph:
                yield from self.flush()
            self.items.append(re.sub(_LIST_MARKER, "", line))
        elif self.items and line.startswith((" ", "\t")):
            self.items[-1] += " " + line.strip()
        else:
            if self.items:
                yield from self.flush()
            self.paragraph.append(line)
        self.index += 1

    def flush(self) -> Iterator[Section]:
        if self.paragraph:
            joined = _markdown_inline(" ".join(line.strip().lstrip(">").strip() for line in self.paragraph))
            if joined:
                yield self.outline.block(joined, "paragraph")
            self.paragraph.clear()
        if self.items:
            yield self.outline.block("\n".join(_markdown_inline(item) for item in self.items), "list")
            self.items.clear()

    def _code(self, marker: str) -> Iterator[Section]:
        code: list[str] = []
        self.index += 1
        while self.index < len(self.lines) and not self.lines[self.index].strip().startswith(marker):
            code.append(self.lines[self.index])
            self.index += 1
        self.index += 1  # the closing fence
        if "\n".join(code).strip():
            yield self.outline.block("\n".join(code).strip("\n"), "code")

    def _table_starts(self) -> bool:
        following = self.lines[self.index + 1] if self.index + 1 < len(self.lines) else ""
        return "|" in self.lines[self.index] and "-" in following and _TABLE_DELIMITER.match(following) is not None

    def _table(self) -> Iterator[Section]:
        rows = [_table_cells(self.lines[self.index])]
        self.index += 2  # the header and the delimiter row
        while self.index < len(self.lines) and "|" in self.lines[self.index] and self.lines[self.index].strip():
            rows.append(_table_cells(self.lines[self.index]))
            self.index += 1
        yield self.outline.block("\n".join(" | ".join(row) for row in rows if any(row)), "table")


# --- HTML ---------------------------------------------------------------------------------------------------------

# Never text a reader came for: code, styles, fallbacks, a site's navigation.
_DROPPED = frozenset({"script", "style", "noscript", "template", "svg", "nav"})
_BLOCKS = frozenset(
    {"p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "blockquote", "figure",
     "figcaption", "form", "fieldset", "address", "dl", "dt", "dd", "body", "br", "hr"}
)  # fmt: skip
_HEADINGS = {f"h{level}": level for level in range(1, 7)}


class _HtmlText(HTMLParser):
    """HTML as sections: text only, never markup; scripts, styles and templates dropped; entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.outline = _Outline()
        self.dropped = 0
        self.buffer: list[str] = []
        self.kind: SectionKind = "paragraph"
        self.heading_level = 0
        self.title: list[str] | None = None
        self.title_text: str | None = None
        self.list_items: list[str] = []
        self.rows: list[list[str]] = []
        self.cells: list[str] | None = None
        self.in_cell = False
        self.list_depth = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self.dropped += 1
            return
        if self.dropped:
            return
        if tag == "title":
            self.title = []
        elif tag in _HEADINGS or tag in _BLOCKS or tag in {"pre", "li", "ul", "ol", "table"}:
            self._flush()
            if tag in _HEADINGS:
                self.kind, self.heading_level = "heading", _HEADINGS[tag]
            elif tag == "pre":
                self.pre += 1
                self.kind = "code"
            elif tag == "li":
                self.list_depth += 1
        elif tag == "tr":
            self._end_row()
            self.cells = []
        elif tag in {"td", "th"}:
            self._end_cell()
            self.buffer = []
            self.in_cell = True

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self.dropped = max(0, self.dropped - 1)
            return
        if self.dropped:
            return
        if tag == "title" and self.title is not None:
            title = _normalise("".join(self.title))
            self.title = None
            if title and not self.sections:
                self.title_text = title
                self.sections.append(self.outline.heading(0, title, None))
        elif tag in {"td", "th"}:
            self._end_cell()
        elif tag == "tr":
            self._end_row()
        elif tag == "table":
            self._end_row()
            rows = [" | ".join(row) for row in self.rows if any(row)]
            self.rows = []
            if rows:
                self._flush_list()
                self.sections.append(self.outline.block("\n".join(rows), "table"))
        elif tag in {"ul", "ol"}:
            self._flush()
            self._flush_list()
        elif tag in _HEADINGS or tag in _BLOCKS or tag in {"pre", "li"}:
            self._flush()
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            elif tag == "li":
                self.list_depth = max(0, self.list_depth - 1)

    def handle_data(self, data: str) -> None:
        if self.dropped:
            return
        if self.title is not None:
            self.title.append(data)
        else:
            self.buffer.append(data)

    def _end_cell(self) -> None:
        if self.in_cell and self.cells is not None:
            self.cells.append(_normalise("".join(self.buffer)))
            self.buffer = []
        self.in_cell = False

    def _end_row(self) -> None:
        self._end_cell()
        if self.cells is not None:
            self.rows.append(list(self.cells))
            self.cells = None
            self.buffer = []

    def _flush(self) -> None:
        raw = "".join(self.buffer)
        self.buffer = []
        kind, self.kind = self.kind, "paragraph"
        if self.in_cell:  # a block inside a table cell is part of the cell's text
            self.buffer = [raw, " "]
            self.kind = kind
            return
        if kind == "paragraph" and self.list_depth:
            kind = "list"
        text = raw.strip("\n") if kind == "code" else _normalise(raw)
        if not text.strip():
            return
        if kind == "heading":
            if self.title_text == text and self.outline.path[:1] == (text,):
                return  # the page's heading repeating its <title>
            self._flush_list()
            self.sections.append(self.outline.heading(self.heading_level, text, None))
        elif kind == "list":
            self.list_items.append(text)
        else:
            self._flush_list()
            self.sections.append(self.outline.block(text, kind))

    def _flush_list(self) -> None:
        if self.list_items:
            self.sections.append(self.outline.block("\n".join(self.list_items), "list"))
            self.list_items = []

    def close(self) -> None:
        super().close()
        self._end_row()
        self._flush()
        self._flush_list()


def _read_html(text: str) -> Iterator[Section]:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    yield from parser.sections


# --- Plain text ---------------------------------------------------------------------------------------------------


def _read_text(text: str) -> Iterator[Section]:
    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        if normalised := _normalise(paragraph):
            yield Section(text=normalised, kind="paragraph", page=None)
