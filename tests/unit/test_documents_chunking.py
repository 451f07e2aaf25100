"""Chunking by structure: chunks within the token budget, a heading starting each part and naming it, long text cut
at sentences with a shared tail between neighbours, pages carried, the same chunks every time."""

from __future__ import annotations

import itertools
import re

from functions.agents.documents import Chunk, ExtractedDocument, Section, chunk, extract
from shared.llm.providers import estimate_tokens
from tests.fakes import documents as files


def document(*sections: Section, document_format: str = "markdown") -> ExtractedDocument:
    return ExtractedDocument(format=document_format, sections=sections, pages=None)  # type: ignore[arg-type]


def sentences(count: int, start: int = 0) -> list[str]:
    return [
        f"Sentence number {number} says something about the billing of the team."
        for number in range(start, start + count)
    ]


def body(piece: Chunk, heading_line: str) -> str:
    """A chunk's text without its heading line."""
    assert piece.text.startswith(heading_line + "\n")
    return piece.text.removeprefix(heading_line + "\n")


def test_every_chunk_stays_within_the_budget_and_counts_its_tokens_with_the_one_estimate() -> None:
    paragraphs = [Section(" ".join(sentences(6, start=index * 6)), "paragraph", None) for index in range(30)]

    chunks = chunk(document(*paragraphs), max_tokens=120, overlap_tokens=20)

    assert len(chunks) > 5
    assert all(piece.tokens == estimate_tokens(piece.text) <= 120 for piece in chunks)


def test_short_paragraphs_under_one_heading_are_packed_into_one_chunk_whole() -> None:
    sections = [Section(f"Rule {number}: keep receipts.", "paragraph", None, ("Expenses",)) for number in range(5)]

    chunks = chunk(document(Section("Expenses", "heading", None), *sections))

    assert [piece.text for piece in chunks] == [
        "Expenses\n" + "\n\n".join(f"Rule {number}: keep receipts." for number in range(5))
    ]


def test_a_heading_starts_a_new_chunk_and_prefixes_it_with_its_path() -> None:
    chunks = chunk(
        document(
            Section("Pricing", "heading", None),
            Section("Plans are billed monthly.", "paragraph", None, ("Pricing",)),
            Section("Enterprise", "heading", None, ("Pricing",)),
            Section("Volume discounts apply.", "paragraph", None, ("Pricing", "Enterprise")),
            Section("Support", "heading", None),
            Section("Write to us.", "paragraph", None, ("Support",)),
        )
    )

    assert [piece.text for piece in chunks] == [
        "Pricing\nPlans are billed monthly.",
        "Pricing \u203a Enterprise\nVolume discounts apply.",
        "Support\nWrite to us.",
    ]


def test_consecutive_chunks_under_one_heading_share_the_tail_sentences_of_the_first() -> None:
    paragraphs = [
        Section(" ".join(sentences(4, start=index * 4)), "paragraph", None, ("Billing",)) for index in range(8)
    ]

    chunks = chunk(document(Section("Billing", "heading", None), *paragraphs), max_tokens=100, overlap_tokens=30)

    assert len(chunks) >= 3
    for previous, following in itertools.pairwise(chunks):
        last_sentence = re.split(r"(?<=\.)\s+", body(previous, "Billing"))[-1]
        assert body(following, "Billing").startswith(last_sentence)
        assert estimate_tokens(last_sentence) <= 30


def test_no_overlap_crosses_a_heading() -> None:
    chunks = chunk(
        document(
            Section("Alpha", "heading", None),
            Section(" ".join(sentences(40)), "paragraph", None, ("Alpha",)),
            Section("Beta", "heading", None),
            Section("Only beta text.", "paragraph", None, ("Beta",)),
        ),
        max_tokens=100,
    )

    assert chunks[-1].text == "Beta\nOnly beta text."


def test_a_paragraph_larger_than_the_budget_is_cut_at_sentence_boundaries() -> None:
    giant = " ".join(sentences(120))

    chunks = chunk(document(Section(giant, "paragraph", None)), max_tokens=150, overlap_tokens=40)

    assert len(chunks) > 5
    assert all(piece.tokens <= 150 for piece in chunks)
    assert all(piece.text.endswith("team.") and piece.text.startswith("Sentence number") for piece in chunks)
    # Every sentence is in some chunk, in order.
    numbers = [[int(number) for number in re.findall(r"number (\d+)", piece.text)] for piece in chunks]
    assert sorted({number for found in numbers for number in found}) == list(range(120))
    assert all(found == list(range(found[0], found[-1] + 1)) for found in numbers)
    assert [found[0] for found in numbers] == sorted(found[0] for found in numbers)


def test_text_without_sentence_ends_is_cut_at_words_and_a_huge_word_at_characters() -> None:
    words = " ".join(f"word{number}" for number in range(2000))
    token = "x" * 5000

    chunks = chunk(document(Section(words, "paragraph", None), Section(token, "paragraph", None)), max_tokens=100)

    assert all(piece.tokens <= 100 for piece in chunks)
    blocks = [block for piece in chunks for block in piece.text.split("\n\n")]
    assert all(re.fullmatch(r"word\d+( word\d+)*|x+", block) for block in blocks)
    assert {f"word{number}" for number in range(2000)} <= set(" ".join(blocks).split())
    assert sum(block.count("x") for block in blocks) == 5000


def test_a_big_table_is_split_between_rows_never_inside_one_and_keeps_its_heading() -> None:
    rows = "\n".join(f"Plan {number} | {number * 10} EUR | monthly billing" for number in range(80))

    chunks = chunk(
        document(Section("Prices", "heading", None), Section(rows, "table", None, ("Prices",))), max_tokens=80
    )

    assert len(chunks) > 3
    for piece in chunks:
        assert piece.tokens <= 80
        assert all(
            re.fullmatch(r"Plan \d+ \| \d+ EUR \| monthly billing", row) for row in body(piece, "Prices").split("\n")
        )


def test_a_chunk_carries_the_page_of_its_first_section() -> None:
    pages = [[" ".join(sentences(8, start=page * 8))] for page in range(3)]
    extracted = extract(files.pdf_document(pages), "application/pdf")

    chunks = chunk(extracted, max_tokens=80, overlap_tokens=0)

    for piece in chunks:
        first = int(re.search(r"number (\d+)", piece.text).group(1))  # type: ignore[union-attr]
        assert piece.page == first // 8 + 1
    assert {piece.page for piece in chunks} == {1, 2, 3}


def test_the_same_document_always_gives_the_same_chunks_numbered_from_zero() -> None:
    data = files.docx_document([("heading", "Terms"), ("paragraph", " ".join(sentences(200)))])
    extracted = extract(data, "application/vnd.openxmlformats-officedocument.wordprocessingml.document")

    first, second = chunk(extracted), chunk(extracted)

    assert first == second
    assert [piece.ordinal for piece in first] == list(range(len(first)))
    assert len(first) > 3


def test_a_document_of_headings_only_still_gives_its_text() -> None:
    chunks = chunk(document(Section("Contents", "heading", None), Section("Appendix", "heading", None)))

    assert [piece.text for piece in chunks] == ["Contents\n\nAppendix"]
