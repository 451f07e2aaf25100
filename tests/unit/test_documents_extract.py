"""Extraction of real files: each format's text in reading order with its headings (and pages), and each kind of
file a reader must refuse, refused with a reason its owner can act on."""

from __future__ import annotations

import importlib
import io
import zipfile

import pytest

from functions.agents.documents import MAX_DOCUMENT_BYTES, ExtractedDocument, UnreadableDocument, extract
from tests.fakes import documents as files

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def texts(document: ExtractedDocument) -> list[str]:
    return [section.text for section in document.sections]


def refusal(data: bytes, content_type: str) -> UnreadableDocument:
    with pytest.raises(UnreadableDocument) as raised:
        extract(data, content_type)
    return raised.value


# --- PDF ---------------------------------------------------------------------------------------------------------


def test_a_pdf_gives_its_paragraphs_in_order_with_their_pages() -> None:
    first = "Our plans are billed monthly and every invoice lists the usage of each member of the team. " * 3
    data = files.pdf_document([[first.strip(), "Support answers within a day."], ["Refunds take five days."]])

    document = extract(data, PDF)

    assert document.format == "pdf"
    assert document.pages == 2
    assert texts(document) == [first.strip(), "Support answers within a day.", "Refunds take five days."]
    assert [section.page for section in document.sections] == [1, 1, 2]
    assert {section.kind for section in document.sections} == {"paragraph"}


def test_a_pdf_heading_set_in_larger_type_heads_what_follows_it() -> None:
    data = files.pdf_document(
        [["# Pricing", "Plans are billed monthly.", "## 2.1 Enterprise", "Volume discounts apply."], ["More terms."]]
    )

    sections = extract(data, PDF).sections

    assert [(section.kind, section.text) for section in sections[:3]] == [
        ("heading", "Pricing"),
        ("paragraph", "Plans are billed monthly."),
        ("heading", "2.1 Enterprise"),
    ]
    assert sections[1].headings == ("Pricing",)
    assert sections[3].headings == ("Pricing", "2.1 Enterprise")
    assert sections[4].headings == ("Pricing", "2.1 Enterprise")
    assert sections[4].page == 2


def test_a_pdf_sentence_in_body_type_is_never_taken_for_a_heading() -> None:
    data = files.pdf_document([["Short Title Case Line", "A normal paragraph follows."]])

    assert {section.kind for section in extract(data, PDF).sections} == {"paragraph"}


def test_only_the_first_pages_of_a_very_long_pdf_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # The module, not the function of the same name the package exports.
    monkeypatch.setattr(importlib.import_module("functions.agents.documents.extract"), "MAX_PDF_PAGES", 2)
    data = files.pdf_document([["First page."], ["Second page."], ["Third page."]])

    document = extract(data, PDF)

    assert document.pages == 3
    assert texts(document) == ["First page.", "Second page."]


def test_a_password_protected_pdf_is_refused_as_encrypted_even_with_an_empty_password() -> None:
    for data in (files.encrypted_pdf(), files.encrypted_pdf(user_password="s3cret")):
        refused = refusal(data, PDF)
        assert refused.code == "encrypted"
        assert "password" in refused.reason


def test_a_pdf_cut_in_half_is_corrupt() -> None:
    refused = refusal(files.truncated_pdf(), PDF)

    assert refused.code == "corrupt"
    assert "damaged" in refused.reason


def test_garbage_after_a_pdf_header_is_corrupt_not_an_exception_of_the_parser() -> None:
    refused = refusal(b"%PDF-1.7\n" + bytes(range(256)) * 40, PDF)

    assert refused.code == "corrupt"


def test_a_scanned_pdf_without_a_text_layer_says_ocr_is_not_offered() -> None:
    refused = refusal(files.scanned_pdf(), PDF)

    assert refused.code == "no_text"
    assert "OCR" in refused.reason


def test_a_pdf_header_after_a_byte_order_mark_and_blank_lines_is_still_a_pdf() -> None:
    data = b"\xef\xbb\xbf\r\n" + files.pdf_document([["Still readable."]])

    assert texts(extract(data, PDF)) == ["Still readable."]


def test_an_html_page_declared_as_pdf_is_the_wrong_type() -> None:
    refused = refusal(files.html_document(), PDF)

    assert refused.code == "wrong_type"
    assert refused.reason == "The file is an HTML page, not a PDF document."


# --- DOCX --------------------------------------------------------------------------------------------------------


def test_a_word_document_keeps_its_table_in_place_and_its_headings() -> None:
    data = files.docx_document(
        [
            ("title", "Handbook"),
            ("heading", "Pricing"),
            ("paragraph", "Plans are billed monthly."),
            ("table", [["Plan", "Price"], ["Starter", "10 EUR"], ["Enterprise", "on request"]]),
            ("paragraph", "Prices include tax."),
            ("heading2", "Discounts"),
            ("bullets", ["Yearly plans", "Non-profits"]),
            ("heading", "Support"),
            ("paragraph", "Write to the support team."),
        ]
    )

    document = extract(data, DOCX)

    assert (document.format, document.pages) == ("docx", None)
    assert [(section.kind, section.text) for section in document.sections] == [
        ("heading", "Handbook"),
        ("heading", "Pricing"),
        ("paragraph", "Plans are billed monthly."),
        ("table", "Plan | Price\nStarter | 10 EUR\nEnterprise | on request"),
        ("paragraph", "Prices include tax."),
        ("heading", "Discounts"),
        ("list", "Yearly plans\nNon-profits"),
        ("heading", "Support"),
        ("paragraph", "Write to the support team."),
    ]
    headings = {section.text: section.headings for section in document.sections}
    assert headings["Plan | Price\nStarter | 10 EUR\nEnterprise | on request"] == ("Handbook", "Pricing")
    assert headings["Yearly plans\nNon-profits"] == ("Handbook", "Pricing", "Discounts")
    assert headings["Write to the support team."] == ("Handbook", "Support")


