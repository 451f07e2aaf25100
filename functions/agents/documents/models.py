"""The shapes of an agent's documents as text: sections read from a file, the chunks cut from them, and the
refusal of a file that cannot be read. Imports nothing beyond the standard library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_DOCUMENT_BYTES = 25 * 1024 * 1024

Format = Literal["pdf", "docx", "markdown", "html", "text"]
SectionKind = Literal["heading", "paragraph", "table", "list", "code"]

# Declared content type -> format.
SUPPORTED_TYPES: dict[str, Format] = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "text/plain": "text",
}


class UnreadableDocument(Exception):
    """A document that cannot be read; `reason` is safe to show its owner.

    `code` is one of "encrypted", "corrupt", "no_text", "wrong_type", "unsupported_type", "too_large".
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Section:
    """One block of a document, in reading order. A table's rows and a list's items are one per line."""

    text: str
    kind: SectionKind
    page: int | None  # 1-based PDF page; None for other formats
    headings: tuple[str, ...] = ()  # the headings it sits under, outermost first


@dataclass(frozen=True)
class ExtractedDocument:
    format: Format
    sections: tuple[Section, ...]
    pages: int | None  # PDF page count; None otherwise


@dataclass(frozen=True)
class Chunk:
    ordinal: int  # 0-based, in document order
    text: str  # what is embedded, searched and cited (its headings first, one line)
    page: int | None  # the page it starts on (PDF)
    tokens: int  # shared.llm.providers.estimate_tokens(text): the one token estimate
