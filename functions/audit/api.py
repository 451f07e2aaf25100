"""The audit log's routes: the caller's own events, and the stage's for auditors (`audit.read`). Read only: no
route changes or deletes an event."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BeforeValidator

from functions.audit import service
from functions.audit.models import AuditEvent
from shared.auth.principal import Principal
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal, require_permission
from shared.http.models import Page
from shared.http.responses import refusals
from shared.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=2048)]
Action = Annotated[str | None, Query(max_length=64)]
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_8601(value: object) -> object:
    """Only ISO 8601 text: pydantic would also take a number as seconds since 1970."""
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 date and time, e.g. 2026-01-31T12:00:00Z")
    return value


# ISO 8601; a time without a zone is UTC. Anything else is 422.
From = Annotated[datetime | None, BeforeValidator(_iso_8601), Query(alias="from")]
To = Annotated[datetime | None, BeforeValidator(_iso_8601), Query(alias="to")]
UserId = Annotated[str | None, Query(alias="userId", min_length=1, max_length=64)]
Auditor = Annotated[Principal, Depends(require_permission("audit.read"))]

own = APIRouter(prefix="/api/v1/audit", tags=["audit"])
admin = APIRouter(prefix="/api/v1/admin/audit", tags=["admin"])


@own.get("", response_model=Page[AuditEvent], response_model_exclude_none=True, responses=refusals(400, 422))
def list_own_events(
    principal: CurrentPrincipal, *, action: Action = None, since: From = None, until: To = None,
    limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None,
) -> Page[AuditEvent]:  # fmt: skip
    items, next_cursor = service.own_events(
        principal.user_id, action=action, since=since, until=until, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)


@admin.get("", response_model=Page[AuditEvent], response_model_exclude_none=True, responses=refusals(400, 403, 422))
def list_stage_events(
    _: Auditor, *, user_id: UserId = None, action: Action = None, since: From = None, until: To = None,
    limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None,
) -> Page[AuditEvent]:  # fmt: skip
    items, next_cursor = service.stage_events(
        user_id=user_id, action=action, since=since, until=until, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)


app = create_app(title="Stratus audit", protected=[own, admin])