def test_a_png_declared_as_a_word_document_is_the_wrong_type() -> None:
    refused = refusal(files.png_bytes(), DOCX)

    assert refused.code == "wrong_type"
    assert refused.reason == "The file is a PNG image, not a Word document."


def test_a_zip_without_a_word_document_inside_is_the_wrong_type() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")

    assert refusal(buffer.getvalue(), DOCX).reason == "The file is a ZIP archive, not a Word document."


def test_a_word_document_with_a_damaged_body_is_corrupt() -> None:
    original = zipfile.ZipFile(io.BytesIO(files.docx_document([("paragraph", "Hello.")])))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in original.namelist():
            content = original.read(name)
            archive.writestr(name, content[: len(content) // 2] if name == "word/document.xml" else content)

    assert refusal(buffer.getvalue(), DOCX).code == "corrupt"


def test_a_word_document_cut_in_half_is_corrupt() -> None:
    data = files.docx_document([("paragraph", "Hello.")])

    refused = refusal(data[: len(data) // 2], DOCX)

    assert refused.code == "corrupt"
    assert refused.reason == "The Word document is damaged or incomplete and cannot be read."


# --- Markdown, HTML, text ----------------------------------------------------------------------------------------


def test_markdown_keeps_headings_lists_code_and_tables_without_their_markup() -> None:
    document = extract(files.markdown_document(), "text/markdown")

    assert [(section.kind, section.text) for section in document.sections] == [
        ("heading", "Handbook"),
        ("paragraph", "Welcome to the team handbook. Read the pricing part first."),
        ("heading", "Pricing"),
        ("paragraph", "Plans are billed monthly."),
        ("table", "Plan | Price\nStarter | 10 EUR\nEnterprise | on request"),
        ("heading", "Setup"),
        ("list", "Install the client\nSign in with your work account"),
        ("code", "stratus login --stage dev\n# not a heading: inside code"),
    ]
    assert document.sections[-1].headings == ("Handbook", "Setup")
    assert extract(files.markdown_document(), "text/x-markdown") == document


def test_html_gives_text_only_without_scripts_styles_or_markup() -> None:
    document = extract(files.html_document(), "text/html; charset=utf-8")

    assert [(section.kind, section.text) for section in document.sections] == [
        ("heading", "Support & Billing"),
        ("paragraph", "Invoices are sent on the first day of each month."),
        ("heading", "Refunds"),
        ("paragraph", "Refunds take 5 days — sometimes less."),
        ("list", "Card payments\nBank transfers"),
        ("table", "Plan | Price\nStarter | 10 €"),
    ]
    everything = " ".join(texts(document))
    for leaked in (files.SCRIPT_MARKER, files.STYLE_MARKER, "<", "JavaScript", "template"):
        assert leaked not in everything
    assert document.sections[-1].headings == ("Support & Billing", "Refunds")


def test_plain_text_is_split_at_blank_lines_and_read_as_cp1252_when_it_is_not_utf8() -> None:
    data = "Café menu\r\nfor the week.\r\n\r\n\u201cFresh\u201d bread daily.".encode("cp1252")

    document = extract(data, "text/plain")

    assert texts(document) == ["Café menu for the week.", "\u201cFresh\u201d bread daily."]
    assert extract("\ufeffUnicode text ✓".encode(), "text/plain").sections[0].text == "Unicode text ✓"


def test_a_pdf_declared_as_text_is_the_wrong_type() -> None:
    refused = refusal(files.pdf_document([["A real PDF."]]), "text/plain")

    assert (refused.code, refused.reason) == ("wrong_type", "The file is a PDF document, not a text file.")


def test_binary_bytes_declared_as_markdown_are_the_wrong_type() -> None:
    assert refusal(b"\x00\x01\x02binary\x00", "text/markdown").code == "wrong_type"


# --- Types and sizes ---------------------------------------------------------------------------------------------


def test_an_unknown_declared_type_is_unsupported() -> None:
    refused = refusal(files.png_bytes(), "image/png")

    assert refused.code == "unsupported_type"
    assert "PDF" in refused.reason


def test_a_file_over_the_size_limit_is_too_large_before_it_is_read() -> None:
    assert refusal(b"a" * (MAX_DOCUMENT_BYTES + 1), "text/plain").code == "too_large"


def test_a_file_with_nothing_in_it_has_no_text() -> None:
    assert refusal(b"  \n\n ", "text/plain").code == "no_text"
    assert refusal(b"<html><body><script>x()</script></body></html>", "text/html").code == "no_text"
