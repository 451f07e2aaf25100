"""The realtime table: connections, their rooms, and each room's members.

Items (single-table design):
- `CONN#<id>` / `META`: the connection, its user and verified principal; `gsi1pk` `USER#<id>` lists a user's.
- `CONN#<id>` / `ROOM#<conversationId>`: a room the connection joined, so `$disconnect` can leave them all.
- `ROOM#<conversationId>` / `CONN#<id>`: a room's member, so a room is one Query.
Every item expires with its connection (API Gateway closes any connection after 2 h); TTL deletion is late,
so every read filters expired items.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shared.aws import client, delete_items
from shared.tables import REALTIME

CONNECTION_LIFETIME_SECONDS = 2 * 60 * 60  # API Gateway's maximum WebSocket connection duration


@dataclass(frozen=True)
class Connection:
    connection_id: str
    user_id: str
    principal: dict[str, str]
    expires_at: int


@dataclass(frozen=True)
class Member:
    connection_id: str
    user_id: str


@dataclass(frozen=True)
class Departure:
    """A removed connection: whose it was (None if it was already gone) and the rooms it was in."""

    user_id: str | None
    rooms: list[str]


def _table() -> str:
    return REALTIME.name_from_env()


def _now() -> int:
    return int(time.time())


def put_connection(
    connection_id: str, user_id: str, principal: dict[str, str], connected_at: int | None = None
) -> None:
    expires_at = (connected_at or _now()) + CONNECTION_LIFETIME_SECONDS
    client("dynamodb").put_item(
        TableName=_table(),
        Item={
            "pk": {"S": f"CONN#{connection_id}"},
            "sk": {"S": "META"},
            "gsi1pk": {"S": f"USER#{user_id}"},
            "gsi1sk": {"S": f"CONN#{connection_id}"},
            "userId": {"S": user_id},
            "principal": {"M": {key: {"S": value} for key, value in principal.items()}},
            "ttl": {"N": str(expires_at)},
        },
    )


def get_connection(connection_id: str) -> Connection | None:
    item = (
        client("dynamodb")
        .get_item(
            TableName=_table(), Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": "META"}}, ConsistentRead=True
        )
        .get("Item")
    )
    if item is None or int(item["ttl"]["N"]) <= _now():
        return None
    principal = {key: value["S"] for key, value in item.get("principal", {}).get("M", {}).items()}
    return Connection(connection_id, item["userId"]["S"], principal, int(item["ttl"]["N"]))


def user_connections(user_id: str) -> list[str]:
    items = _query(
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user_id}"}},
    )
    return [item["gsi1sk"]["S"].removeprefix("CONN#") for item in items]


def join_room(connection: Connection, room_id: str) -> None:
    """Record the membership both ways, in one transaction, expiring with the connection."""
    common = {"userId": {"S": connection.user_id}, "ttl": {"N": str(connection.expires_at)}}
    client("dynamodb").transact_write_items(
        TransactItems=[
            {"Put": {"TableName": _table(), "Item": {
                "pk": {"S": f"ROOM#{room_id}"}, "sk": {"S": f"CONN#{connection.connection_id}"}, **common}}},
            {"Put": {"TableName": _table(), "Item": {
                "pk": {"S": f"CONN#{connection.connection_id}"}, "sk": {"S": f"ROOM#{room_id}"}, **common}}},
        ]
    )  # fmt: skip


def leave_room(connection_id: str, room_id: str) -> None:
    keys = (("ROOM#" + room_id, "CONN#" + connection_id), ("CONN#" + connection_id, "ROOM#" + room_id))
    client("dynamodb").transact_write_items(
        TransactItems=[
            {"Delete": {"TableName": _table(), "Key": {"pk": {"S": pk}, "sk": {"S": sk}}}} for pk, sk in keys
        ]
    )


def room_members(room_id: str) -> list[Member]:
    items = _query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :conn)",
        ExpressionAttributeValues={":pk": {"S": f"ROOM#{room_id}"}, ":conn": {"S": "CONN#"}},
    )
    return [Member(item["sk"]["S"].removeprefix("CONN#"), item["userId"]["S"]) for item in items]


def is_member(connection_id: str, room_id: str) -> bool:
    item = (
        client("dynamodb")
        .get_item(TableName=_table(), Key={"pk": {"S": f"CONN#{connection_id}"}, "sk": {"S": f"ROOM#{room_id}"}})
        .get("Item")
    )
    return item is not None and int(item["ttl"]["N"]) > _now()


def connection_rooms(connection_id: str) -> list[str]:
    items = _query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :room)",
        ExpressionAttributeValues={":pk": {"S": f"CONN#{connection_id}"}, ":room": {"S": "ROOM#"}},
    )
    return [item["sk"]["S"].removeprefix("ROOM#") for item in items]


def remove_connection(connection_id: str) -> Departure:
    """Delete the connection and every membership of it (expired ones included)."""
    items = _query(
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"CONN#{connection_id}"}},
        include_expired=True,
    )
    user_id = next((item["userId"]["S"] for item in items if item["sk"]["S"] == "META"), None)
    rooms = [item["sk"]["S"].removeprefix("ROOM#") for item in items if item["sk"]["S"].startswith("ROOM#")]
    keys = [{"pk": item["pk"], "sk": item["sk"]} for item in items]
    keys += [{"pk": {"S": f"ROOM#{room}"}, "sk": {"S": f"CONN#{connection_id}"}} for room in rooms]
    delete_items(_table(), keys)
    return Departure(user_id, rooms)


def remove_user_connections_page(user_id: str, *, limit: int) -> tuple[int, bool]:
    """Delete up to `limit` of the user's connections (expired ones included) with every membership of theirs,
    both ways, in shared batches; returns how many items went and whether connections are left."""
    page = client("dynamodb").query(
        TableName=_table(), IndexName="gsi1", KeyConditionExpression="gsi1pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user_id}"}}, Limit=limit,
    )  # fmt: skip
    keys: list[dict[str, Any]] = []
    for connection in page.get("Items", []):
        connection_id = connection["gsi1sk"]["S"].removeprefix("CONN#")
        items = _query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"CONN#{connection_id}"}},
            include_expired=True,
        )
        rooms = [item["sk"]["S"].removeprefix("ROOM#") for item in items if item["sk"]["S"].startswith("ROOM#")]
        keys += [{"pk": item["pk"], "sk": item["sk"]} for item in items]
        keys += [{"pk": {"S": f"ROOM#{room}"}, "sk": {"S": f"CONN#{connection_id}"}} for room in rooms]
    delete_items(_table(), keys)
    return len(keys), "LastEvaluatedKey" in page


def _query(*, include_expired: bool = False, **arguments: Any) -> list[dict[str, Any]]:
    dynamodb = client("dynamodb")
    items: list[dict[str, Any]] = []
    page: dict[str, Any] = {}
    while True:
        page = dynamodb.query(TableName=_table(), **arguments, **page)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            break
        page = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    if include_expired:
        return items
    now = _now()
    return [item for item in items if "ttl" not in item or int(item["ttl"]["N"]) > now]
