"""The chat context's storage: the counters behind rate limits, in the chat table.

Counters are single DynamoDB items changed with atomic `ADD` under a condition, so a limit holds however many
requests race for it. Costs are whole nano-dollars (`shared.money`). The same table keeps the usage context's
records (`functions.usage.store`), under the user's own partition.

Items (pk / sk):
  LIMIT#<id> / WINDOW#<start>          the user's requests, tokens and cost in one limit window
  STAGE / COST#<date>                  the whole stage's cost on one day, for its ceiling
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from shared.aws import client, delete_partition
from shared.money import from_nano_usd, to_nano_usd
from shared.tables import CHAT


@dataclass(frozen=True)
class WindowCounts:
    requests: int
    tokens: int
    cost_usd: Decimal


class LimitRefusedError(Exception):
    """The window's counter refused one more request: `counts` says which limit is full."""

    def __init__(self, counts: WindowCounts) -> None:
        super().__init__("limit reached")
        self.counts = counts


def _table() -> str:
    return CHAT.name_from_env()


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _dollars(item: dict[str, Any]) -> Decimal:
    return from_nano_usd(item.get("costNanoUsd", {}).get("N", "0"))


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
                ":max_cost": _n(to_nano_usd(max_cost)),
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
        ExpressionAttributeValues={":tokens": _n(tokens), ":cost": _n(to_nano_usd(cost))},
    )
    dynamodb.update_item(
        TableName=_table(),
        Key={"pk": {"S": "STAGE"}, "sk": {"S": f"COST#{day.isoformat()}"}},
        UpdateExpression="ADD costNanoUsd :cost SET #ttl = :expires",
        ExpressionAttributeNames={"#ttl": "ttl"},
        ExpressionAttributeValues={":cost": _n(to_nano_usd(cost)), ":expires": _n(int(time.time()) + 3 * 86400)},
    )


def stage_cost(day: date) -> Decimal:
    item = (
        client("dynamodb")
        .get_item(TableName=_table(), Key={"pk": {"S": "STAGE"}, "sk": {"S": f"COST#{day.isoformat()}"}})
        .get("Item", {})
    )
    return _dollars(item)


def delete_limit_windows(user_id: str) -> int:
    """Delete the user's limit windows; returns how many items went."""
    return delete_partition(_table(), f"LIMIT#{user_id}")
