"""Memories' storage: pynamodb records in the memories table, and the data access the service needs.

Callers get domain records back and domain errors out; pynamodb and botocore stay behind this module, which
the service loads lazily so a handler's cold start does not pay for them.

Items (pk / sk):
  USER#<id> / MEM#<memory id>   a memory. While it is active and not archived it also carries
                                gsi1 USER#<id>#ACTIVE / P<priority:02d>#<memory id>, so querying gsi1
                                backwards gives what goes into prompts: highest priority first, then newest.
  USER#<id> / MEMCOUNT          how many memories the user stores, for the per-user limit; `revision` grows
                                with every change to the count.

  While it is unarchived and has an expiry it also carries gsi2 EXPIRES#<day>#<shard> / <expiresAt>#<memory id>
  (sparse, spread over `EXPIRY_SHARDS` partitions a day), where the daily archiving run finds the memories
  that have expired.
  ARCHIVE / EXPIRY               the archiving run's progress: `doneThrough`, the last day it walked to its end.

A memory's expiry is its own attribute `expiresAt`, not the table's TTL: an expired memory is archived by the
daily run, never deleted behind its owner's back. Until that run reaches it, every read leaves an expired,
unarchived memory out; an archived one stays visible (in archived listings and search) and can be restored with
a new expiry. `reclaim_expired` deletes expired unarchived memories when the user's limit is reached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.pagination import ResultIterator
from pynamodb.transactions import TransactWrite

from shared.errors import Conflict, NotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.storage import condition_failed, secondary_index, table_meta, transact, transaction_cancellations
from shared.tables import MEMORIES

MEMORY_PREFIX = "MEM#"
COUNTER_SORT_KEY = "MEMCOUNT"
EXPIRY_SHARDS = 8
ARCHIVE_STATE_KEY = ("ARCHIVE", "EXPIRY")
# DynamoDB's limit on items per transaction, less the counter update that goes with every write.
MAX_MEMORIES_PER_TRANSACTION = 99
_TRANSACTION_ATTEMPTS = 4
_UPDATE_ATTEMPTS = 3


def now() -> datetime:
    return datetime.now(UTC)


_Meta = table_meta(MEMORIES)


class MemoryRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    by_priority = secondary_index(MEMORIES.index("gsi1"))
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)
    by_expiry = secondary_index(MEMORIES.index("gsi2"))

    memory_id = UnicodeAttribute(attr_name="memoryId")
    user_id = UnicodeAttribute(attr_name="userId")
    content = UnicodeAttribute()
    # DynamoDB's `contains` is case-sensitive: search matches a case-folded copy.
    search_text = UnicodeAttribute(attr_name="searchText")
    category = UnicodeAttribute()
    priority = NumberAttribute()
    active = BooleanAttribute()
    archived = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt", default=now)
    expires_at = UTCDateTimeAttribute(attr_name="expiresAt", null=True)
    revision = NumberAttribute(default=0)

    def is_expired(self, at: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= at

    def is_hidden(self, at: datetime) -> bool:
        """Expired and not yet archived by the daily run: no read shows it."""
        return not self.archived and self.is_expired(at)


class ArchiveStateRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True, default=ARCHIVE_STATE_KEY[0])
    sk = UnicodeAttribute(range_key=True, default=ARCHIVE_STATE_KEY[1])
    done_through = UnicodeAttribute(attr_name="doneThrough")


class MemoryCounterRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=COUNTER_SORT_KEY)
    memory_count = NumberAttribute(attr_name="memoryCount", default=0)
    revision = NumberAttribute(default=0)


class MemoryLimitReachedError(Exception):
    """The user's count of stored memories leaves no room for the memories being added."""


# Keys -------------------------------------------------------------------------------------------------------


def user_partition(user_id: str) -> str:
    return f"USER#{user_id}"


def active_partition(user_id: str) -> str:
    return f"USER#{user_id}#ACTIVE"


def _priority_key(priority: int, memory_id: str) -> str:
    return f"P{priority:02d}#{memory_id}"


def expiry_partition(day: date, shard: int) -> str:
    return f"EXPIRES#{day.isoformat()}#{shard}"


