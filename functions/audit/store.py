"""The audit log's storage: pynamodb records in the audit table, written only with conditional puts.

Items (pk / sk):
  USER#<user> / EVENT#<at>#<id>   an event, in the log of each user it concerns: who did it, whose log it was
                                  recorded in, the user it was done to. The first of these copies (or the only
                                  item of an event that names no user, `EVENT#<id>`) carries gsi1:
                                  DAY#<yyyy-mm-dd> / <at>#<id>, the stage's events by time, a partition a day.
  KEY#<user>  / KEY               the user's data key (AES-256), sealed with the stage's secrets key (context
                                  "audit"): the personal fields of their events are encrypted with it.
  KEY#<user>  / SHREDDED          the user asked for their account's deletion: no key is made for them again.

Append-only: every write is a PutItem on `attribute_not_exists(pk)`, so a redelivered event changes nothing; no
function may update an item, and only the deletion's audit task may delete one, a key (infra: LeadingKeys KEY#).
An event expires by TTL `AUDIT_RETENTION_DAYS` after it happened; a key and a marker have no TTL (a key must
outlive every event it opens).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from shared.errors import BadRequest
from shared.pagination import decode_cursor, encode_cursor
from shared.storage import condition_failed, secondary_index, table_meta
from shared.tables import AUDIT, AUDIT_KEY_PREFIX

USER_PREFIX = "USER#"
EVENT_PREFIX = "EVENT#"
KEY_PREFIX = AUDIT_KEY_PREFIX
DAY_PREFIX = "DAY#"
KEY = "KEY"
SHREDDED = "SHREDDED"

_Meta = table_meta(AUDIT)


def user_partition(user_id: str) -> str:
    return USER_PREFIX + user_id


def key_partition(user_id: str) -> str:
    return KEY_PREFIX + user_id


def event_sort_key(at: str, event_id: str) -> str:
    return f"{EVENT_PREFIX}{at}#{event_id}"


def day_partition(day: str) -> str:
    return DAY_PREFIX + day


class EventRecord(Model):
    """One copy of an event. `actor` and `details` hold its plain fields; `sealed` the personal ones, encrypted
    (functions.audit.crypto), each envelope naming the user whose key opens it."""

    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    by_day = secondary_index(AUDIT.index("gsi1"))

    event_id = UnicodeAttribute(attr_name="eventId")
    at = UnicodeAttribute()
    action = UnicodeAttribute()
    outcome = UnicodeAttribute()
    actor = JSONAttribute(default=dict)
    target = JSONAttribute(null=True)
    request_id = UnicodeAttribute(attr_name="requestId", null=True)
    details = JSONAttribute(null=True)
    sealed = JSONAttribute(null=True)
    ttl = NumberAttribute()


class KeyRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    # The data key, sealed (shared.secrets, context "audit", record the user id); absent on a SHREDDED marker.
    sealed_key = UnicodeAttribute(attr_name="sealedKey", null=True)


def put_new(record: Model) -> bool:
    """PutItem on `attribute_not_exists(pk)`: True if it was stored, False if the item was already there (the
    event redelivered, a key another writer made first)."""
    try:
        record.save(condition=type(record).pk.does_not_exist())  # type: ignore[attr-defined]
    except PutError as error:
        if condition_failed(error):
            return False
        raise
    return True


# Keys -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyState:
    sealed_key: str | None
    shredded: bool


def key_state(user_id: str) -> KeyState:
    """The user's key and whether their account is being deleted: one Query of their key partition."""
    sealed_key, shredded = None, False
    for record in KeyRecord.query(key_partition(user_id), consistent_read=True):
        if record.sk == KEY:
            sealed_key = record.sealed_key
        elif record.sk == SHREDDED:
            shredded = True
    return KeyState(sealed_key, shredded)


def sealed_keys(user_ids: Iterable[str]) -> dict[str, str]:
    """The sealed keys of these users that still exist (BatchGetItem): a user missing had their key deleted."""
    keys = [(key_partition(user_id), KEY) for user_id in sorted(set(user_ids))]
    found: dict[str, str] = {}
    for record in KeyRecord.batch_get(keys):
        if record.sealed_key:
            found[record.pk.removeprefix(KEY_PREFIX)] = record.sealed_key
    return found


