"""The webhooks' consumer of the events function (`functions.events.handler.CONSUMERS`): each webhook event becomes
one delivery per subscription it reaches (`service.fan_out`), idempotent by event id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from shared.events import Event
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.webhooks import service
else:
    service = LazyModule("functions.webhooks.service")


def consume(events: Sequence[Event]) -> Iterable[str]:
    return service.fan_out(events)
