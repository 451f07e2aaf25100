"""The webhooks' request and response bodies. The secret leaves once, in the 201 of its creation
(`SubscriptionCreated`); no other model carries it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from shared.http.models import ApiModel, JsonBool

# API.md's event types a subscription may ask for; `ping` is the test route's.
EVENT_TYPES: tuple[str, ...] = (
    "conversation.created",
    "message.created",
    "memory.created",
    "export.completed",
    "import.completed",
    "account.deleted",
    "document.processed",
    "channel.message.received",
    "ping",
)
Scope = Literal["user", "stage"]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


def _known(events: list[str] | None) -> list[str] | None:
    if events is None:
        return None
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    return list(dict.fromkeys(events))


class SubscriptionCreate(ApiModel):
    url: Url
    events: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))]
    description: Description | None = None
    enabled: JsonBool = True
    scope: Scope = "user"

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str] | None) -> list[str] | None:
        return _known(events)


class SubscriptionUpdate(ApiModel):
    url: Url | None = None
    events: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))] | None = None
    description: Description | None = None
    enabled: JsonBool | None = None

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str] | None) -> list[str] | None:
        return _known(events)


class SubscriptionPublic(ApiModel):
    id: str
    url: str
    events: list[str]
    description: str | None = None
    enabled: bool
    scope: Scope
    owner_id: str
    # Why it was disabled when Stratus disabled it (24 hours of failed deliveries).
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    created_at: datetime
    updated_at: datetime


class SubscriptionCreated(SubscriptionPublic):
    """The creation's answer: the signing secret, shown this once."""

    secret: str


class DeliveryPublic(ApiModel):
    """One attempt of the delivery log."""

    event_id: str
    type: str
    attempt: int
    status: Literal["delivered", "failed"]
    status_code: int | None = None
    latency_ms: int
    error: str | None = None
    next_retry_at: datetime | None = None
    at: datetime


class PingResult(ApiModel):
    """What the test route's ping delivery did."""

    event_id: str
    status: Literal["delivered", "failed"]
    status_code: int | None = None
    latency_ms: int
    error: str | None = None
