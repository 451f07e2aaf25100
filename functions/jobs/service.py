"""The jobs context's logic: starting export, import, deletion and archiving jobs, and what their records say.

A job is a Step Functions execution named after the job's id; its record (store) is what the steps of the
workflow update. Takes and returns API models; storage stays behind `store`, loaded on first use.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.jobs import files
from functions.jobs.contexts import WORKFLOWS, workflow_env_var
from functions.jobs.errors import JobNotStarted
from functions.jobs.formats.items import ImportFormat
from functions.jobs.formats.limits import DEFAULT_LIMITS
from functions.jobs.models import ImportUpload, JobError, JobProgress, JobPublic
from functions.jobs.ports import IMPORT_KINDS
from shared import audit
from shared.audit import Target
from shared.errors import Conflict, DomainError, ValidationFailed
from shared.ids import new_id
from shared.lazy import LazyModule
from shared.observability import logger

if TYPE_CHECKING:
    from functions.jobs import store
    from functions.jobs.store import JobRecord
    from shared.auth.principal import Principal
else:
    store = LazyModule("functions.jobs.store")

WORKFLOW_VARIABLES: dict[str, str] = {workflow: workflow_env_var(workflow) for workflow in WORKFLOWS}
NOT_STARTED_MESSAGE = "The job could not be started; please try again later"
# Who may run the archiving workflow now (POST /admin/jobs/archive), checked where the attempt is recorded.
ARCHIVE_PERMISSION = "users.manage"


def empty_import_result() -> dict[str, Any]:
    return {"imported": dict.fromkeys(IMPORT_KINDS, 0), "rejected": [], "rejectedMore": 0}


# Starting jobs ----------------------------------------------------------------------------------------------


def start_export(principal: Principal) -> JobPublic:
    """A new export of the caller's data; 409 `job_in_progress` while another of theirs runs."""
    with audit.recorded("export.requested", actor=principal) as entry:
        record = store.new_job(new_id(), "export", principal.user_id)
        store.create_locked_job(record)
        entry.target = Target("job", record.job_id)
        _start_workflow(record, {"jobId": record.job_id, "userId": principal.user_id})
    return public_job(record)


def create_import(user_id: str, import_format: ImportFormat) -> ImportUpload:
    """A queued import and where to upload its file; nothing runs until `start_import`."""
    record = store.new_job(new_id(), "import", user_id, import_format=import_format, result=empty_import_result())
    store.create_job(record)
    expires_at = datetime.now(UTC) + timedelta(seconds=files.UPLOAD_LINK_SECONDS)
    return ImportUpload(
        job_id=record.job_id,
        upload_url=files.upload_link(files.upload_key(user_id, record.job_id)),
        max_bytes=DEFAULT_LIMITS.max_bytes,
        expires_at=expires_at,
    )


def start_import(principal: Principal, job_id: str) -> JobPublic:
    """Run the import of the uploaded file: 422 `upload_missing` before the upload, 422 `import_too_large` (and
    the job failed) past `maxBytes`, 409 `job_already_started` the second time."""
    with audit.recorded("import.started", actor=principal, target=Target("job", job_id)) as entry:
        started = _start_import(principal.user_id, job_id)
        entry.details["format"] = started.import_format
    return public_job(started)


def _start_import(user_id: str, job_id: str) -> JobRecord:
    record = store.get_user_job(user_id, job_id, "import")
    if record.status != "queued" or record.started_at is not None:
        raise Conflict("This import has already been started", code="job_already_started")
    size = files.size_of(files.upload_key(user_id, job_id))
    if size is None:
        raise ValidationFailed("Upload the file to the job's uploadUrl before starting it", code="upload_missing")
    limit = DEFAULT_LIMITS.max_bytes
    if size > limit:
        message = f"The file is {size} bytes, over the {limit} bytes an import may be"
        store.fail(job_id, "import_too_large", message, None)
        raise ValidationFailed(message, code="import_too_large")
    if not store.mark_import_started(job_id):
        raise Conflict("This import has already been started", code="job_already_started")
    _start_workflow(record, {"jobId": job_id, "userId": user_id, "format": record.import_format})
    return store.get_job(job_id)


def start_deletion(user_id: str) -> str:
    """Start deleting every item of the user (their credentials already revoked); returns the job's id."""
    record = store.new_job(new_id(), "deletion", user_id)
    store.create_job(record)
    _start_workflow(record, {"jobId": record.job_id, "userId": user_id})
    return record.job_id


def start_archive(admin: Principal) -> JobPublic:
    """Run the archiving workflow now, as its daily schedule does."""
    with audit.recorded("admin.archive_started", actor=admin) as entry:
        admin.require(ARCHIVE_PERMISSION)
        record = store.new_job(new_id(), "archive", None)
        store.create_job(record)
        entry.target = Target("job", record.job_id)
        _start_workflow(record, {"jobId": record.job_id})
    return public_job(record)


