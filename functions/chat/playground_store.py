"""The playground's storage: one item per comparison, under its user's own partition of the chat table.

Items (pk / sk):
  PLAYGROUND#<userId> / SESSION#<sessionId>   a comparison: prompt, system prompt, each model's response, metrics
                                              and status (`results`, JSON), total cost; session ids are ULIDs, so
                                              the partition read backwards is newest first

A session of another user is simply not in the caller's partition. A DynamoDB item stops at 400 KB: six long
responses could pass it, so each response keeps at most its share of `SESSION_BYTES` (what a prompt leaves),
marked `truncated`; the stream itself always carried every response whole.
"""

from __future__ import annotations

import json
from typing import Any

from shared.aws import client, delete_partition_page
from shared.errors import NotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.tables import CHAT

# Well clear of DynamoDB's 400 KB, leaving room for the keys, metrics and JSON punctuation.
SESSION_BYTES = 350_000


def _table() -> str:
    return CHAT.name_from_env()


def _partition(user_id: str) -> str:
    return f"PLAYGROUND#{user_id}"


def _key(user_id: str, session_id: str) -> dict[str, Any]:
    return {"pk": {"S": _partition(user_id)}, "sk": {"S": f"SESSION#{session_id}"}}


def fit_responses(session: dict[str, Any]) -> dict[str, Any]:
    """`session` with each result's response cut (marked `truncated`) to its share of what the prompt and system
    prompt leave of `SESSION_BYTES`, sizes counted as they are stored (JSON)."""
    results = session["results"]
    used = _stored_bytes(session["prompt"]) + _stored_bytes(session.get("systemPrompt") or "")
    share = max(0, SESSION_BYTES - used) // max(1, len(results))
    fitted = [
        {**result, "response": _cut(result["response"], share), "truncated": True}
        if _stored_bytes(result["response"]) > share
        else result
        for result in results
    ]
    return {**session, "results": fitted}


def _stored_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


def _cut(text: str, max_bytes: int) -> str:
    """The longest-ish start of `text` whose stored form fits `max_bytes` (escapes make the size uneven)."""
    while text and (size := _stored_bytes(text)) > max_bytes:
        text = text[: min(len(text) - 1, len(text) * max_bytes // size)]
    return text


def put_session(user_id: str, session: dict[str, Any]) -> None:
    """Store a finished comparison (in the API's shape: `sessionId`, `prompt`, `results`, ...)."""
    fitted = fit_responses(session)
    item = {
        **_key(user_id, fitted["sessionId"]),
        "session": {"S": json.dumps(fitted, separators=(",", ":"), ensure_ascii=False, default=str)},
    }
    client("dynamodb").put_item(TableName=_table(), Item=item)


def _session_of(item: dict[str, Any]) -> dict[str, Any]:
    session: dict[str, Any] = json.loads(item["session"]["S"])
    return session


def get_session(user_id: str, session_id: str) -> dict[str, Any]:
    item = client("dynamodb").get_item(TableName=_table(), Key=_key(user_id, session_id)).get("Item")
    if item is None:
        raise NotFound("Playground session not found", code="session_not_found")
    return _session_of(item)


def list_sessions(user_id: str, *, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """The user's comparisons, newest first, a page at a time."""
    partition = _partition(user_id)
    arguments: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sessions)",
        "ExpressionAttributeValues": {":pk": {"S": partition}, ":sessions": {"S": "SESSION#"}},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    start = decode_cursor(cursor, partition={"pk": partition}, sort_prefixes={"sk": "SESSION#"})
    if start is not None:
        arguments["ExclusiveStartKey"] = start
    page = client("dynamodb").query(**arguments)
    return [_session_of(item) for item in page["Items"]], encode_cursor(page.get("LastEvaluatedKey"))


def delete_session(user_id: str, session_id: str) -> None:
    dynamodb = client("dynamodb")
    try:
        dynamodb.delete_item(
            TableName=_table(), Key=_key(user_id, session_id), ConditionExpression="attribute_exists(pk)"
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        raise NotFound("Playground session not found", code="session_not_found") from None


def export_sessions_page(user_id: str, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the user's comparisons for their export, as `GET /ai/playground/sessions` answers them."""
    return list_sessions(user_id, limit=limit, cursor=cursor)


def delete_user_items_page(user_id: str, limit: int) -> tuple[int, bool]:
    """Delete up to `limit` of the user's playground items (account deletion); returns how many went and whether
    more are left."""
    return delete_partition_page(_table(), _partition(user_id), limit=limit)
