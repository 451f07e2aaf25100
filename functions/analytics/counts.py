"""What each event adds to the stage's per-day counters: a pure mapping from an event to counter increments, so the
rules read in one place and are tested without storage.

A counter item is one (day, dimension): `STAGE` (the stage's totals), `MODEL#<provider>#<model>`,
`AGENT#<agentId>`, `CHANNEL#<type>`, `LENGTH#<n>` (conversations that reached n messages). Names of the figures are
the attributes of those items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.events import Event

STAGE = "STAGE"
MODEL = "MODEL#"
AGENT = "AGENT#"
CHANNEL = "CHANNEL#"
LENGTH = "LENGTH#"
# The conversation-length histogram's edges: a conversation is counted once under each edge its length reaches.
LENGTH_EDGES: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256)

# Internal event types (never delivered to webhooks), published where they happen.
REPLY_COMPLETED = "reply.completed"
CONNECTION_OPENED = "connection.opened"
CONNECTION_CLOSED = "connection.closed"
REQUESTS_COUNTED = "requests.counted"
JOB_STARTED = "job.started"
JOB_FINISHED = "job.finished"
INTERNAL_TYPES: tuple[str, ...] = (
    REPLY_COMPLETED, CONNECTION_OPENED, CONNECTION_CLOSED, REQUESTS_COUNTED, JOB_STARTED, JOB_FINISHED,
)  # fmt: skip

# Events that say nothing about a user being active (an aggregate, a connection closing, a deletion).
_NOT_ACTIVITY = frozenset({REQUESTS_COUNTED, CONNECTION_CLOSED, "account.deleted", "user.deleted"})

Number = int


@dataclass
class Increments:
    """What one event adds: figures by dimension, names to set on the dimension's item (a model's provider), and
    what it adds to the open-connections gauge (not a per-day figure)."""

    figures: dict[str, dict[str, Number]] = field(default_factory=dict)
    names: dict[str, dict[str, str]] = field(default_factory=dict)
    open_connections: int = 0

    def add(self, dimension: str, **figures: Number | None) -> None:
        into = self.figures.setdefault(dimension, {})
        for name, value in figures.items():
            if value:
                into[name] = into.get(name, 0) + value

    def name(self, dimension: str, **names: str) -> None:
        self.names.setdefault(dimension, {}).update(names)

    @property
    def empty(self) -> bool:
        return not any(self.figures.values()) and not self.open_connections


def day_of(event: Event) -> str:
    """The UTC day the event happened (its `at`), whenever it is counted."""
    return event.at[:10]


def is_activity(event: Event) -> bool:
    """Whether the event makes its user one of the day's active users: not a failed audit action (a wrong password
    typed against someone's account is not that user's activity)."""
    if event.kind == "audit" and event.data.get("outcome") == "failure":
        return False
    return event.user_id is not None and event.type not in _NOT_ACTIVITY


def increments(event: Event) -> Increments:
    """What `event` adds to the counters (nothing for a type analytics does not count)."""
    counted = Increments()
    data = event.data
    match event.type:
        case "reply.completed":
            _reply(counted, data)
        case "user.registered":
            counted.add(STAGE, newUsers=1)
        case "conversation.created":
            counted.add(STAGE, conversations=1)
            if agent := _text(data.get("agentId")):
                counted.add(AGENT + agent, conversations=1)
        case "message.created":
            counted.add(STAGE, messages=1)
        case "channel.message.received":
            counted.add(CHANNEL + (_channel_type(data) or "unknown"), inbound=1)
        case "connection.opened":
            counted.add(STAGE, connectionsOpened=1)
            counted.open_connections = 1
        case "connection.closed":
            counted.add(STAGE, connectionsClosed=1)
            counted.open_connections = -1
        case "requests.counted":
            counted.add(STAGE, requests=_int(data.get("requests")), errors=_int(data.get("errors")))
        case "job.started":
            counted.add(STAGE, jobsStarted=1)
        case "job.finished":
            failed = data.get("status") == "failed"
            counted.add(STAGE, jobsFinished=1, jobsFailed=1 if failed else 0)
    return counted


def _reply(counted: Increments, data: Mapping[str, Any]) -> None:
    failed = bool(data.get("failed"))
    tokens_in, tokens_out = _int(data.get("inputTokens")), _int(data.get("outputTokens"))
    cost = pico_dollars(_decimal(data.get("cost")))
    latency = data.get("latencyMs")
    ttft = data.get("timeToFirstTokenMs")
    timing = {
        "latencyMsSum": _int(latency), "latencyCount": 1 if isinstance(latency, int) else 0,
        "ttftMsSum": _int(ttft), "ttftCount": 1 if isinstance(ttft, int) else 0,
    }  # fmt: skip
    figures = {"replies": 1, "failures": 1 if failed else 0, "inputTokens": tokens_in, "outputTokens": tokens_out}
    counted.add(STAGE, **figures, costPicoUsd=cost, **timing)
    provider, model = _text(data.get("provider")) or "unknown", _text(data.get("model")) or "unknown"
    counted.add(f"{MODEL}{provider}#{model}", **figures, costPicoUsd=cost, **timing)
    counted.name(f"{MODEL}{provider}#{model}", provider=provider, model=model)
    if agent := _text(data.get("agentId")):
        counted.add(AGENT + agent, replies=1, citations=_int(data.get("citations")), failures=1 if failed else 0)
    if channel := _text(data.get("channel")):
        counted.add(CHANNEL + channel, answered=0 if failed else 1, failed=1 if failed else 0)
    length = _int(data.get("messageCount"))
    # A reply adds two messages (the user's and its own): the edges in (length - 2, length] were reached now.
    for edge in LENGTH_EDGES:
        if length - 2 < edge <= length:
            counted.add(f"{LENGTH}{edge}", conversations=1)


# Cost is counted in whole pico-dollars: integers add exactly everywhere (a catalog price per million tokens times
# one token is a few nano-dollars), where decimal ADDs would depend on how each store formats small numbers.
PICO = Decimal(10) ** 12


def pico_dollars(amount: Decimal) -> int:
    return int((amount * PICO).to_integral_value())


def dollars(pico: Decimal | int) -> str:
    """Pico-dollars as exact decimal dollars (`"0.000123"`, `"0"`)."""
    text = format((Decimal(pico) / PICO).quantize(Decimal(1) / PICO), "f").rstrip("0").rstrip(".")
    return text or "0"


def _channel_type(data: Mapping[str, Any]) -> str | None:
    for key in ("channelType", "channel", "type", "platform"):
        value = data.get(key)
        if isinstance(value, Mapping):
            value = value.get("type")
        if text := _text(value):
            return text
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _decimal(value: object) -> Decimal:
    try:
        amount = Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
    return amount if amount.is_finite() and amount > 0 else Decimal(0)
