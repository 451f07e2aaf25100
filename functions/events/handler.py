"""The events queue's consumer (an SQS event source, `ReportBatchItemFailures`): each batch's events go to every
consumer in `CONSUMERS`, in order; an event any consumer could not take is reported failed, so SQS delivers it
again (and, after the queue's maxReceiveCount, to its dead-letter queue). Every consumer must therefore take an
event it has already taken as a no-op: each is idempotent by event id.

A consumer is `consume(events: Sequence[Event]) -> Iterable[str]`: it takes a batch and answers the ids of the
events it failed to take (raising fails the whole batch for it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any

from shared import events
from shared.events import Event
from shared.observability import logger

Consumer = Callable[[Sequence[Event]], Iterable[str]]

# "module:function" of each consumer, in the order they take a batch.
CONSUMERS: tuple[str, ...] = (
    "functions.audit.writer:consume",
    "functions.webhooks.fanout:consume",
    "functions.analytics.consumer:consume",
)


@cache
def _consumer(path: str) -> Consumer:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    by_message: dict[str, str] = {}
    batch: list[Event] = []
    for record in event.get("Records") or []:
        try:
            parsed = Event.from_message(record["body"])
        except (ValueError, KeyError, TypeError):
            logger.error("An event of an unknown shape was dropped", extra={"sqsId": record.get("messageId")})
            continue
        by_message[parsed.id] = record["messageId"]
        batch.append(parsed)
    failed: set[str] = set()
    for path in CONSUMERS:
        try:
            failed |= set(_consumer(path)(batch))
        except Exception:
            logger.exception("An events consumer failed its batch", extra={"consumer": path})
            failed |= {parsed.id for parsed in batch}
    # A consumer may publish in turn (the audit log's record of a webhook disabled): on the queue before returning.
    events.flush()
    return {"batchItemFailures": [{"itemIdentifier": by_message[event_id]} for event_id in sorted(failed)]}
