"""The usage context's storage: one item per reply's usage and a day's totals per model, in the chat table.

The items live beside chat's rate-limit counters (`shared.tables.CHAT`), under the user's own partition; this
module is the only code that reads or writes them. Costs are whole nano-dollars (`shared.money`).

Items (pk / sk):
  USER#<id> / USAGE#<time>#<id>        one reply's usage (provider, model, tokens, cost, latency, time to first token)
  USER#<id> / DAY#<date>#<model>       a day's totals per model, for usage statistics
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from functions.usage.models import ReplyUsage
from shared.aws import client, delete_partition_page, query_page
from shared.money import from_nano_usd, to_nano_usd
from shared.tables import CHAT

USAGE_RETENTION_DAYS = 400


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


def _table() -> str:
    return CHAT.name_from_env()


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def record_usage(usage: ReplyUsage, moment: datetime, record_id: str) -> None:
    """Keep one reply's usage and add it to the day's totals for its model."""
    dynamodb = client("dynamodb")
    expires = _n(int(moment.timestamp()) + USAGE_RETENTION_DAYS * 86400)
    item: dict[str, Any] = {
        "pk": {"S": f"USER#{usage.user_id}"},
        "sk": {"S": f"USAGE#{moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{record_id}"},
        "provider": {"S": usage.provider},
        "model": {"S": usage.model},
        "inputTokens": _n(usage.input_tokens),
        "outputTokens": _n(usage.output_tokens),
        "cacheReadTokens": _n(usage.cache_read_tokens),
        "cacheWriteTokens": _n(usage.cache_write_tokens),
        "costNanoUsd": _n(to_nano_usd(usage.cost_usd)),
        "latencyMs": _n(usage.latency_ms),
        "messageId": {"S": usage.message_id},
        "status": {"S": usage.status},
        "source": {"S": usage.source},
        "ttl": expires,
    }
    if usage.conversation_id is not None:
        item["conversationId"] = {"S": usage.conversation_id}
    if usage.time_to_first_token_ms is not None:
        item["timeToFirstTokenMs"] = _n(usage.time_to_first_token_ms)
    dynamodb.put_item(TableName=_table(), Item=item)
    dynamodb.update_item(
        TableName=_table(),
        Key={"pk": {"S": f"USER#{usage.user_id}"}, "sk": {"S": f"DAY#{moment.date().isoformat()}#{usage.model}"}},
        UpdateExpression=(
            "ADD requests :one, inputTokens :input, outputTokens :output, costNanoUsd :cost, latencyMsTotal :latency "
            "SET provider = :provider, #ttl = :expires"
        ),
        ExpressionAttributeNames={"#ttl": "ttl"},
        ExpressionAttributeValues={
            ":one": _n(1),
            ":input": _n(usage.input_tokens),
            ":output": _n(usage.output_tokens),
            ":cost": _n(to_nano_usd(usage.cost_usd)),
            ":latency": _n(usage.latency_ms),
            ":provider": {"S": usage.provider},
            ":expires": expires,
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
                    cost_usd=from_nano_usd(item["costNanoUsd"]["N"]),
                    latency_ms_total=int(item["latencyMsTotal"]["N"]),
                )
            )
    return totals


def usage_page(user_id: str, *, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the user's usage records and daily totals, oldest day first, JSON-ready (camelCase, the cost in
    dollars as a decimal string, as the API shows money); and the cursor after it."""
    items, next_cursor = query_page(_table(), f"USER#{user_id}", limit=limit, cursor=cursor)
    return [_exported(item) for item in items], next_cursor


def delete_usage_page(user_id: str, *, limit: int) -> tuple[int, bool]:
    """Delete up to `limit` of the user's usage records and daily totals; returns how many went and whether
    more are left."""
    return delete_partition_page(_table(), f"USER#{user_id}", limit=limit)


def _exported(item: dict[str, Any]) -> dict[str, Any]:
    kind, rest = item["sk"]["S"].split("#", 1)
    fields: dict[str, Any] = {}
    for name, value in item.items():
        if name in ("pk", "sk", "ttl"):
            continue
        if name == "costNanoUsd":
            fields["cost"] = format(from_nano_usd(value["N"]), "f")
        elif "N" in value:
            fields[name] = int(value["N"])
        else:
            fields[name] = value["S"]
    if kind == "DAY":
        day, model = rest.split("#", 1)
        return {"kind": "day", "day": day, "model": model, **fields}
    at, record_id = rest.rsplit("#", 1)
    return {"kind": "reply", "id": record_id, "at": at, **fields}
