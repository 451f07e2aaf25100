"""Realtime's part in account deletion, on moto: the user's connections and room memberships go, page by page,
and no one else's."""

from __future__ import annotations

from typing import Any

from functions.realtime import jobs, store
from shared.aws import client
from shared.tables import REALTIME
from tests.integration.jobs_pages import delete_all


def connect(connection_id: str, user_id: str, rooms: list[str]) -> None:
    store.put_connection(connection_id, user_id, {"userId": user_id})
    connection = store.get_connection(connection_id)
    assert connection is not None
    for room in rooms:
        store.join_room(connection, room)


def query(partition: str, index: str | None = None) -> list[dict[str, Any]]:
    key = "gsi1pk" if index else "pk"
    arguments: dict[str, Any] = {
        "TableName": REALTIME.name_from_env(),
        "KeyConditionExpression": f"{key} = :pk",
        "ExpressionAttributeValues": {":pk": {"S": partition}},
    }
    if index:
        arguments["IndexName"] = index
    items: list[dict[str, Any]] = client("dynamodb").query(**arguments)["Items"]
    return items


def test_deletion_pages_remove_the_users_connections_and_memberships_only(aws: None) -> None:
    for number in range(12):
        connect(f"ada-{number}", "ada", ["room-1", "room-2"] if number % 2 else ["room-1"])
    connect("eve-0", "eve", ["room-1", "room-2"])

    deleted, pages = delete_all(jobs.delete_page, "ada", limit=50)  # five connections a page
    assert pages == 3
    assert deleted == 12 + 2 * (6 * 2 + 6 * 1)  # each connection, and each membership both ways

    assert query("USER#ada", index="gsi1") == []
    assert all(query(f"CONN#ada-{number}") == [] for number in range(12))
    for room in ("room-1", "room-2"):
        assert [item["sk"]["S"] for item in query(f"ROOM#{room}")] == ["CONN#eve-0"]
    assert len(query("CONN#eve-0")) == 3
    assert jobs.delete_page("ada", None, 50).deleted == 0
