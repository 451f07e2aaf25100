"""The analytics table: per-day counter items, sharded, updated with atomic `ADD`; the markers that make counting
exact under redelivery; and the bounded reads the dashboards make.

Layout:
- `pk = DAY#<day>#<shard>`, `sk = <dimension>` (`STAGE`, `MODEL#<provider>#<model>`, ...): a day's figures, split
  over `ANALYTICS_SHARDS` partitions by event id so no single key takes every write of a busy stage. A dimension's
  figure for a day is the sum over its shards.
- `pk = GAUGE#<shard>`, `sk = CONNECTIONS`: open WebSocket connections (+1 opened, -1 closed), not per day.
- `pk = EVENT#<id>`: the event was counted (kept a few days by TTL, longer than SQS keeps a message).
- `pk = ACTIVE#<day>#<userId>`: the user was counted active that day.
Each event is one `TransactWriteItems`: its marker (`attribute_not_exists`) and its `ADD`s; a redelivered event fails
the marker's condition and changes nothing.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from functions.analytics.counts import STAGE, Increments, day_of
from shared.aws import client
from shared.events import Event
from shared.settings import get_settings
from shared.tables import ANALYTICS

# Longer than the events queue keeps a message (4 days) and its dead-letter queue's redrive window matters not:
# a message redriven after this would be counted twice, so the markers outlive the queue's retention.
MARKER_TTL_SECONDS = 8 * 86400
GAUGE_CONNECTIONS = "CONNECTIONS"
_BATCH_GET_KEYS = 100  # DynamoDB's BatchGetItem limit
_CONFLICT_ATTEMPTS = 5


def _table() -> str:
    return ANALYTICS.name_from_env()


def shards() -> int:
    return get_settings().analytics_shards


def shard_of(key: str) -> int:
    """A stable shard for `key` (an event id, a user id), the same in every process."""
    return zlib.crc32(key.encode()) % shards()


def day_pk(day: str, shard: int) -> str:
    return f"DAY#{day}#{shard}"


def _number(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def _update(pk: str, sk: str, figures: dict[str, int], names: dict[str, str] | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    attribute_names: dict[str, str] = {}
    adds = []
    for index, (figure, amount) in enumerate(sorted(figures.items())):
        attribute_names[f"#f{index}"] = figure
        values[f":f{index}"] = _number(amount)
        adds.append(f"#f{index} :f{index}")
    expression = "ADD " + ", ".join(adds)
    if names:
        sets = []
        for index, (name, text) in enumerate(sorted(names.items())):
            attribute_names[f"#n{index}"] = name
            values[f":n{index}"] = {"S": text}
            sets.append(f"#n{index} = :n{index}")
        expression = "SET " + ", ".join(sets) + " " + expression
    return {
        "Update": {
            "TableName": _table(),
            "Key": {"pk": {"S": pk}, "sk": {"S": sk}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": attribute_names,
            "ExpressionAttributeValues": values,
        }
    }


def _marker(pk: str, now: int) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": _table(),
            "Item": {"pk": {"S": pk}, "sk": {"S": "MARKER"}, "ttl": {"N": str(now + MARKER_TTL_SECONDS)}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def count_event(event: Event, counted: Increments, *, active: bool) -> None:
    """Add what `event` counts, exactly once whatever the deliveries: the day's active-user marker with its `ADD`
    (one transaction), then the event's marker with its `ADD`s (another). Each is a no-op when its marker exists,
    so a redelivery after either committed completes the other and adds nothing twice."""
    now = int(time.time())
    day = day_of(event)
    if active and event.user_id is not None:
        _transact(
            [
                _marker(f"ACTIVE#{day}#{event.user_id}", now),
                _update(day_pk(day, shard_of(event.user_id)), STAGE, {"activeUsers": 1}),
            ]
        )
    if counted.empty:
        return
    shard = shard_of(event.id)
    writes = [_marker(f"EVENT#{event.id}", now)]
    for dimension, figures in sorted(counted.figures.items()):
        if figures:
            writes.append(_update(day_pk(day, shard), dimension, figures, counted.names.get(dimension)))
    if counted.open_connections:
        writes.append(_update(f"GAUGE#{shard}", GAUGE_CONNECTIONS, {"open": counted.open_connections}))
    _transact(writes)


class CountConflict(Exception):
    """DynamoDB kept refusing the transaction for concurrent ones on the same items: deliver the event again."""


def _transact(writes: list[dict[str, Any]]) -> None:
    """Commit `writes`; a marker already there means it was committed before (done). Conflicts with concurrent
    transactions on the same counter are retried with jittered backoff."""
    from botocore.exceptions import ClientError

    for attempt in range(_CONFLICT_ATTEMPTS):
        try:
            client("dynamodb").transact_write_items(TransactItems=writes)
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons") or ()]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return  # the marker (always the first write) exists: counted already
            if not any(code in ("TransactionConflict", "ThrottlingError") for code in reasons):
                raise
            time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 (jitter, not a secret)
    raise CountConflict("the counters stayed in conflict")


# -- Reads ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterItem:
    day: str
    dimension: str
    figures: dict[str, Decimal]
    names: dict[str, str]


def _parse(item: dict[str, Any]) -> CounterItem:
    day = item["pk"]["S"].split("#")[1]
    figures: dict[str, Decimal] = {}
    names: dict[str, str] = {}
    for name, value in item.items():
        if name in ("pk", "sk"):
            continue
        if "N" in value:
            figures[name] = Decimal(value["N"])
        elif "S" in value:
            names[name] = value["S"]
    return CounterItem(day=day, dimension=item["sk"]["S"], figures=figures, names=names)


def stage_items(days: Sequence[str]) -> list[CounterItem]:
    """The `STAGE` item of each (day, shard): BatchGetItem, 100 keys a call; what DynamoDB leaves unprocessed is
    asked again (days x shards items whatever the traffic)."""
    keys = [{"pk": {"S": day_pk(day, shard)}, "sk": {"S": STAGE}} for day in days for shard in range(shards())]
    return _batch_get(keys)


def gauge_items() -> list[CounterItem]:
    keys = [{"pk": {"S": f"GAUGE#{shard}"}, "sk": {"S": GAUGE_CONNECTIONS}} for shard in range(shards())]
    return _batch_get(keys)


def _batch_get(keys: list[dict[str, Any]]) -> list[CounterItem]:
    dynamodb = client("dynamodb")
    table = _table()
    found: list[CounterItem] = []
    for start in range(0, len(keys), _BATCH_GET_KEYS):
        pending: dict[str, Any] = {table: {"Keys": keys[start : start + _BATCH_GET_KEYS]}}
        pause = 0.05
        while pending:
            answer = dynamodb.batch_get_item(RequestItems=pending)
            found += [_parse(item) for item in answer.get("Responses", {}).get(table, ())]
            pending = answer.get("UnprocessedKeys") or {}
            if pending:
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
    return found


def dimension_items(days: Sequence[str], prefix: str) -> list[CounterItem]:
    """The items of one dimension (`MODEL#`, `AGENT#`, ...) of each day: one Query per (day, shard), run together;
    each returns a day's items of that dimension (as many as it has models, agents, channels: not its traffic)."""
    from shared.concurrency import together

    partitions = [day_pk(day, shard) for day in days for shard in range(shards())]
    pages = together(*(lambda partition=partition: _query(partition, prefix) for partition in partitions))
    return [item for page in pages for item in page]


def _query(partition: str, prefix: str) -> list[CounterItem]:
    dynamodb = client("dynamodb")
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": partition}, ":prefix": {"S": prefix}},
    }
    items: list[CounterItem] = []
    while True:
        answer = dynamodb.query(**request)
        items += [_parse(item) for item in answer.get("Items", ())]
        if not answer.get("LastEvaluatedKey"):
            return items
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
