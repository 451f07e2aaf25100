"""The chat context's storage: the counters behind rate limits, in the chat table.

Counters are single DynamoDB items changed with atomic `ADD` under a condition, so a limit holds however many
requests race for it. Costs are whole nano-dollars (`shared.money`). The same table keeps the usage context's
records (`functions.usage.store`), under the user's own partition.

Items (pk / sk):
  LIMIT#<id> / WINDOW#<start>          the user's requests, tokens and cost in one limit window
  STAGE / COST#<date>                  the whole stage's cost on one day, for its ceiling
  REPLY#<streamId> / RECORD, EVENTS#<lastSeq>   a reply's event log, for resuming and cancelling from any
                                       container (`functions.chat.eventlog`)
  TICKET#<sha256> / TICKET             a stream ticket: its principal and path (`functions.chat.tickets`)
  PLAYGROUND#<userId> / SESSION#<id>   a playground comparison (functions.chat.playground_store)
  ENHANCE#<userId> / SESSION#<id>      a text-enhancement session; ENHANCEUSAGE#<userId> / DAY#<date>#<fieldType>
                                       its user's usage counters (both in `functions.chat.enhance_store`)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from shared.aws import client, delete_partition_page
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


def count_requests(
    user_id: str,
    window_start: int,
    window_end: int,
    *,
    requests: int,
    max_requests: int,
    max_tokens: int,
    max_cost: Decimal,
) -> None:
    """Count `requests` requests in the user's window in one update, only while the window has room for all of
    them and its tokens and cost are not spent: all are counted, or none."""
    if requests < 1:
        raise ValueError("at least one request is counted")
    if requests > max_requests:  # more than a whole window holds: no counter state could admit them
        raise LimitRefusedError(window_counts(user_id, window_start))
    try:
        client("dynamodb").update_item(
            TableName=_table(),
            Key={"pk": {"S": f"LIMIT#{user_id}"}, "sk": {"S": f"WINDOW#{window_start}"}},
            UpdateExpression="ADD requests :count SET #ttl = :expires",
            ConditionExpression=(
                "(attribute_not_exists(requests) OR requests <= :room)"
                " AND (attribute_not_exists(tokens) OR tokens < :max_tokens)"
                " AND (attribute_not_exists(costNanoUsd) OR costNanoUsd < :max_cost)"
            ),
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={
                ":count": _n(requests),
                ":expires": _n(window_end + 3600),
                # Room for all of them: no more than `max_requests - requests` counted already.
                ":room": _n(max_requests - requests),
                ":max_tokens": _n(max_tokens),
                ":max_cost": _n(to_nano_usd(max_cost)),
            },
        )
    except client("dynamodb").exceptions.ConditionalCheckFailedException:
        raise LimitRefusedError(window_counts(user_id, window_start)) from None


def uncount_requests(user_id: str, window_start: int, requests: int) -> None:
    """Take back `requests` counted in the user's window (requests refused after they were counted)."""
    client("dynamodb").update_item(
        TableName=_table(),
        Key={"pk": {"S": f"LIMIT#{user_id}"}, "sk": {"S": f"WINDOW#{window_start}"}},
        UpdateExpression="ADD requests :count",
        ConditionExpression="attribute_exists(requests)",
        ExpressionAttributeValues={":count": _n(-requests)},
    )


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


def delete_limit_windows_page(user_id: str, *, limit: int) -> tuple[int, bool]:
    """Delete up to `limit` of the user's limit windows; returns how many went and whether more are left."""
    return delete_partition_page(_table(), f"LIMIT#{user_id}", limit=limit)


# Tool-call approvals -------------------------------------------------------------------------------------
# APPROVAL#<messageId> / CALL#<toolCallId>   a tool call waiting for its user's answer (status pending, approved,
#                                            refused); the reply polls it, whichever container the answer reaches


class ApprovalNotPending(Exception):
    """The approval is not the caller's to answer: `found` is None (unknown, or someone else's) or its status."""

    def __init__(self, found: str | None) -> None:
        super().__init__("approval not pending")
        self.found = found


def _approval_key(message_id: str, tool_call_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"APPROVAL#{message_id}"}, "sk": {"S": f"CALL#{tool_call_id}"}}


def put_pending_approval(message_id: str, tool_call_id: str, user_id: str, tool_name: str, expires_at: int) -> None:
    client("dynamodb").put_item(
        TableName=_table(),
        Item={
            **_approval_key(message_id, tool_call_id),
            "userId": {"S": user_id},
            "toolName": {"S": tool_name},
            "status": {"S": "pending"},
            "ttl": _n(expires_at),
        },
    )


def approval_status(message_id: str, tool_call_id: str) -> str | None:
    """pending, approved or refused (None: no such approval). A strongly consistent read: the answer may have
    been written a moment ago by another container."""
    item = (
        client("dynamodb")
        .get_item(TableName=_table(), Key=_approval_key(message_id, tool_call_id), ConsistentRead=True)
        .get("Item")
    )
    return item["status"]["S"] if item else None


def _settle_pending_approval(message_id: str, tool_call_id: str, status: str, owner: str | None = None) -> bool:
    """Move a pending approval (owned by `owner`, when named) to `status`; False if it was not pending."""
    condition, values = "#status = :pending", {":status": {"S": status}, ":pending": {"S": "pending"}}
    if owner is not None:
        condition, values[":owner"] = f"attribute_exists(pk) AND userId = :owner AND {condition}", {"S": owner}
    dynamodb = client("dynamodb")
    try:
        dynamodb.update_item(
            TableName=_table(),
            Key=_approval_key(message_id, tool_call_id),
            UpdateExpression="SET #status = :status",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return False
    return True


def answer_approval(message_id: str, tool_call_id: str, user_id: str, *, approved: bool) -> None:
    """Record the answer of a pending approval owned by `user_id`; `ApprovalNotPending` otherwise."""
    if _settle_pending_approval(message_id, tool_call_id, "approved" if approved else "refused", owner=user_id):
        return
    item = client("dynamodb").get_item(TableName=_table(), Key=_approval_key(message_id, tool_call_id)).get("Item")
    owned = item is not None and item["userId"]["S"] == user_id
    raise ApprovalNotPending(item["status"]["S"] if owned and item else None)


def expire_approval(message_id: str, tool_call_id: str) -> str:
    """Give up on a pending approval (a later answer is then a 409); returns its final status, which is the
    user's answer if it arrived just before."""
    if _settle_pending_approval(message_id, tool_call_id, "expired"):
        return "expired"
    return approval_status(message_id, tool_call_id) or "expired"
