"""The audit log's response bodies (API.md, Audit log). Stored records never leave the service: these are built
from them, their personal fields opened where the owner's key still exists and absent where it does not."""

from __future__ import annotations

from typing import Literal

from shared.http.models import ApiModel

DetailValue = str | int | float | bool | None


class AuditActor(ApiModel):
    user_id: str | None = None
    auth_type: str | None = None
    ip: str | None = None
    user_agent: str | None = None


class AuditTarget(ApiModel):
    type: str
    id: str


class AuditEvent(ApiModel):
    """One security event: who did what to what, when, from where, and how it ended."""

    id: str
    at: str
    action: str
    outcome: Literal["success", "failure"]
    actor: AuditActor
    target: AuditTarget | None = None
    request_id: str | None = None
    details: dict[str, DetailValue] | None = None
