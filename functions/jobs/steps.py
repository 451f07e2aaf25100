"""The steps of the job workflows that keep the job's record (`jobs-steps`): begin, each context's start and end,
an import page's figures, the export's archive, and the job's end, succeeded or failed.

Every step may run twice (Step Functions retries a Lambda that failed after its work was done): each one is
conditional on the state it moves the job from, so a second run changes nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from functions.jobs import files
from functions.jobs.contexts import job_contexts
from functions.jobs.errors import JobInputError
from shared import events
from shared.lazy import LazyModule
from shared.observability import logger

if TYPE_CHECKING:
    from functions.jobs import store
else:
    store = LazyModule("functions.jobs.store")

# The archive's files in the order people read them; any other stem follows in name order.
STEM_ORDER = ("conversations", "projects", "prompts", "memories", "usage", "mcp-servers")
DOCUMENTS_STEM = "documents"
# Rejected items a job keeps in its record (an item stays far below DynamoDB's 400 KB); the rest are counted.
MAX_REJECTED_KEPT = 1_000
FAILED_CODE = "job_failed"
FAILED_MESSAGE = "The job failed on our side; please start it again later"


def lambda_handler(event: dict[str, Any], _: Any) -> dict[str, Any]:
    step = _STEPS.get(event.get("action", ""))
    if step is None:
        raise ValueError(f"unknown step {event.get('action')!r}")
    try:
        return step(event)
    finally:
        # What a step published (the job's start and end, a deletion's end) is on the queue before the step returns.
        events.flush()


def _publish_job(type_: str, job_id: str, kind: str, user_id: str | None, **data: Any) -> None:
    """`job.started` / `job.finished` for the analytics counters, named by the job: a step run twice (Step
    Functions retries) publishes the same event, counted once."""
    events.publish(type_, {"jobId": job_id, "kind": kind, **data}, user_id=user_id, event_id=f"{type_}-{job_id}")


def begin(event: dict[str, Any]) -> dict[str, Any]:
    """The job running; an archiving run the schedule started gets its record here."""
    job_id, kind = event["jobId"], event["kind"]
    if kind == "archive" and store.find_job(job_id) is None:
        store.create_job(store.new_job(job_id, "archive", None))
    contexts = [context.name for context in job_contexts(kind)]
    # An import is one loop of pages over the importing contexts together, not a map over them.
    if store.begin(job_id, contexts, contexts_running=kind == "import"):
        _publish_job("job.started", job_id, kind, event.get("userId"))
    return {}


def context_started(event: dict[str, Any]) -> dict[str, Any]:
    store.set_context_running(event["jobId"], event["context"])
    return {}


def context_done(event: dict[str, Any]) -> dict[str, Any]:
    count = event.get("count")
    store.set_context_done(event["jobId"], event["context"], None if count is None else int(count))
    return {}


def import_page(event: dict[str, Any]) -> dict[str, Any]:
    """Add one import page's figures to the job's result; the page's `cursor` (where the next one starts, null
    for the last) tells a retried step from the next page."""
    page = (event["cursor"] or "end") if "cursor" in event else None

    def add(result: dict[str, Any] | None) -> dict[str, Any]:
        from functions.jobs.service import empty_import_result

        result = result or empty_import_result()
        imported = result.setdefault("imported", {})
        for kind, count in (event.get("imported") or {}).items():
            imported[kind] = int(imported.get(kind, 0)) + int(count)
        kept: list[Any] = result.setdefault("rejected", [])
        room = max(MAX_REJECTED_KEPT - len(kept), 0)
        rejected = list(event.get("rejected") or ())
        kept += rejected[:room]
        more = len(rejected) - min(room, len(rejected)) + int(event.get("rejectedMore") or 0)
        result["rejectedMore"] = int(result.get("rejectedMore", 0)) + more
        return result

    store.change_result(event["jobId"], page, add)
    return {}


def assemble_export(event: dict[str, Any]) -> dict[str, Any]:
    """The export's parts, in stem order, into one ZIP at `exports/<userId>/<jobId>/export.zip`; then the parts
    go. Its size and counts are on the job before any part is deleted, so a retry after that only tidies up."""
    job_id, user_id = event["jobId"], event["userId"]
    prefix = files.parts_prefix(user_id, job_id)
    job = store.get_job(job_id)
    if not (job.result and "archiveKey" in job.result):
        parts = _parts_by_stem(files.keys_under(prefix), prefix)
        key = files.archive_key(user_id, job_id)
        size, counts = _write_archive(parts, user_id, key)
        store.set_result(job_id, {"archiveKey": key, "sizeBytes": size, "counts": counts})
    files.delete_keys(files.keys_under(prefix))
    return {}


def _parts_by_stem(keys: list[str], prefix: str) -> dict[str, list[str]]:
    parts: dict[str, list[str]] = {}
    for key in keys:
        stem, _, _ = key[len(prefix) :].partition("/")
        parts.setdefault(stem, []).append(key)
    return {stem: sorted(names) for stem, names in parts.items()}


def _write_archive(parts: dict[str, list[str]], user_id: str, key: str) -> tuple[int, dict[str, int]]:
    from functions.jobs.formats.archive import CONVERSATIONS, DOCUMENTS, ExportWriter

    stems = [*STEM_ORDER, *sorted(set(parts) - set(STEM_ORDER) - {DOCUMENTS_STEM})]
    with tempfile.TemporaryFile() as sink:
        with ExportWriter(sink, user_id=user_id, exported_at=datetime.now(UTC)) as writer:
            for stem in stems:
                lines = _lines(parts.get(stem, []))
                if stem == CONVERSATIONS:
                    writer.write_conversation_lines(lines)
                else:
                    writer.write_context(stem, lines)
            for document_key in parts.get(DOCUMENTS_STEM, []):
                name = document_key.rsplit("/", 1)[-1]
                if name in DOCUMENTS:
                    writer.write_document(name, files.read_document(document_key))
        manifest = writer.manifest
        assert manifest is not None
        size = sink.tell()
        sink.seek(0)
        files.upload(sink, key)
    counts = {name: entry.count for name, entry in manifest.contexts.items()}
    messages = manifest.contexts[CONVERSATIONS].messages
    counts["messages"] = messages or 0
    return size, counts


def _lines(keys: list[str]) -> Iterator[dict[str, Any]]:
    for key in keys:
        yield from files.read_lines(key)


# The webhook event a job's success is (API.md, Outbound webhooks); archiving runs are the stage's, no user's.
_COMPLETED_EVENTS = {"export": "export.completed", "import": "import.completed", "deletion": "account.deleted"}


def finish(event: dict[str, Any]) -> dict[str, Any]:
    ended = store.finish(event["jobId"])
    if ended is not None:
        store.release_lock(ended)
        _publish_job("job.finished", ended.job_id, ended.kind, ended.user_id, status="succeeded")
        if ended.kind == "deletion":
            _deletion_ended(ended, None)
        _publish_completed(ended)
    return {}


def _publish_completed(job: store.JobRecord) -> None:
    from shared import events

    event_type = _COMPLETED_EVENTS.get(job.kind)
    if event_type is None or not job.user_id:
        return
    data: dict[str, Any] = {"jobId": job.job_id, "kind": job.kind, "status": "succeeded"}
    if job.kind == "deletion":
        data = {"userId": job.user_id, "jobId": job.job_id}
    elif counts := job.context_counts():
        data["counts"] = counts
    events.publish(event_type, data, user_id=job.user_id)  # on the queue before the step returns: lambda_handler


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """The job failed with a Step Functions Catch's `error`: a job input error's message shown as it is, any
    other failure as a generic message (the cause is logged, never shown)."""
    error = event.get("error") or {}
    cause = str(error.get("Cause") or "")
    input_error = JobInputError.from_cause(cause) if error.get("Error") == JobInputError.__name__ else None
    if input_error is not None:
        code, message = input_error.code, input_error.message
    else:
        logger.warning("job failed", extra={"jobId": event["jobId"], "error": error.get("Error"), "cause": cause})
        code, message = FAILED_CODE, FAILED_MESSAGE
    ended = store.fail(event["jobId"], code, message, event.get("context"))
    if ended is not None:
        store.release_lock(ended)
        _publish_job("job.finished", ended.job_id, ended.kind, ended.user_id, status="failed")
        if ended.kind == "deletion":
            _deletion_ended(ended, code)
    return {}


def _deletion_ended(record: store.JobRecord, error_code: str | None) -> None:
    from functions.jobs.service import record_deletion_ended

    record_deletion_ended(record, error_code)


_STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "begin": begin,
    "context-started": context_started,
    "context-done": context_done,
    "import-page": import_page,
    "assemble-export": assemble_export,
    "finish": finish,
    "fail": fail,
}
