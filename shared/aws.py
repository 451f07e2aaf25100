"""boto3 clients made on first use and kept for the container's life (boto3 costs ~250 ms to import)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

BATCH_WRITE_ITEMS = 25  # DynamoDB's BatchWriteItem limit

_lock = threading.Lock()


@cache
def client(service: str, endpoint_url: str | None = None, signature_version: str | None = None) -> Any:
    """A boto3 client, one per service, endpoint and signature version; `AWS_ENDPOINT_URL` (local mode, tests)
    points it at the embedded fakes unless an `endpoint_url` is given (a WebSocket API's management endpoint).
    `signature_version="s3v4"` signs S3 links with Signature Version 4 (boto3's default for links is the older
    one, which newer regions refuse)."""
    with _lock:  # boto3's default session is not safe to build clients from concurrently
        import boto3
        from botocore.config import Config

        config = Config(signature_version=signature_version) if signature_version else None
        return boto3.client(service, endpoint_url=endpoint_url, config=config)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests that restart the fakes)."""
    client.cache_clear()


def delete_items(table: str, keys: Sequence[Mapping[str, Any]]) -> None:
    """Delete items by key, 25 a BatchWriteItem; what DynamoDB leaves unprocessed (throttling) is sent again
    after a growing pause."""
    dynamodb = client("dynamodb")
    for start in range(0, len(keys), BATCH_WRITE_ITEMS):
        pending: dict[str, Any] = {
            table: [{"DeleteRequest": {"Key": key}} for key in keys[start : start + BATCH_WRITE_ITEMS]]
        }
        pause = 0.05
        while pending := dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}:
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def delete_partition(table: str, partition: str) -> int:
    """Delete every item whose `pk` is `partition`, a page of keys at a time; returns how many went."""
    dynamodb = client("dynamodb")
    deleted = 0
    for page in dynamodb.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": partition}},
        ProjectionExpression="pk, sk",
    ):
        delete_items(table, page["Items"])
        deleted += len(page["Items"])
    return deleted


def query_page(
    table: str, partition: str, *, limit: int, cursor: str | None, keys_only: bool = False
) -> tuple[list[dict[str, Any]], str | None]:
    """One Query page of the items whose `pk` is `partition` (at most `limit`), in DynamoDB's attribute-value
    form, and the cursor after it (None at the partition's end): JSON of the LastEvaluatedKey, opaque to callers."""
    import json

    arguments: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": partition}},
        "Limit": limit,
    }
    if keys_only:
        arguments["ProjectionExpression"] = "pk, sk"
    if cursor:
        start = json.loads(cursor)
        if not isinstance(start, dict) or start.get("pk") != {"S": partition}:
            raise ValueError("the cursor is not one of this partition")
        arguments["ExclusiveStartKey"] = start
    page = client("dynamodb").query(**arguments)
    last = page.get("LastEvaluatedKey")
    return page["Items"], json.dumps(last, sort_keys=True) if last else None


def delete_partition_page(table: str, partition: str, *, limit: int) -> tuple[int, bool]:
    """Delete up to `limit` items whose `pk` is `partition`; returns how many went and whether any are left.
    What is deleted is gone, so each call starts from the partition's beginning (safe to repeat)."""
    items, more = query_page(table, partition, limit=limit, cursor=None, keys_only=True)
    delete_items(table, items)
    return len(items), more is not None