def record_deletion_ended(record: JobRecord, error_code: str | None) -> None:
    """The deletion workflow's end, in the log of the user who is gone: `account.deletion_completed`, a failure
    with the job's `error_code` (their data is then partly there still). Called once, by the step that ended the
    job; no actor: the stage did it."""
    audit.record(
        "account.deletion_completed", outcome="failure" if error_code else "success", user_id=record.user_id,
        target=Target("user", record.user_id) if record.user_id else None,
        details={"jobId": record.job_id, **({"error": error_code} if error_code else {})},
    )  # fmt: skip


def _start_workflow(record: JobRecord, execution_input: dict[str, Any]) -> None:
    """Start the kind's state machine, named after the job; a job that could not start is recorded failed."""
    from shared.aws import client

    stepfunctions = client("stepfunctions")
    try:
        arn = os.environ.get(WORKFLOW_VARIABLES[record.kind])
        if not arn:
            raise RuntimeError(f"{WORKFLOW_VARIABLES[record.kind]} is not set")
        stepfunctions.start_execution(stateMachineArn=arn, name=record.job_id, input=json.dumps(execution_input))
    except stepfunctions.exceptions.ExecutionAlreadyExists:
        return  # started already, with this input: the name is the job's
    except Exception:
        logger.exception("job workflow not started", extra={"jobId": record.job_id, "kind": record.kind})
        store.fail(record.job_id, "job_not_started", NOT_STARTED_MESSAGE, None)
        store.release_lock(record)
        raise JobNotStarted(NOT_STARTED_MESSAGE) from None


# Reading jobs -----------------------------------------------------------------------------------------------


def get_export(principal: Principal, job_id: str) -> JobPublic:
    """The caller's export; once it succeeded, with a link to its archive valid 15 minutes. Handing out that link
    is `export.downloaded` (the archive itself is fetched from storage, where no function sees it); asking for an
    export that is not the caller's is its failure."""
    target = Target("job", job_id)
    try:
        job = public_job(store.get_user_job(principal.user_id, job_id, "export"), with_download=True)
    except DomainError as error:
        audit.record(
            "export.downloaded", outcome="failure", actor=principal, target=target,
            details={"error": error.error_code},
        )  # fmt: skip
        raise
    if job.result and "downloadUrl" in job.result:
        audit.record("export.downloaded", actor=principal, target=target)
    return job


def get_import(user_id: str, job_id: str) -> JobPublic:
    return public_job(store.get_user_job(user_id, job_id, "import"))


def list_user_jobs(user_id: str, limit: int, cursor: str | None) -> tuple[list[JobPublic], str | None]:
    records, next_cursor = store.list_user_jobs(user_id, kind=None, limit=limit, cursor=cursor)
    return [public_job(record) for record in records], next_cursor


def list_jobs(
    *, user_id: str | None, kind: str | None, limit: int, cursor: str | None
) -> tuple[list[JobPublic], str | None]:
    """The stage's jobs newest first, deletion jobs included; `user_id` and `kind` narrow them."""
    if user_id:
        records, next_cursor = store.list_user_jobs(user_id, kind=kind, limit=limit, cursor=cursor)
    else:
        records, next_cursor = store.list_stage_jobs(kind=kind, limit=limit, cursor=cursor)
    return [public_job(record) for record in records], next_cursor


def get_job(job_id: str) -> JobPublic:
    return public_job(store.get_job(job_id))


def public_job(record: JobRecord, *, with_download: bool = False) -> JobPublic:
    return JobPublic(
        job_id=record.job_id,
        kind=record.kind,
        status=record.status,
        progress=JobProgress(done=int(record.done), total=int(record.total), contexts=record.context_states()),
        created_at=record.created_at,
        finished_at=record.finished_at,
        result=_public_result(record, with_download),
        error=JobError(code=record.error_code, message=record.error_message or "") if record.error_code else None,
        user_id=record.user_id,
    )


def _public_result(record: JobRecord, with_download: bool) -> dict[str, Any] | None:
    stored: dict[str, Any] | None = record.result
    if record.kind == "export":
        if not stored or "archiveKey" not in stored:
            return None
        result = {"sizeBytes": stored["sizeBytes"], "counts": stored["counts"]}
        if with_download and record.status == "succeeded":
            expires_at = datetime.now(UTC) + timedelta(seconds=files.DOWNLOAD_LINK_SECONDS)
            result = {"downloadUrl": files.download_link(stored["archiveKey"]), "expiresAt": expires_at, **result}
        return result
    if record.kind in ("deletion", "archive"):
        counts = record.context_counts()
        return {"deleted" if record.kind == "deletion" else "archived": counts} if counts else None
    return stored
