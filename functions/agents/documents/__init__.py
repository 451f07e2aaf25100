"""An agent's documents as text: what a file's bytes say (`extract`) and the pieces that are embedded, searched and
cited (`chunk`).

Readers are per format and load their libraries (pypdf, python-docx) only when a document of theirs is read: a
function that only lists documents never pays for them. The declared content type is checked against the bytes, so
a PNG named `.docx` is refused with a reason its owner understands rather than a parser's stack trace.
"""

from __future__ import annotations

from functions.agents.documents.chunking import chunk
from functions.agents.documents.extract import extract
from functions.agents.documents.models import (
    MAX_DOCUMENT_BYTES,
    SUPPORTED_TYPES,
    Chunk,
    ExtractedDocument,
    Format,
    Section,
    SectionKind,
    UnreadableDocument,
)

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "SUPPORTED_TYPES",
    "Chunk",
    "ExtractedDocument",
    "Format",
    "Section",
    "SectionKind",
    "UnreadableDocument",
    "chunk",
    "extract",
]
