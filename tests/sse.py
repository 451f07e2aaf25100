"""Reading server-sent events in tests: each event as `(id, data)`, the id None for an event without one."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

SseEvent = tuple[str | None, dict[str, Any]]


def sse_events(lines: Iterable[str], stop_after: int | None = None) -> list[SseEvent]:
    """The events of a response's `lines`, up to the first `stop_after` (the rest can be read on from `lines`)."""
    events: list[SseEvent] = []
    event_id: str | None = None
    for line in lines:
        if line.startswith("id: "):
            event_id = line.removeprefix("id: ")
        elif line.startswith("data: "):
            events.append((event_id, json.loads(line.removeprefix("data: "))))
            event_id = None
            if stop_after is not None and len(events) == stop_after:
                break
    return events
