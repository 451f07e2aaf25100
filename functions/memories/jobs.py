"""Memories' part in the jobs workflows (functions.jobs.ports): a user's memories exported and deleted a page at a
time, memories imported from an archive, and the daily run that archives memories past their expiry."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from functions.jobs.formats.items import ImportedItem, ImportedMemory, RejectedItem
from functions.jobs.ports import ArchivePage, DeletePage, ExportPage, ImportResult
from functions.memories.models import CATEGORIES, DEFAULT_PRIORITY, MAX_CONTENT_CHARS
from shared.ids import derived_id
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.memories import service, store
    from functions.memories.store import MemoryRecord
else:
    service = LazyModule("functions.memories.service")
    store = LazyModule("functions.memories.store")

EXPORT_STEM = "memories"
# Before its first run the archiving run looks this far back: the expiry index holds no older day.
FIRST_RUN_LOOKBACK_DAYS = 30


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    """Every memory of the user, archived, inactive and expired ones included, as GET /memories/{id} answers."""
    records, next_cursor = store.memories_page(user_id, limit=limit, cursor=cursor)
    exported = [service.public_memory(record).model_dump(mode="json", by_alias=True) for record in records]
    return ExportPage(records={EXPORT_STEM: exported} if exported else {}, cursor=next_cursor)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    """Delete up to `limit` of the user's items (their memories and their count)."""
    deleted, more = store.delete_user_items_page(user_id, limit=limit)
    return DeletePage(deleted=deleted, cursor="more" if more else None)


def import_items(user_id: str, job_id: str, items: Sequence[ImportedItem]) -> ImportResult:
    """Store the memories of `items` under the user's limit. Each id derives from the user and the memory's id in
    the file (or the job and its place in it), so a retried page or a second import of the file adds nothing
    twice. A memory whose expiry has passed comes in archived, as the daily run would have left it."""
    rejected: list[RejectedItem] = []
    candidates: list[tuple[str, MemoryRecord]] = []
    moment = store.now()
    for position, item in enumerate(items):
        if not isinstance(item, ImportedMemory):
            continue
        label = f'memory "{item.content.strip()[:60]}"'
        problem = _problem(item)
        if problem:
            rejected.append(RejectedItem(label, problem))
            continue
        place = (item.source_id,) if item.source_id else (job_id, str(position))
        memory_id = derived_id(item.created_at, user_id, "memory", *place)
        expired = item.expires_at is not None and item.expires_at <= moment
        record = store.new_memory(
            user_id=user_id, memory_id=memory_id, content=item.content.strip(), category=item.category or "general",
            priority=DEFAULT_PRIORITY if item.priority is None else item.priority, active=item.active,
            expires_at=item.expires_at, archived=item.archived or expired, created_at=item.created_at,
            updated_at=item.updated_at,
        )  # fmt: skip
        candidates.append((label, record))
    existing = store.existing_memory_ids(user_id, [record.memory_id for _, record in candidates])
    fresh: dict[str, tuple[str, MemoryRecord]] = {}
    for label, record in candidates:
        if record.memory_id not in existing:
            fresh.setdefault(record.memory_id, (label, record))
    new = list(fresh.values())
    stored = service.store_within_limit(user_id, [record for _, record in new]) if new else 0
    rejected += [RejectedItem(label, service.LIMIT_REACHED_REASON) for label, _ in new[stored:]]
    return ImportResult(imported={"memories": stored}, rejected=rejected)


def archive_page(now: datetime, cursor: str | None, limit: int) -> ArchivePage:
    """Archive memories whose expiry has passed by `now`, walking the expiry index a day and a shard at a time
    from the day after the last one done up to today; at the end, yesterday becomes the last day done."""
    today = now.astimezone(UTC).date()
    if cursor:
        position = json.loads(cursor)
        day, shard, start = datetime.fromisoformat(position["day"]).date(), int(position["shard"]), position["start"]
    else:
        done_through = store.archive_done_through()
        day = done_through + timedelta(days=1) if done_through else today - timedelta(days=FIRST_RUN_LOOKBACK_DAYS)
        shard, start = 0, None
    archived = read = 0
    while day <= today:
        records, start = store.expired_page(day, shard, now, limit=limit - read, start=start)
        read += len(records)
        archived += sum(store.archive_expired(record, now) for record in records)
        if start is None:
            shard += 1
            if shard == store.EXPIRY_SHARDS:
                day, shard = day + timedelta(days=1), 0
        if read >= limit and day <= today:
            position = {"day": day.isoformat(), "shard": shard, "start": start}
            return ArchivePage(archived=archived, cursor=json.dumps(position, separators=(",", ":")))
    store.set_archive_done_through(today - timedelta(days=1))
    return ArchivePage(archived=archived, cursor=None)


def _problem(item: ImportedMemory) -> str | None:
    content = item.content.strip()
    if not content:
        return "it has no content"
    if len(content) > MAX_CONTENT_CHARS:
        return f"its content is longer than {MAX_CONTENT_CHARS} characters"
    if item.category is not None and item.category not in CATEGORIES:
        return f"unknown category {item.category!r}"
    if item.priority is not None and not 1 <= item.priority <= 10:
        return "its priority is not between 1 and 10"
    return None
