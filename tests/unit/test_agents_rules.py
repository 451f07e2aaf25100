"""The agents context's pure rules: which documents an S3 notification names, a document's status as read (never
stuck), snippets, and the processor's deadline matching its catalog entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from functions.agents import processing, service, store
from infra.catalog import AGENTS_PROCESSOR_FUNCTION

AGENT, DOCUMENT = "01JAGENT000000000000000000", "01JDOCUMENT000000000000000"
MOMENT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def s3_event(*keys: str) -> dict[str, object]:
    """An ObjectCreated notification as S3 sends it: keys URL-encoded (form encoding: a space is `+`)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "stratus-test-documents", "arn": "arn:aws:s3:::stratus-test-documents"},
                    "object": {"key": key, "size": 10, "eTag": "abc"},
                },
            }
            for key in keys
        ]
    }


def test_an_s3_notification_names_the_documents_under_the_documents_prefix() -> None:
    event = s3_event(f"documents/{AGENT}/{DOCUMENT}", "documents%2Fa%2Fb", "exports/x/y", f"documents/{AGENT}/a/b")
    assert processing.documents_in(event) == [
        processing.DocumentRef(AGENT, DOCUMENT),
        processing.DocumentRef("a", "b"),
    ]
    assert processing.documents_in({"agentId": AGENT, "documentId": DOCUMENT}) == [
        processing.DocumentRef(AGENT, DOCUMENT)
    ]
    assert processing.documents_in({"Records": []}) == []


def document(status: str, **fields: object) -> store.DocumentRecord:
    record = store.new_document(
        agent_id=AGENT, document_id=DOCUMENT, file_name="a.pdf", content_type="application/pdf", size_bytes=10,
        created_by="u", upload_expires_at=MOMENT + timedelta(minutes=15),
    )  # fmt: skip
    record.status = status
    record.created_at = MOMENT
    for name, value in fields.items():
        setattr(record, name, value)
    return record


def test_an_upload_past_its_links_expiry_reads_as_failed() -> None:
    uploading = document("uploading")
    assert service.public_document(uploading, MOMENT + timedelta(minutes=14)).status == "uploading"
    late = service.public_document(uploading, MOMENT + timedelta(minutes=16))
    assert late.status == "failed"
    assert late.error is not None
    assert late.error.code == "upload_expired"


def test_a_run_past_the_processors_time_limit_reads_as_failed() -> None:
    processing_record = document("processing", processing_deadline=service.processing_deadline(MOMENT))
    assert service.public_document(processing_record, MOMENT + timedelta(seconds=299)).status == "processing"
    cut_off = service.public_document(processing_record, MOMENT + timedelta(minutes=10))
    assert cut_off.status == "failed"
    assert cut_off.error is not None
    assert cut_off.error.code == "processing_timeout"
    ready = document("ready", pages=3, chunks=7, processed_at=MOMENT)
    shown = service.public_document(ready, MOMENT + timedelta(days=30))
    assert (shown.status, shown.pages, shown.chunks, shown.error) == ("ready", 3, 7, None)


def test_the_deadline_covers_the_processors_whole_time_limit() -> None:
    assert AGENTS_PROCESSOR_FUNCTION.timeout_seconds == service.PROCESSING_TIMEOUT_SECONDS
    assert service.processing_deadline(MOMENT) > MOMENT + timedelta(seconds=AGENTS_PROCESSOR_FUNCTION.timeout_seconds)


def test_a_snippet_is_the_chunks_start_cut_at_a_word() -> None:
    assert service.snippet_of("Short  text\nhere") == "Short text here"
    long = " ".join(f"word{n}" for n in range(100))
    snippet = service.snippet_of(long)
    assert len(snippet) <= service.SNIPPET_CHARS + 1
    assert snippet.endswith("…")
    assert long.startswith(snippet.removesuffix("…"))
    assert service.chunk_key(DOCUMENT, 7) == f"{DOCUMENT}:00007"
