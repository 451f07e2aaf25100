"""The analytics counters' consumer of the events queue (`functions.events.handler.CONSUMERS`): every event,
domain or audit, is counted into the day's items (`functions.analytics.counts` says what each adds), exactly once
by its id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from functions.analytics import store
from functions.analytics.counts import increments, is_activity
from shared.events import Event
from shared.observability import logger


def consume(events: Sequence[Event]) -> Iterable[str]:
    """Count each event; the ids of those that could not be counted now (SQS delivers them again)."""
    failed: list[str] = []
    for event in events:
        counted = increments(event)
        active = is_activity(event)
        if counted.empty and not active:
            continue
        try:
            store.count_event(event, counted, active=active)
        except Exception:
            logger.exception("An event was not counted", extra={"eventId": event.id, "type": event.type})
            failed.append(event.id)
    return failed
