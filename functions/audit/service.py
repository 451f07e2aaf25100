"""The audit log's logic: a user's own events, the stage's for auditors (by user, action and time), and a user's
events for their export, each opened with the keys that still exist (functions.audit.crypto)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.audit import crypto
from functions.audit.models import AuditActor, AuditEvent, AuditTarget
from shared.audit import ACTIONS
from shared.errors import ValidationFailed
from shared.lazy import LazyModule
from shared.settings import get_settings

if TYPE_CHECKING:
    from functions.audit import store
    from functions.audit.store import EventRecord
else:
    store = LazyModule("functions.audit.store")

# Bounds of `at` when a query gives none: before and after any event.
_EARLIEST = ""
_LATEST = "9999-12-31T23:59:59.999Z"


def _at(moment: datetime) -> str:
    """A bound in the form every event's `at` takes (a time without a zone is UTC)."""
    try:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # a zone that moves it out of the years datetime knows (0001-01-01T00:00+01:00)
        raise ValidationFailed("`from` and `to` must be times between the years 1 and 9999") from None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _checked(action: str | None, since: datetime | None, until: datetime | None) -> tuple[str, str]:
    if action is not None and action not in ACTIONS:
        raise ValidationFailed(f"{action!r} is not an audit action")
    lower = _at(since) if since else _EARLIEST
    upper = _at(until) if until else _LATEST
    if lower > upper:
        raise ValidationFailed("`from` is after `to`")
    return lower, upper


def own_events(
    user_id: str, *, action: str | None, since: datetime | None, until: datetime | None, limit: int,
    cursor: str | None,
) -> tuple[list[AuditEvent], str | None]:  # fmt: skip
    """The events the user did or that were done to them, newest first."""
    lower, upper = _checked(action, since, until)
    records, next_cursor = store.user_events_page(
        user_id, lower=lower, upper=upper, action=action, limit=limit, cursor=cursor
    )
    return public_events(records), next_cursor


def stage_events(
    *, user_id: str | None, action: str | None, since: datetime | None, until: datetime | None, limit: int,
    cursor: str | None,
) -> tuple[list[AuditEvent], str | None]:  # fmt: skip
    """The stage's events newest first (`user_id`: those the user did or that were done to them), for auditors."""
    if user_id is not None:
        return own_events(user_id, action=action, since=since, until=until, limit=limit, cursor=cursor)
    lower, upper = _checked(action, since, until)
    records, next_cursor = store.stage_events_page(
        days=days_between(lower, upper), lower=lower, upper=upper, action=action, limit=limit, cursor=cursor
    )
    return public_events(records), next_cursor


def days_between(lower: str, upper: str, *, now: datetime | None = None) -> list[str]:
    """The day partitions of the stage's index the bounds cover, newest first: none before the retention began,
    none after tomorrow (an event's `at` is its publisher's clock: a day ahead of ours at most)."""
    now = now or datetime.now(UTC)
    first = max(lower[:10], (now - timedelta(days=get_settings().audit_retention_days + 1)).date().isoformat())
    last = min(upper[:10], (now + timedelta(days=1)).date().isoformat())
    days: list[str] = []
    day = datetime.fromisoformat(last).date() if last >= first else None
    while day is not None and day.isoformat() >= first:
        days.append(day.isoformat())
        day -= timedelta(days=1)
    return days


def public_events(records: Sequence[EventRecord]) -> list[AuditEvent]:
    """The events as the API shows them, their personal fields opened with the keys that still exist."""
    owners = {envelope["owner"] for record in records for envelope in record.sealed or ()}
    keys = {user: crypto.unseal_key(user, sealed) for user, sealed in store.sealed_keys(owners).items()}
    return [public_event(record, keys) for record in records]


def public_event(record: EventRecord, keys: dict[str, bytes]) -> AuditEvent:
    parts: dict[str, dict[str, Any]] = {"actor": dict(record.actor or {}), "details": dict(record.details or {})}
    for envelope in record.sealed or ():
        key = keys.get(envelope["owner"])
        if key is not None:  # a key deleted with its account: these fields are gone for good
            parts[envelope["part"]].update(crypto.open_fields(key, envelope, event_id=record.event_id))
    actor = parts["actor"]
    return AuditEvent(
        id=record.event_id,
        at=record.at,
        action=record.action,
        outcome="failure" if record.outcome == "failure" else "success",
        actor=AuditActor(
            user_id=actor.get("userId"),
            auth_type=actor.get("authType"),
            ip=actor.get("ip"),
            user_agent=actor.get("userAgent"),
        ),
        target=AuditTarget(**record.target) if record.target else None,
        request_id=record.request_id,
        details=parts["details"] or None,
    )
