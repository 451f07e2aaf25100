"""The jobs context's routes: a user's exports, imports and jobs; the stage's jobs and the archiving run for admins.

Every route is one service call; another user's job is 404, as an unknown id is.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from functions.jobs import service
from functions.jobs.models import ImportRequest, ImportUpload, JobKind, JobPublic
from shared.auth.principal import Principal
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal, require_permission
from shared.http.models import Page
from shared.http.responses import refusals
from shared.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=2048)]
# A job's id is its execution's name: a ULID, or what the schedule named an archiving run (at most 80 characters).
JobId = Annotated[str, Path(alias="jobId", min_length=1, max_length=80)]
Admin = Annotated[Principal, Depends(require_permission("users.manage"))]
_NOT_STARTED = {503: "The job's workflow could not be started (`job_not_started`); the job is recorded failed"}

users = APIRouter(prefix="/api/v1/users", tags=["jobs"])
admin = APIRouter(prefix="/api/v1/admin/jobs", tags=["admin"])


@users.post(
    "/export",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses=refusals(409, 503, meaning=_NOT_STARTED),
)
def start_export(principal: CurrentPrincipal) -> JobPublic:
    return service.start_export(principal)


@users.get("/export/{jobId}", response_model=JobPublic, responses=refusals(404))
def get_export(principal: CurrentPrincipal, job_id: JobId) -> JobPublic:
    return service.get_export(principal, job_id)


@users.get("/jobs", response_model=Page[JobPublic], responses=refusals(400))
def list_jobs(principal: CurrentPrincipal, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Page[JobPublic]:
    items, next_cursor = service.list_user_jobs(principal.user_id, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@users.post("/import", status_code=status.HTTP_201_CREATED, response_model=ImportUpload)
def create_import(principal: CurrentPrincipal, body: ImportRequest) -> ImportUpload:
    return service.create_import(principal.user_id, body.format)


@users.post(
    "/import/{jobId}/start",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses=refusals(404, 409, 422, 503, meaning=_NOT_STARTED),
)
def start_import(principal: CurrentPrincipal, job_id: JobId) -> JobPublic:
    return service.start_import(principal, job_id)


@users.get("/import/{jobId}", response_model=JobPublic, responses=refusals(404))
def get_import(principal: CurrentPrincipal, job_id: JobId) -> JobPublic:
    return service.get_import(principal.user_id, job_id)


@admin.get("", response_model=Page[JobPublic], responses=refusals(400, 403))
def list_stage_jobs(
    _: Admin,
    *,
    user_id: Annotated[str | None, Query(alias="userId", max_length=26)] = None,
    kind: Annotated[JobKind | None, Query()] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[JobPublic]:
    items, next_cursor = service.list_jobs(user_id=user_id, kind=kind, limit=limit, cursor=cursor)
    return Page(items=items, next_cursor=next_cursor)


@admin.post(
    "/archive",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses=refusals(403, 503, meaning=_NOT_STARTED),
)
def start_archive(principal: CurrentPrincipal) -> JobPublic:
    """Checks `users.manage` in the service, where a refused attempt is recorded in the audit log too."""
    return service.start_archive(principal)


@admin.get("/{jobId}", response_model=JobPublic, responses=refusals(403, 404))
def get_job(_: Admin, job_id: JobId) -> JobPublic:
    return service.get_job(job_id)


app = create_app(title="Stratus jobs", protected=[users, admin])
