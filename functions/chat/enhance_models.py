"""Text enhancement's request and response bodies."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from functions.chat.models import ContentEvent, EndEvent, ErrorEvent, StartEvent, UsageEvent
from shared.http.models import ApiModel

FieldTypeId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
RelatedKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
RelatedValue = Annotated[str, StringConstraints(max_length=4_000)] | int | float | bool
# The events of a session's stream: a reply's, without tools.
EnhanceStreamEvent = Annotated[
    StartEvent | ContentEvent | UsageEvent | EndEvent | ErrorEvent, Field(discriminator="type")
]
SessionStatus = Literal["pending", "streaming", "completed", "cancelled", "failed"]


class EnhanceContext(ApiModel):
    entity_type: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    entity_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    # Only the keys the field type names (its `contextKeys`) reach the prompt.
    related: Annotated[dict[RelatedKey, RelatedValue], Field(max_length=32)] = {}


class EnhanceRequest(ApiModel):
    # May be empty: some field types write from the context alone (a reply to a message, a title for a topic).
    text: Annotated[str, StringConstraints(max_length=20_000)]
    field_type: FieldTypeId
    context: EnhanceContext | None = None
    instructions: Annotated[str, StringConstraints(min_length=1, max_length=2_000)] | None = None
    tone: Annotated[str, StringConstraints(min_length=1, max_length=60)] | None = None
    language: Annotated[str, StringConstraints(min_length=1, max_length=60)] | None = None
    model: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    provider: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None


class EnhanceCreated(ApiModel):
    session_id: str
    status: SessionStatus
    stream_path: str


class FieldTypePublic(ApiModel):
    id: str
    label: str
    context_keys: list[str]


class EnhanceUsage(ApiModel):
    input_tokens: int
    output_tokens: int
    cost: Decimal


class EnhanceSessionPublic(ApiModel):
    session_id: str
    field_type: str
    text: str
    status: SessionStatus
    # What was generated; the partial text of a cancelled or failed session.
    result: str
    stop_reason: str | None
    model: str | None
    provider: str | None
    usage: EnhanceUsage | None
    created_at: str
    started_at: str | None
    completed_at: str | None
    # Milliseconds from the start of generation to its first text.
    ttft_ms: int | None
    expires_at: str


class UsageTotals(ApiModel):
    sessions: int
    input_tokens: int
    output_tokens: int
    cost: Decimal


class UsageOfDay(UsageTotals):
    date: str


class UsageOfFieldType(UsageTotals):
    field_type: str


class EnhanceUsageReport(ApiModel):
    days: int
    totals: UsageTotals
    by_day: list[UsageOfDay]
    by_field_type: list[UsageOfFieldType]
