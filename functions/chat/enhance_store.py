"""Text enhancement's storage, in the chat table, under the user's own partitions: a session of another user is
simply not found, and an account's items are a Query away. Costs are whole nano-dollars (`shared.money`).

Items (pk / sk):
  ENHANCE#<userId> / SESSION#<sessionId>        one session: its field type, text and rendered prompt, status
                                                (pending, streaming, completed, cancelled, failed), result, usage
                                                (costUsd: the reply's own decimal string) and timings; ttl 24 h
                                                after its creation
  ENHANCEUSAGE#<userId> / DAY#<date>#<fieldType> a day's enhancements of one field type: sessions, inputTokens,
                                                outputTokens, costNanoUsd, each added atomically
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.aws import client, delete_partition_page, query_page
from shared.money import from_nano_usd, to_nano_usd
from shared.tables import CHAT

SESSION_TTL_SECONDS = 24 * 3600
# A session still `streaming` this long after it started is one whose generation died with its container: a
# reply cannot run longer (the event log's deadline), so it is shown as failed.
GENERATION_DEADLINE_SECONDS = 900
USAGE_RETENTION_SECONDS = 100 * 86400
ENDED = frozenset({"completed", "cancelled", "failed"})


def _table() -> str:
    return CHAT.name_from_env()


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key(user_id: str, session_id: str) -> dict[str, Any]:
    return {"pk": _s(f"ENHANCE#{user_id}"), "sk": _s(f"SESSION#{session_id}")}


@dataclass(frozen=True)
class EnhanceSession:
    session_id: str
    user_id: str
    field_type: str
    text: str
    system: str
    prompt: str
    max_tokens: int
    model: str | None
    provider: str | None
    status: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    ttft_ms: int | None = None
    result: str = ""
    stop_reason: str | None = None
    served_model: str | None = None
    served_provider: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: Decimal | None = None

    @property
    def expires_at(self) -> datetime:
        return self.created_at + timedelta(seconds=SESSION_TTL_SECONDS)

    def expired(self, moment: datetime) -> bool:
        return moment >= self.expires_at

    def current_status(self, moment: datetime) -> str:
        """The status as a client should see it: a generation past any reply's deadline has failed."""
        deadline = timedelta(seconds=GENERATION_DEADLINE_SECONDS)
        if self.status == "streaming" and self.started_at is not None and moment - self.started_at > deadline:
            return "failed"
        return self.status

    def public(self, moment: datetime | None = None) -> dict[str, Any]:
        """The session as `GET /ai/session/{sessionId}` answers it (camelCase)."""
        usage = None
        if self.input_tokens is not None:
            usage = {
                "inputTokens": self.input_tokens,
                "outputTokens": self.output_tokens or 0,
                "cost": format(self.cost_usd or Decimal(0), "f"),
            }
        return {
            "sessionId": self.session_id,
            "fieldType": self.field_type,
            "text": self.text,
            "status": self.current_status(moment or now()),
            "result": self.result,
            "stopReason": self.stop_reason,
            "model": self.served_model or self.model,
            "provider": self.served_provider or self.provider,
            "usage": usage,
            "createdAt": timestamp(self.created_at),
            "startedAt": timestamp(self.started_at) if self.started_at else None,
            "completedAt": timestamp(self.completed_at) if self.completed_at else None,
            "ttftMs": self.ttft_ms,
            "expiresAt": timestamp(self.expires_at),
        }


def _item(session: EnhanceSession) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_key(session.user_id, session.session_id),
        "sessionId": _s(session.session_id),
        "userId": _s(session.user_id),
        "fieldType": _s(session.field_type),
        "text": _s(session.text),
        "system": _s(session.system),
        "prompt": _s(session.prompt),
        "maxTokens": _n(session.max_tokens),
        "status": _s(session.status),
        "createdAt": _s(timestamp(session.created_at)),
        "ttl": _n(int(session.expires_at.timestamp())),
    }
    if session.model:
        item["model"] = _s(session.model)
    if session.provider:
        item["provider"] = _s(session.provider)
    return item