def delete_key(user_id: str) -> bool:
    """Delete the user's key (the only delete the audit table ever sees): True if there was one."""
    from pynamodb.exceptions import DeleteError

    record = KeyRecord(key_partition(user_id), KEY)
    try:
        record.delete(condition=KeyRecord.pk.exists())
    except DeleteError as error:
        if condition_failed(error):
            return False
        raise
    return True


# Reading ----------------------------------------------------------------------------------------------------

# Queries one page may make at most: a page whose filter matches little, or that crosses quiet days, ends there
# with a cursor rather than reading on.
QUERIES_PER_PAGE = 10


def user_events_page(
    user_id: str, *, lower: str, upper: str, action: str | None, limit: int, cursor: str | None
) -> tuple[list[EventRecord], str | None]:
    """The user's events between two `at` bounds, newest first: one Query per page unless a filter thins it."""
    partition = user_partition(user_id)
    start = decode_cursor(cursor, partition={"pk": partition}, sort_prefixes={"sk": EVENT_PREFIX})
    records: list[EventRecord] = []
    for _ in range(QUERIES_PER_PAGE):
        results = EventRecord.query(
            partition,
            EventRecord.sk.between(event_sort_key(lower, ""), event_sort_key(upper, "~")),
            filter_condition=EventRecord.action == action if action else None,
            scan_index_forward=False,
            last_evaluated_key=start,
            page_size=limit - len(records),
        )
        page = next(results.page_iter)
        records += [EventRecord.from_raw_data(item) for item in page.get("Items") or ()]
        start = results.page_iter.last_evaluated_key
        if start is None or len(records) >= limit:
            break
    return records, encode_cursor(start)


def stage_events_page(
    *, days: Sequence[str], lower: str, upper: str, action: str | None, limit: int, cursor: str | None
) -> tuple[list[EventRecord], str | None]:
    """The stage's events between two `at` bounds, newest first, over `days` (newest first, the buckets the bounds
    cover): a page is one Query of one day's partition, and one more for each day it crosses (at most
    QUERIES_PER_PAGE); the cursor says which day and where in it the next page starts."""
    day_index, start = _stage_position(cursor, days)
    records: list[EventRecord] = []
    queries = 0
    while day_index < len(days) and len(records) < limit and queries < QUERIES_PER_PAGE:
        results = EventRecord.by_day.query(
            day_partition(days[day_index]),
            EventRecord.gsi1sk.between(f"{lower}#", f"{upper}#~"),
            filter_condition=EventRecord.action == action if action else None,
            scan_index_forward=False,
            last_evaluated_key=start,
            page_size=limit - len(records),
        )
        page = next(results.page_iter)
        queries += 1
        records += [EventRecord.from_raw_data(item) for item in page.get("Items") or ()]
        start = results.page_iter.last_evaluated_key
        if start is None:
            day_index += 1
    if day_index >= len(days):
        return records, None
    return records, _encode_stage_cursor(days[day_index], start)


def _encode_stage_cursor(day: str, start: dict[str, Any] | None) -> str:
    raw = json.dumps({"day": day, "key": json.loads(_decoded(encode_cursor(start))) if start else None})
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def _decoded(cursor: str | None) -> str:
    assert cursor is not None
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def _stage_position(cursor: str | None, days: Sequence[str]) -> tuple[int, dict[str, Any] | None]:
    """Where a stage page starts: the day's place in `days` and the key to start after (None: the day's newest)."""
    if not cursor:
        return 0, None
    try:
        decoded = json.loads(_decoded(cursor))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _not_ours() from None
    if not isinstance(decoded, dict) or set(decoded) != {"day", "key"} or decoded["day"] not in days:
        raise _not_ours()
    day, key = decoded["day"], decoded["key"]
    if key is None:
        return days.index(day), None
    inner = base64.urlsafe_b64encode(json.dumps(key).encode()).rstrip(b"=").decode()
    start = decode_cursor(
        inner,
        partition={"gsi1pk": day_partition(day)},
        sort_prefixes={"gsi1sk": "", "pk": "", "sk": EVENT_PREFIX},
    )
    return days.index(day), start


def _not_ours() -> BadRequest:
    return BadRequest("The cursor is not one this API issued", code="invalid_cursor")
