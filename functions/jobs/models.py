"""The jobs context's request and response bodies. Stored records never leave the service: these are built from them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from functions.jobs.formats.items import ImportFormat
from shared.http.models import ApiModel

JobKind = Literal["export", "import", "deletion", "archive"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]
ContextState = Literal["queued", "running", "done", "failed"]


class JobProgress(ApiModel):
    done: int
    total: int
    contexts: dict[str, ContextState]


class JobError(ApiModel):
    code: str
    message: str


class JobPublic(ApiModel):
    """A job: what it is, how far it got, and what it produced.

    `result` for an export: `{downloadUrl, expiresAt, sizeBytes, counts}` (the link only from
    GET /users/export/{jobId}); for an import: `{imported: {conversations, messages, projects, prompts, memories},
    rejected: [{item, reason}], rejectedMore}`; for a deletion or an archiving run, what each context removed or
    archived."""

    job_id: str
    kind: JobKind
    status: JobStatus
    progress: JobProgress
    created_at: datetime
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: JobError | None = None
    user_id: str | None = None
    """Whose data the job is about (none for an archiving run): admins list the stage's jobs."""


class ImportRequest(ApiModel):
    format: ImportFormat


class ImportUpload(ApiModel):
    """Where to PUT the file of an import job, until when, and how large it may be."""

    job_id: str
    upload_url: str
    upload_method: Literal["PUT"] = "PUT"
    max_bytes: int
    expires_at: datetime