def _session(item: dict[str, Any]) -> EnhanceSession:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    def number(name: str) -> int | None:
        return int(item[name]["N"]) if name in item else None

    def moment(name: str) -> datetime | None:
        value = text(name)
        return datetime.fromisoformat(value) if value else None

    created = moment("createdAt")
    assert created is not None
    return EnhanceSession(
        session_id=item["sessionId"]["S"],
        user_id=item["userId"]["S"],
        field_type=item["fieldType"]["S"],
        text=item["text"]["S"],
        system=item["system"]["S"],
        prompt=item["prompt"]["S"],
        max_tokens=int(item["maxTokens"]["N"]),
        model=text("model"),
        provider=text("provider"),
        status=item["status"]["S"],
        created_at=created,
        started_at=moment("startedAt"),
        completed_at=moment("completedAt"),
        ttft_ms=number("ttftMs"),
        result=text("result") or "",
        stop_reason=text("stopReason"),
        served_model=text("servedModel"),
        served_provider=text("servedProvider"),
        input_tokens=number("inputTokens"),
        output_tokens=number("outputTokens"),
        cost_usd=Decimal(item["costUsd"]["S"]) if "costUsd" in item else None,
    )


def put_session(session: EnhanceSession) -> None:
    client("dynamodb").put_item(TableName=_table(), Item=_item(session), ConditionExpression="attribute_not_exists(pk)")


def get_session(user_id: str, session_id: str) -> EnhanceSession | None:
    """The session, read strongly consistent (another container may have just moved it on); None if the user has
    no such session."""
    item = (
        client("dynamodb").get_item(TableName=_table(), Key=_key(user_id, session_id), ConsistentRead=True).get("Item")
    )
    return _session(item) if item else None


def _move(user_id: str, session_id: str, from_status: str, update: str, values: dict[str, Any] | None = None) -> bool:
    """Apply `update` if the session's status is `from_status`; False if it was not (or there is no session)."""
    dynamodb = client("dynamodb")
    try:
        dynamodb.update_item(
            TableName=_table(),
            Key=_key(user_id, session_id),
            UpdateExpression=update,
            ConditionExpression="#status = :from",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":from": _s(from_status), **(values or {})},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return False
    return True


def claim(user_id: str, session_id: str, started_at: datetime) -> bool:
    """Make the caller the session's one generator (pending → streaming); False if another reader was first."""
    return _move(
        user_id,
        session_id,
        "pending",
        "SET #status = :streaming, startedAt = :started",
        {":streaming": _s("streaming"), ":started": _s(timestamp(started_at))},
    )


def release_claim(user_id: str, session_id: str) -> None:
    """Give a claimed session back (streaming → pending), when its generation was refused before it began."""
    _move(user_id, session_id, "streaming", "SET #status = :pending REMOVE startedAt", {":pending": _s("pending")})


def cancel_pending(user_id: str, session_id: str, at: datetime) -> bool:
    """Cancel a session nobody has started (pending → cancelled); False if it was no longer pending."""
    return _move(
        user_id,
        session_id,
        "pending",
        "SET #status = :cancelled, completedAt = :at",
        {":cancelled": _s("cancelled"), ":at": _s(timestamp(at))},
    )


def mark_cancelled(user_id: str, session_id: str) -> bool:
    """Mark a generating session cancelled (streaming → cancelled); its generation stores its result after."""
    return _move(user_id, session_id, "streaming", "SET #status = :cancelled", {":cancelled": _s("cancelled")})


@dataclass(frozen=True)
class GenerationOutcome:
    status: str
    result: str
    stop_reason: str | None
    model: str | None
    provider: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    completed_at: datetime
    ttft_ms: int | None


