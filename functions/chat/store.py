"""The chat context's storage: usage records, daily usage totals, and the counters behind rate limits.

Counters are single DynamoDB items changed with atomic `ADD` under a condition, so a limit holds however many
requests race for it. Costs are stored as whole nano-dollars (`costNanoUsd`), so every sum is exact integer
arithmetic; callers see `Decimal` dollars.

Items (pk / sk):
  USER#<id> / USAGE#<time>#<id>        one reply's usage (provider, model, tokens, cost, latency, time to first token)
  USER#<id> / DAY#<date>#<model>       a day's totals per model, for usage statistics
  LIMIT#<id> / WINDOW#<start>          the user's requests, tokens and cost in one limit window
  STAGE / COST#<date>                  the whole stage's cost on one day, for its ceiling
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.aws import client, delete_items
from shared.tables import CHAT

USAGE_RETENTION_DAYS = 400


@dataclass(frozen=True)
class UsageEntry:
    user_id: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal
    latency_ms: int
    time_to_first_token_ms: int | None
    conversation_id: str
    message_id: str
    status: str  # complete, incomplete or failed


@dataclass(frozen=True)
class WindowCounts:
    requests: int
    tokens: int
    cost_usd: Decimal


@dataclass(frozen=True)
class DailyTotal:
    day: str
    model: str
    provider: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    latency_ms_total: int


class LimitRefusedError(Exception):
    """The window's counter refused one more request: `counts` says which limit is full."""

    def __init__(self, counts: WindowCounts) -> None:
        super().__init__("limit reached")
        self.counts = counts


def _table() -> str:
    return CHAT.name_from_env()


NANO = Decimal(10) ** 9


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _nano(dollars: Decimal) -> int:
    return int(dollars * NANO)


def _dollars(item: dict[str, Any], name: str = "costNanoUsd") -> Decimal:
    return Decimal(item.get(name, {}).get("N", "0")) / NANO


# Rate-limit windows --------------------------------------------------------------------------------------


def count_request(
    user_id: str, window_start: int, window_end: int, *, max_requests: int, max_tokens: int, max_cost: Decimal
) -> None:
    """Count one request in the user's window, only while every limit of the window still has room."""
    try:
        client("dynamodb").update_item(
            TableName=_table(),
            Key={"pk": {"S": f"LIMIT#{user_id}"}, "sk": {"S": f"WINDOW#{window_start}"}},
            UpdateExpression="ADD requests :one SET #ttl = :expires",
            ConditionExpression=(
                "(attribute_not_exists(requests) OR requests < :max_requests)"
                " AND (attribute_not_exists(tokens) OR tokens < :max_tokens)"
                " AND (attribute_not_exists(costNanoUsd) OR costNanoUsd < :max_cost)"
            ),
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={
                ":one": _n(1),
                ":expires": _n(window_end + 3600),
                ":max_requests": _n(max_requests),
                ":max_tokens": _n(max_tokens),
                ":max_cost": _n(_nano(max_cost)),
            },
        )
    except client("dynamodb").exceptions.ConditionalCheckFailedException:
        raise LimitRefusedError(window_counts(user_id, window_start)) from None


def window_counts(user_id: str, window_start: int) -> WindowCounts:
    item = (
        client("dynamodb")
        .get_item(TableName=_table(), Key={"pk": {"S": f"LIMIT#{user_id}"}, "sk": {"S": f"WINDOW#{window_start}"}})
        .get("Item", {})
    )
    return WindowCounts(
        requests=int(item.get("requests", {}).get("N", 0)),
        tokens=int(item.get("tokens", {}).get("N", 0)),
        cost_usd=_dollars(item),
    )


def spend(user_id: str, window_start: int, day: date, tokens: int, cost: Decimal) -> None:
    """Add what a reply used to the user's window and to the stage's day."""
    dynamodb = client("dynamodb")
    dynamodb.update_item(
        TableName=_table(),
        Key={"pk": {"S": f"LIMIT#{user_id}"}, "sk": {"S": f"WINDOW#{window_start}"}},
        UpdateExpression="ADD tokens :tokens, costNanoUsd :cost",
        ExpressionAttributeValues={":tokens": _n(tokens), ":cost": _n(_nano(cost))},
    )
    dynamodb.update_item(
        TableName=_table(),
        Key={"pk": {"S": "STAGE"}, "sk": {"S": f"COST#{day.isoformat()}"}},
        UpdateExpression="ADD costNanoUsd :cost SET #ttl = :expires",
        ExpressionAttributeNames={"#ttl": "ttl"},
        ExpressionAttributeValues={":cost": _n(_nano(cost)), ":expires": _n(int(time.time()) + 3 * 86400)},
    )