def _expiry_keys(memory_id: str, expires_at: datetime) -> tuple[str, str]:
    shard = int.from_bytes(hashlib.sha256(memory_id.encode()).digest()[:2], "big") % EXPIRY_SHARDS
    moment = expires_at.astimezone(UTC)
    return expiry_partition(moment.date(), shard), f"{_sortable(moment)}#{memory_id}"


def _sortable(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _visible(at: datetime) -> Condition:
    """What reads show: unexpired memories, and archived ones whatever their expiry."""
    visible: Condition = (
        MemoryRecord.expires_at.does_not_exist() | (MemoryRecord.expires_at > at) | (MemoryRecord.archived == True)  # noqa: E712
    )
    return visible


# Memories ---------------------------------------------------------------------------------------------------


def new_memory(
    *,
    user_id: str,
    memory_id: str,
    content: str,
    category: str,
    priority: int,
    active: bool,
    expires_at: datetime | None,
    archived: bool = False,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
) -> MemoryRecord:
    """A memory not yet stored; `add_memories` stores it. Its times default to now (an import keeps its own)."""
    moment = now()
    record = MemoryRecord(
        pk=user_partition(user_id), sk=MEMORY_PREFIX + memory_id, memory_id=memory_id, user_id=user_id,
        content=content, search_text=content.casefold(), category=category, priority=priority, active=active,
        archived=archived, expires_at=expires_at, created_at=created_at or moment, updated_at=updated_at or moment,
    )  # fmt: skip
    if active and not archived:
        record.gsi1pk, record.gsi1sk = active_partition(user_id), _priority_key(priority, memory_id)
    if expires_at is not None and not archived:
        record.gsi2pk, record.gsi2sk = _expiry_keys(memory_id, expires_at)
    return record


def add_memories(user_id: str, memories: Sequence[MemoryRecord], limit: int) -> None:
    """Store `memories` and count them in one transaction, or none of them if the count would pass `limit`.

    `MemoryLimitReachedError` when there is no room for all of them.
    """
    if not 1 <= len(memories) <= MAX_MEMORIES_PER_TRANSACTION:
        raise ValueError(f"a transaction stores 1 to {MAX_MEMORIES_PER_TRANSACTION} memories")
    most_already_stored = limit - len(memories)
    if most_already_stored < 0:
        raise MemoryLimitReachedError
    counter = MemoryCounterRecord(user_partition(user_id))

    def write(transaction: TransactWrite) -> None:
        for memory in memories:
            transaction.save(memory)
        transaction.update(
            counter,
            actions=[MemoryCounterRecord.memory_count.add(len(memories)), MemoryCounterRecord.revision.add(1)],
            condition=MemoryCounterRecord.memory_count.does_not_exist()
            | (MemoryCounterRecord.memory_count <= most_already_stored),
        )

    try:
        _transact(write)
    except TransactWriteError as error:
        # The counter update is the transaction's only condition.
        if "ConditionalCheckFailed" in transaction_cancellations(error):
            raise MemoryLimitReachedError from None
        raise


def get_memory(user_id: str, memory_id: str) -> MemoryRecord:
    """The user's memory, unless it does not exist, belongs to someone else or has expired unarchived."""
    try:
        record = MemoryRecord.get(user_partition(user_id), MEMORY_PREFIX + memory_id, consistent_read=True)
    except DoesNotExist:
        raise _memory_not_found() from None
    if record.is_hidden(now()):
        raise _memory_not_found()
    return record


def update_memory(user_id: str, memory_id: str, changes: dict[str, Any]) -> MemoryRecord:
    """Apply `changes` (attribute name to value; `expires_at` None clears the expiry) and keep gsi1 and gsi2 in
    step.

    Whether a memory belongs in gsi1 depends on fields a change may leave alone, so the update is conditional on
    the revision read: a concurrent change makes it read and try again, rather than index a stale state.
    """
    for _ in range(_UPDATE_ATTEMPTS):
        record = get_memory(user_id, memory_id)
        moment = now()
        actions: list[Any] = [MemoryRecord.updated_at.set(moment), MemoryRecord.revision.add(1)]
        for name, value in changes.items():
            attribute = getattr(MemoryRecord, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        if "content" in changes:
            actions.append(MemoryRecord.search_text.set(str(changes["content"]).casefold()))
        active = bool(changes.get("active", record.active))
        archived = bool(changes.get("archived", record.archived))
        priority = int(changes.get("priority", record.priority))
        if active and not archived:
            actions.append(MemoryRecord.gsi1pk.set(active_partition(user_id)))
            actions.append(MemoryRecord.gsi1sk.set(_priority_key(priority, memory_id)))
        else:
            actions += [MemoryRecord.gsi1pk.remove(), MemoryRecord.gsi1sk.remove()]
        expires_at = changes.get("expires_at", record.expires_at)
        if expires_at is not None and not archived:
            expiry_pk, expiry_sk = _expiry_keys(memory_id, expires_at)
            actions += [MemoryRecord.gsi2pk.set(expiry_pk), MemoryRecord.gsi2sk.set(expiry_sk)]
        else:
            actions += [MemoryRecord.gsi2pk.remove(), MemoryRecord.gsi2sk.remove()]
        try:
            record.update(actions=actions, condition=(MemoryRecord.revision == record.revision) & _visible(moment))
        except UpdateError as error:
            if condition_failed(error):
                continue
            raise
        return record
    raise Conflict("This memory is being changed by another request; try again", code="memory_write_conflict")


def delete_memory(user_id: str, memory_id: str) -> None:
    """Delete the user's memory and uncount it in one transaction; an expired one is already gone."""
    memory = MemoryRecord(user_partition(user_id), MEMORY_PREFIX + memory_id)
    counter = MemoryCounterRecord(user_partition(user_id))

    def write(transaction: TransactWrite) -> None:
        transaction.delete(memory, condition=MemoryRecord.pk.exists() & _visible(now()))
        transaction.update(
            counter, actions=[MemoryCounterRecord.memory_count.add(-1), MemoryCounterRecord.revision.add(1)]
        )

    try:
        _transact(write)
    except TransactWriteError as error:
        if "ConditionalCheckFailed" in transaction_cancellations(error):
            raise _memory_not_found() from None
        raise


def _memory_not_found() -> NotFound:
    return NotFound("Memory not found", code="memory_not_found")


# Listings: one Query per page ---------------------------------------------------------------------------------


def list_memories(
    user_id: str, *, category: str | None, active: bool | None, archived: bool, limit: int, cursor: str | None
) -> tuple[list[MemoryRecord], str | None]:
    """The user's unexpired memories newest first, filtered."""
    condition = _visible(now()) & (MemoryRecord.archived == archived)
    if category is not None:
        condition &= MemoryRecord.category == category
    if active is not None:
        condition &= MemoryRecord.active == active
    return _newest_first_page(user_id, condition, limit, cursor)


def search_memories(
    user_id: str, text: str, *, limit: int, cursor: str | None
) -> tuple[list[MemoryRecord], str | None]:
    """The user's unexpired memories, archived ones included, whose content holds `text` in any case."""
    condition = _visible(now()) & MemoryRecord.search_text.contains(text.casefold())
    return _newest_first_page(user_id, condition, limit, cursor)


def active_memories(user_id: str, *, limit: int, cursor: str | None) -> tuple[list[MemoryRecord], str | None]:
    """The user's memories that go into prompts: highest priority first, then newest."""
    partition = active_partition(user_id)
    start = _start_key(cursor, {"pk": user_partition(user_id), "sk": MEMORY_PREFIX, "gsi1pk": partition, "gsi1sk": "P"})
    results = MemoryRecord.by_priority.query(
        partition, filter_condition=_visible(now()), scan_index_forward=False, limit=limit,
        last_evaluated_key=start,
    )  # fmt: skip
    return _one_page(results)


def prompt_memories(user_id: str) -> Iterator[MemoryRecord]:
    """`active_memories` as one lazy stream, read a page at a time for as long as the caller takes more."""
    memories: Iterator[MemoryRecord] = MemoryRecord.by_priority.query(
        active_partition(user_id), filter_condition=_visible(now()), scan_index_forward=False, page_size=50
    )
    return memories


def _newest_first_page(
    user_id: str, condition: Condition, limit: int, cursor: str | None
) -> tuple[list[MemoryRecord], str | None]:
    partition = user_partition(user_id)
    start = _start_key(cursor, {"pk": partition, "sk": MEMORY_PREFIX})
    results = MemoryRecord.query(
        partition, MemoryRecord.sk.startswith(MEMORY_PREFIX), filter_condition=condition,
        scan_index_forward=False, limit=limit, last_evaluated_key=start,
    )  # fmt: skip
    return _one_page(results)


def _one_page(results: ResultIterator[MemoryRecord]) -> tuple[list[MemoryRecord], str | None]:
    """The items of one DynamoDB Query page and the cursor after it.

    With a filter, or past 1 MB, the page may hold fewer items than asked for, even none, while more follow.
    Reading on until the page is full could cost one request many Queries, so the client follows the cursor.
    """
    page = next(results.page_iter)
    items = [MemoryRecord.from_raw_data(raw) for raw in page.get("Items", [])]
    return items, encode_cursor(page.get("LastEvaluatedKey"))


def _start_key(cursor: str | None, key_prefixes: dict[str, str]) -> dict[str, Any] | None:
    """The ExclusiveStartKey for `cursor`: the partition keys in full, every other key under its prefix."""
    partitions = {name: value for name, value in key_prefixes.items() if name in ("pk", "gsi1pk")}
    sorts = {name: value for name, value in key_prefixes.items() if name not in partitions}
    return decode_cursor(cursor, partition=partitions, sort_prefixes=sorts)


# The whole of a user's memories, a page at a time (export, account deletion, import) ------------------------


def memories_page(user_id: str, *, limit: int, cursor: str | None) -> tuple[list[MemoryRecord], str | None]:
    """Every memory of the user, archived, inactive and expired ones included, oldest first: one Query."""
    partition = user_partition(user_id)
    start = _start_key(cursor, {"pk": partition, "sk": MEMORY_PREFIX})
    results = MemoryRecord.query(
        partition, MemoryRecord.sk.startswith(MEMORY_PREFIX), limit=limit, last_evaluated_key=start
    )
    return _one_page(results)


def delete_user_items_page(user_id: str, *, limit: int) -> tuple[int, bool]:
    """Delete up to `limit` items of the user (memories and their count), in batches; returns how many memories
    went and whether items are left. What is deleted is gone, so every page starts from the partition's start."""
    keys_only = [MemoryRecord.pk.attr_name, MemoryRecord.sk.attr_name]
    results = MemoryRecord.query(user_partition(user_id), attributes_to_get=keys_only, limit=limit)
    page = next(results.page_iter)
    records = [MemoryRecord.from_raw_data(raw) for raw in page.get("Items", [])]
    with MemoryRecord.batch_write() as batch:
        for record in records:
            batch.delete(record)
    return sum(record.sk.startswith(MEMORY_PREFIX) for record in records), bool(page.get("LastEvaluatedKey"))


def existing_memory_ids(user_id: str, memory_ids: Sequence[str]) -> set[str]:
    """Which of `memory_ids` the user already stores (BatchGetItem, 100 keys a call)."""
    keys = [(user_partition(user_id), MEMORY_PREFIX + memory_id) for memory_id in dict.fromkeys(memory_ids)]
    found = MemoryRecord.batch_get(keys, attributes_to_get=[MemoryRecord.memory_id.attr_name])
    return {record.memory_id for record in found}


# Archiving expired memories (the daily run) -------------------------------------------------------------------


def archive_done_through() -> date | None:
    """The last day the archiving run walked to its end, None before its first run."""
    try:
        state = ArchiveStateRecord.get(*ARCHIVE_STATE_KEY, consistent_read=True)
    except DoesNotExist:
        return None
    return date.fromisoformat(state.done_through)


def set_archive_done_through(day: date) -> None:
    ArchiveStateRecord(done_through=day.isoformat()).save()


def expired_page(
    day: date, shard: int, at: datetime, *, limit: int, start: dict[str, Any] | None
) -> tuple[list[MemoryRecord], dict[str, Any] | None]:
    """Memories of one expiry partition that expired by `at`, and the key to continue from (None at its end)."""
    results = MemoryRecord.by_expiry.query(
        expiry_partition(day, shard), MemoryRecord.gsi2sk <= f"{_sortable(at)}#~", limit=limit,
        last_evaluated_key=start,
    )  # fmt: skip
    page = next(results.page_iter)
    return [MemoryRecord.from_raw_data(raw) for raw in page.get("Items", [])], page.get("LastEvaluatedKey")


def archive_expired(record: MemoryRecord, at: datetime) -> bool:
    """Archive an expired memory (out of prompts and of the expiry index); False if it changed meanwhile (a new
    expiry, restored or deleted): then it is left as it is."""
    try:
        record.update(
            actions=[
                MemoryRecord.archived.set(True), MemoryRecord.updated_at.set(at), MemoryRecord.revision.add(1),
                MemoryRecord.gsi1pk.remove(), MemoryRecord.gsi1sk.remove(),
                MemoryRecord.gsi2pk.remove(), MemoryRecord.gsi2sk.remove(),
            ],
            condition=MemoryRecord.pk.exists() & (MemoryRecord.archived == False) & (MemoryRecord.expires_at <= at),  # noqa: E712
        )  # fmt: skip
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True


def memory_summaries(user_id: str) -> Iterator[MemoryRecord]:
    """`all_memories` with only what counting needs: category, flags and expiry, not the content."""
    names = [MemoryRecord.category.attr_name, MemoryRecord.active.attr_name, MemoryRecord.archived.attr_name]
    return MemoryRecord.query(
        user_partition(user_id), MemoryRecord.sk.startswith(MEMORY_PREFIX),
        attributes_to_get=[*names, MemoryRecord.expires_at.attr_name],
    )  # fmt: skip


def stored_count(user_id: str) -> int:
    """The count the limit is checked against: the user's memories, expired ones not yet reclaimed included."""
    try:
        counter = MemoryCounterRecord.get(user_partition(user_id), COUNTER_SORT_KEY, consistent_read=True)
    except DoesNotExist:
        return 0
    return int(counter.memory_count)


def reclaim_expired(user_id: str) -> int:
    """Delete the user's expired memories and set the count to the memories left; returns how many were deleted.

    DynamoDB's own TTL removals never touched the count, so it is recounted rather than decremented. The
    recount is written only if the count's revision is still the one read before counting: a create or delete
    that raced with the count leaves it alone (too high, which only refuses early, until the next reclaim).
    """
    partition = user_partition(user_id)
    try:
        counter = MemoryCounterRecord.get(partition, COUNTER_SORT_KEY, consistent_read=True)
        unchanged: Condition = MemoryCounterRecord.revision == counter.revision
    except DoesNotExist:
        counter = MemoryCounterRecord(partition)
        unchanged = MemoryCounterRecord.pk.does_not_exist()
    moment = now()
    expired: list[MemoryRecord] = []
    left = 0
    keys_and_expiry = [
        MemoryRecord.pk.attr_name, MemoryRecord.sk.attr_name, MemoryRecord.expires_at.attr_name,
        MemoryRecord.archived.attr_name,
    ]  # fmt: skip
    for record in MemoryRecord.query(
        partition, MemoryRecord.sk.startswith(MEMORY_PREFIX), consistent_read=True, attributes_to_get=keys_and_expiry
    ):
        if record.is_hidden(moment):
            expired.append(record)
        else:
            left += 1
    # An expired unarchived memory stays so: updates refuse it, so these deletes cannot remove a live memory.
    with MemoryRecord.batch_write() as batch:
        for record in expired:
            batch.delete(record)
    try:
        counter.update(
            actions=[MemoryCounterRecord.memory_count.set(left), MemoryCounterRecord.revision.add(1)],
            condition=unchanged,
        )
    except UpdateError as error:
        if not condition_failed(error):
            raise
    return len(expired)


# Transactions -----------------------------------------------------------------------------------------------


def _transact(write: Callable[[TransactWrite], None]) -> None:
    transact(
        write,
        model=MemoryRecord,
        conflict=Conflict(
            "Your memories are being changed by another request; try again", code="memory_write_conflict"
        ),
        attempts=_TRANSACTION_ATTEMPTS,
    )