def finish(user_id: str, session_id: str, outcome: GenerationOutcome) -> None:
    """Store what the generation produced. The status it ended with is kept unless the session was cancelled
    meanwhile (a cancel answers `cancelled` at once; the partial result arrives here)."""
    values: dict[str, Any] = {
        ":result": _s(outcome.result),
        ":input": _n(outcome.input_tokens),
        ":output": _n(outcome.output_tokens),
        # As the reply's `usage` event gave it (the catalog's exact price, its digits kept), so a replay says the same.
        ":cost": _s(format(outcome.cost_usd, "f")),
        ":completed": _s(timestamp(outcome.completed_at)),
    }
    sets = ["#result = :result", "inputTokens = :input", "outputTokens = :output", "costUsd = :cost",
            "completedAt = :completed"]  # fmt: skip
    for attribute, value in (
        ("stopReason", outcome.stop_reason),
        ("servedModel", outcome.model),
        ("servedProvider", outcome.provider),
    ):
        if value is not None:
            sets.append(f"{attribute} = :{attribute}")
            values[f":{attribute}"] = _s(value)
    if outcome.ttft_ms is not None:
        sets.append("ttftMs = :ttft")
        values[":ttft"] = _n(outcome.ttft_ms)
    dynamodb = client("dynamodb")
    names = {"#status": "status", "#result": "result"}
    try:
        dynamodb.update_item(
            TableName=_table(),
            Key=_key(user_id, session_id),
            UpdateExpression="SET " + ", ".join([*sets, "#status = :status"]),
            ConditionExpression="#status = :streaming",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={**values, ":status": _s(outcome.status), ":streaming": _s("streaming")},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        dynamodb.update_item(
            TableName=_table(),
            Key=_key(user_id, session_id),
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#result": "result"},
            ExpressionAttributeValues=values,
        )


# Usage by day and field type --------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageCounts:
    day: str
    field_type: str
    sessions: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


def add_usage(
    user_id: str, day: date, field_type: str, *, input_tokens: int, output_tokens: int, cost_usd: Decimal
) -> None:
    """Count one generated session and what it used in its day's counters for its field type."""
    client("dynamodb").update_item(
        TableName=_table(),
        Key={"pk": _s(f"ENHANCEUSAGE#{user_id}"), "sk": _s(f"DAY#{day.isoformat()}#{field_type}")},
        UpdateExpression=(
            "ADD sessions :one, inputTokens :input, outputTokens :output, costNanoUsd :cost SET #ttl = :expires"
        ),
        ExpressionAttributeNames={"#ttl": "ttl"},
        ExpressionAttributeValues={
            ":one": _n(1),
            ":input": _n(input_tokens),
            ":output": _n(output_tokens),
            ":cost": _n(to_nano_usd(cost_usd)),
            ":expires": _n(int(datetime.combine(day, datetime.min.time(), UTC).timestamp()) + USAGE_RETENTION_SECONDS),
        },
    )


def usage_since(user_id: str, first_day: date) -> list[UsageCounts]:
    """The user's counters from `first_day` on, oldest first: one Query (paged by DynamoDB past 1 MB)."""
    counts: list[UsageCounts] = []
    pages = (
        client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=_table(),
            KeyConditionExpression="pk = :pk AND sk >= :first",
            ExpressionAttributeValues={
                ":pk": _s(f"ENHANCEUSAGE#{user_id}"),
                ":first": _s(f"DAY#{first_day.isoformat()}"),
            },
        )
    )
    for page in pages:
        for item in page["Items"]:
            _, day, field_type = item["sk"]["S"].split("#", 2)
            counts.append(
                UsageCounts(
                    day=day,
                    field_type=field_type,
                    sessions=int(item["sessions"]["N"]),
                    input_tokens=int(item["inputTokens"]["N"]),
                    output_tokens=int(item["outputTokens"]["N"]),
                    cost_usd=from_nano_usd(item["costNanoUsd"]["N"]),
                )
            )
    return counts


# The account's items: export and deletion ------------------------------------------------------------------


def export_sessions_page(user_id: str, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the user's sessions as the GET route answers them, and the cursor of the next (None: the last)."""
    items, next_cursor = query_page(_table(), f"ENHANCE#{user_id}", limit=limit, cursor=cursor)
    return [_session(item).public() for item in items], next_cursor


def delete_user_items_page(user_id: str, limit: int) -> tuple[int, bool]:
    """Delete up to `limit` of the user's sessions, then of their usage counters; returns how many went and
    whether any are left. Safe to repeat: each call starts again from what is left."""
    deleted, more = delete_partition_page(_table(), f"ENHANCE#{user_id}", limit=limit)
    if more or deleted == limit:
        return deleted, True
    counters, more = delete_partition_page(_table(), f"ENHANCEUSAGE#{user_id}", limit=limit - deleted)
    return deleted + counters, more