def stage_cost(day: date) -> Decimal:
    item = (
        client("dynamodb")
        .get_item(TableName=_table(), Key={"pk": {"S": "STAGE"}, "sk": {"S": f"COST#{day.isoformat()}"}})
        .get("Item", {})
    )
    return _dollars(item)


# Usage ---------------------------------------------------------------------------------------------------


def record_usage(entry: UsageEntry, moment: datetime, record_id: str) -> None:
    """Keep one reply's usage and add it to the day's totals for its model."""
    dynamodb = client("dynamodb")
    item: dict[str, Any] = {
        "pk": {"S": f"USER#{entry.user_id}"},
        "sk": {"S": f"USAGE#{moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{record_id}"},
        "provider": {"S": entry.provider},
        "model": {"S": entry.model},
        "inputTokens": _n(entry.input_tokens),
        "outputTokens": _n(entry.output_tokens),
        "cacheReadTokens": _n(entry.cache_read_tokens),
        "cacheWriteTokens": _n(entry.cache_write_tokens),
        "costNanoUsd": _n(_nano(entry.cost_usd)),
        "latencyMs": _n(entry.latency_ms),
        "conversationId": {"S": entry.conversation_id},
        "messageId": {"S": entry.message_id},
        "status": {"S": entry.status},
        "ttl": _n(int(moment.timestamp()) + USAGE_RETENTION_DAYS * 86400),
    }
    if entry.time_to_first_token_ms is not None:
        item["timeToFirstTokenMs"] = _n(entry.time_to_first_token_ms)
    dynamodb.put_item(TableName=_table(), Item=item)
    dynamodb.update_item(
        TableName=_table(),
        Key={"pk": {"S": f"USER#{entry.user_id}"}, "sk": {"S": f"DAY#{moment.date().isoformat()}#{entry.model}"}},
        UpdateExpression=(
            "ADD requests :one, inputTokens :input, outputTokens :output, costNanoUsd :cost, latencyMsTotal :latency "
            "SET provider = :provider, #ttl = :expires"
        ),
        ExpressionAttributeNames={"#ttl": "ttl"},
        ExpressionAttributeValues={
            ":one": _n(1),
            ":input": _n(entry.input_tokens),
            ":output": _n(entry.output_tokens),
            ":cost": _n(_nano(entry.cost_usd)),
            ":latency": _n(entry.latency_ms),
            ":provider": {"S": entry.provider},
            ":expires": _n(int(moment.timestamp()) + USAGE_RETENTION_DAYS * 86400),
        },
    )


def daily_totals(user_id: str, first_day: date, last_day: date) -> list[DailyTotal]:
    """The user's per-day, per-model totals from `first_day` to `last_day`, both included (one Query)."""
    totals: list[DailyTotal] = []
    paginator = client("dynamodb").get_paginator("query")
    pages = paginator.paginate(
        TableName=_table(),
        KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
        ExpressionAttributeValues={
            ":pk": {"S": f"USER#{user_id}"},
            ":first": {"S": f"DAY#{first_day.isoformat()}"},
            ":last": {"S": f"DAY#{(last_day + timedelta(days=1)).isoformat()}"},
        },
    )
    for page in pages:
        for item in page["Items"]:
            _, day, model = item["sk"]["S"].split("#", 2)
            totals.append(
                DailyTotal(
                    day=day,
                    model=model,
                    provider=item["provider"]["S"],
                    requests=int(item["requests"]["N"]),
                    input_tokens=int(item["inputTokens"]["N"]),
                    output_tokens=int(item["outputTokens"]["N"]),
                    cost_usd=_dollars(item),
                    latency_ms_total=int(item["latencyMsTotal"]["N"]),
                )
            )
    return totals


def delete_user_data(user_id: str) -> int:
    """Delete the user's usage records, daily totals and limit windows; returns how many items went."""
    dynamodb = client("dynamodb")
    deleted = 0
    for pk in (f"USER#{user_id}", f"LIMIT#{user_id}"):
        for page in dynamodb.get_paginator("query").paginate(
            TableName=_table(),
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ProjectionExpression="pk, sk",
        ):
            delete_items(_table(), page["Items"])
            deleted += len(page["Items"])
    return deleted


def today() -> date:
    return datetime.now(UTC).date()


def now_utc() -> datetime:
    return datetime.now(UTC)
