"""A document cut into chunks by its structure, each small enough to embed and to quote as a source.

Sections are walked in order and whole blocks (a paragraph, a list item, a table row) are packed into a chunk up to
the token budget. A heading starts a new chunk, and every chunk names its headings on its first line, so a chunk
read alone (as a model reads a source) says where it comes from. A block larger than the budget is cut at sentence
boundaries, then at words. Consecutive chunks under the same headings share a few tail sentences, so a sentence
near a cut is found with its context. Same document in, same chunks out.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from functions.agents.documents.models import Chunk, ExtractedDocument, Section
from shared.llm.providers import estimate_tokens

HEADING_SEPARATOR = " \u203a "  # "Pricing > Enterprise" with a single angle quote
# A sentence ends at . ! ? or an ellipsis, after any closing quotes or brackets, before white space.
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"')\]\u201d\u2019]*\s+")


@dataclass(frozen=True)
class _Piece:
    """A block (or part of one) that is never cut further: it goes whole into one chunk."""

    text: str
    page: int | None
    section: int  # the section it comes from: pieces of different sections are a blank line apart
    joiner: str = " "  # what separates it from the piece before it in the same section: a space or a line break


def chunk(document: ExtractedDocument, *, max_tokens: int = 350, overlap_tokens: int = 50) -> list[Chunk]:
    """The document's chunks in order, ordinals from 0, each at most `max_tokens` (where its heading line allows)."""
    if max_tokens < 8:
        raise ValueError("max_tokens must leave room for text")
    overlap_tokens = max(0, min(overlap_tokens, max_tokens // 3))
    chunks: list[Chunk] = []
    for headings, sections in _by_headings(document.sections):
        prefix = HEADING_SEPARATOR.join(headings)
        # What is left for the text once the heading line is in; a very long heading path still leaves some.
        room = max(max_tokens - (estimate_tokens(prefix + "\n") if prefix else 0), max_tokens // 2)
        pieces = [piece for index, section in sections for piece in _pieces(section, index, room, overlap_tokens)]
        for page, body in _pack(pieces, room, overlap_tokens):
            text = f"{prefix}\n{body}" if prefix else body
            chunks.append(Chunk(ordinal=len(chunks), text=text, page=page, tokens=estimate_tokens(text)))
    if not chunks:
        # Headings and nothing under them: the headings are the text.
        titles = [section for section in document.sections if section.kind == "heading"]
        for page, body in _pack(
            [_Piece(section.text, section.page, index) for index, section in enumerate(titles)], max_tokens, 0
        ):
            chunks.append(Chunk(ordinal=len(chunks), text=body, page=page, tokens=estimate_tokens(body)))
    return chunks


def _by_headings(sections: Sequence[Section]) -> Iterator[tuple[tuple[str, ...], list[tuple[int, Section]]]]:
    """Runs of consecutive content sections under the same headings; a heading ends a run."""
    run: list[tuple[int, Section]] = []
    headings: tuple[str, ...] = ()
    for index, section in enumerate(sections):
        if section.kind == "heading" or section.headings != headings:
            if run:
                yield headings, run
            run = []
        if section.kind == "heading":
            headings = (*section.headings, section.text)
            continue
        headings = section.headings
        if section.text.strip():
            run.append((index, section))
    if run:
        yield headings, run


def _pieces(section: Section, index: int, room: int, overlap_tokens: int) -> Iterator[_Piece]:
    """The section's blocks: a table's rows, a list's items, a code block's lines, or the paragraph whole; each
    block that does not fit `room` is cut into parts leaving space for the overlap the next chunk carries."""
    joiner = " " if section.kind == "paragraph" else "\n"
    if section.kind in {"table", "list"}:
        blocks = [line for line in section.text.split("\n") if line.strip()]
    else:
        blocks = [section.text.strip("\n") if section.kind == "code" else section.text.strip()]
    for block in blocks:
        if estimate_tokens(block) <= room:
            yield _Piece(block, section.page, index, joiner)
            continue
        units = block.split("\n") if section.kind == "code" else _sentences(block)
        for part in _packed_units(units, room - overlap_tokens, "\n" if section.kind == "code" else " "):
            yield _Piece(part, section.page, index, joiner)


def _sentences(text: str) -> list[str]:
    return [sentence for sentence in _SENTENCE_END.split(text) if sentence.strip()]


def _packed_units(units: Sequence[str], budget: int, joiner: str) -> Iterator[str]:
    """Units (sentences, lines) joined into parts of at most `budget` tokens; a unit too big alone is cut at words,
    and a word too big alone at characters."""
    budget = max(budget, 1)
    part = ""
    for unit in units:
        candidate = f"{part}{joiner}{unit}" if part else unit
        if estimate_tokens(candidate) <= budget:
            part = candidate
            continue
        if part:
            yield part
            part = ""
        if estimate_tokens(unit) <= budget:
            part = unit
            continue
        words = unit.split()
        if len(words) > 1:
            yield from _packed_units(words, budget, " ")
        else:
            width = budget * 4  # the estimate is four characters a token
            yield from (unit[start : start + width] for start in range(0, len(unit), width))
    if part:
        yield part


def _joined(pieces: Sequence[_Piece]) -> str:
    text = pieces[0].text if pieces else ""
    for previous, piece in itertools.pairwise(pieces):
        text += (piece.joiner if previous.section == piece.section else "\n\n") + piece.text
    return text


def _pack(pieces: Sequence[_Piece], room: int, overlap_tokens: int) -> Iterator[tuple[int | None, str]]:
    """Pieces packed greedily into chunk bodies of at most `room` tokens, each after the first starting with the
    tail sentences of the one before (as many as fit `overlap_tokens` and the room the next piece leaves)."""
    current: list[_Piece] = []
    for piece in pieces:
        if not current or estimate_tokens(_joined([*current, piece])) <= room:
            current.append(piece)
            continue
        yield current[0].page, _joined(current)
        current = [*_tail(current, piece, room, overlap_tokens), piece]
    if current:
        yield current[0].page, _joined(current)


def _tail(previous: Sequence[_Piece], following: _Piece, room: int, overlap_tokens: int) -> list[_Piece]:
    """The last sentences of `previous` (as pieces, with their pages) that fit both the overlap and the room left
    beside `following`."""
    budget = min(overlap_tokens, room - estimate_tokens(following.text) - 1)
    taken: list[_Piece] = []
    for piece in reversed(previous):
        joiner = "\n" if "\n" in piece.text else " "
        sentences = piece.text.split("\n") if joiner == "\n" else _sentences(piece.text)
        kept: list[str] = []
        for sentence in reversed(sentences):
            overlap = _Piece(joiner.join([sentence, *kept]), piece.page, piece.section, piece.joiner)
            if not _fits([overlap, *taken], following, budget):
                if not kept and not taken and piece.joiner == " ":
                    # Not one whole sentence fits (text cut at words): its last words, then.
                    kept = _tail_words(sentence, piece, following, budget)
                return _with(kept, joiner, piece, taken)
            kept.insert(0, sentence)
        taken = _with(kept, joiner, piece, taken)
    return taken


def _tail_words(sentence: str, piece: _Piece, following: _Piece, budget: int) -> list[str]:
    words: list[str] = []
    for word in reversed(sentence.split()):
        if not _fits([_Piece(" ".join([word, *words]), piece.page, piece.section, piece.joiner)], following, budget):
            break
        words.insert(0, word)
    return [" ".join(words)] if words else []


def _fits(overlap: Sequence[_Piece], following: _Piece, budget: int) -> bool:
    return estimate_tokens(_joined([*overlap, following])) - estimate_tokens(following.text) <= budget


def _with(kept: list[str], joiner: str, piece: _Piece, taken: list[_Piece]) -> list[_Piece]:
    return [_Piece(joiner.join(kept), piece.page, piece.section, piece.joiner), *taken] if kept else taken
