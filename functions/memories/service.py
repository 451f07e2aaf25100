"""Memories' logic: a user's memories, the per-user limit, and what other contexts need from them (prompt
memories within a token budget).

Takes and returns API models; storage stays behind `store`, loaded on first use. Going past the per-user limit is
409 `memory_limit_reached`: the request is well formed, it conflicts with what is stored, and the same request
succeeds once memories are deleted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from functions.memories.models import (
    CATEGORIES,
    BulkImportRequest,
    BulkImportResult,
    Category,
    MemoryCreate,
    MemoryPublic,
    MemoryRestore,
    MemoryStats,
    MemoryUpdate,
    RejectedMemory,
)
from shared import events
from shared.errors import Conflict, NotFound
from shared.ids import is_id, new_id
from shared.lazy import LazyModule
from shared.settings import get_settings

if TYPE_CHECKING:
    from functions.memories import store
    from functions.memories.store import MemoryRecord
else:
    store = LazyModule("functions.memories.store")

LIMIT_REACHED_REASON = "memory limit reached"
# The bullet, category label and line break around each memory in the prompt section.
MEMORY_OVERHEAD_TOKENS = 6
PROMPT_SECTION_HEADER = "## What you remember about the user\nUse these where they are relevant."
# How often a write refused at the limit counts again when concurrent requests keep taking the room it saw.
_LIMIT_RECOUNTS = 3


# One memory -----------------------------------------------------------------------------------------------


def create_memory(user_id: str, request: MemoryCreate) -> MemoryPublic:
    record = _new_record(user_id, request)
    if store_within_limit(user_id, [record]) == 0:
        limit = get_settings().memory_limit_per_user
        raise Conflict(f"You already keep the most memories allowed ({limit})", code="memory_limit_reached")
    public = public_memory(record)
    _publish_created([public], user_id)
    return public


def _publish_created(memories: Sequence[MemoryPublic], user_id: str) -> None:
    for memory in memories:
        events.publish("memory.created", memory.model_dump(mode="json", by_alias=True), user_id=user_id)


def get_memory(user_id: str, memory_id: str) -> MemoryPublic:
    """The caller's memory; another user's, an expired one and an unknown id are all 404."""
    _require_memory_id(memory_id)
    return public_memory(store.get_memory(user_id, memory_id))


def update_memory(user_id: str, memory_id: str, update: MemoryUpdate) -> MemoryPublic:
    _require_memory_id(memory_id)
    changes = update.model_dump(exclude_unset=True)
    if not changes:
        return get_memory(user_id, memory_id)
    return public_memory(store.update_memory(user_id, memory_id, changes))


def archive_memory(user_id: str, memory_id: str) -> MemoryPublic:
    """An archived memory keeps its slot under the limit but never goes into prompts."""
    _require_memory_id(memory_id)
    return public_memory(store.update_memory(user_id, memory_id, {"archived": True}))


def restore_memory(user_id: str, memory_id: str, request: MemoryRestore | None) -> MemoryPublic:
    """Back into prompts (when active). A memory archived because it expired comes back with the new expiry given,
    or none: restoring it means it is wanted again."""
    _require_memory_id(memory_id)
    changes: dict[str, Any] = {"archived": False}
    if request is not None and "expires_at" in request.model_fields_set:
        changes["expires_at"] = request.expires_at
    elif store.get_memory(user_id, memory_id).is_expired(store.now()):
        changes["expires_at"] = None
    return public_memory(store.update_memory(user_id, memory_id, changes))


def delete_memory(user_id: str, memory_id: str) -> None:
    _require_memory_id(memory_id)
    store.delete_memory(user_id, memory_id)


def _require_memory_id(memory_id: str) -> None:
    if not is_id(memory_id):
        raise NotFound("Memory not found", code="memory_not_found")


# Listings ---------------------------------------------------------------------------------------------------


def list_memories(
    user_id: str, *, category: Category | None, active: bool | None, archived: bool, limit: int, cursor: str | None
) -> tuple[list[MemoryPublic], str | None]:
    """Newest first. A page may be short, even empty, with a `nextCursor` when filters leave items out."""
    records, next_cursor = store.list_memories(
        user_id, category=category, active=active, archived=archived, limit=limit, cursor=cursor
    )
    return [public_memory(record) for record in records], next_cursor


def active_memories(user_id: str, limit: int, cursor: str | None) -> tuple[list[MemoryPublic], str | None]:
    """What goes into prompts: active, unarchived and unexpired, by priority (highest first) then newest."""
    records, next_cursor = store.active_memories(user_id, limit=limit, cursor=cursor)
    return [public_memory(record) for record in records], next_cursor


def search_memories(user_id: str, text: str, limit: int, cursor: str | None) -> tuple[list[MemoryPublic], str | None]:
    """The caller's memories whose content contains `text`, ignoring case, newest first. Archived memories are
    included, so search is how a user finds one to restore."""
    records, next_cursor = store.search_memories(user_id, text, limit=limit, cursor=cursor)
    return [public_memory(record) for record in records], next_cursor


def memory_stats(user_id: str) -> MemoryStats:
    by_category: dict[Category, int] = dict.fromkeys(CATEGORIES, 0)
    total = active = archived = 0
    moment = store.now()
    for record in store.memory_summaries(user_id):
        if record.is_hidden(moment):
            continue
        total += 1
        active += bool(record.active and not record.archived)
        archived += bool(record.archived)
        by_category[_category(record.category)] += 1
    limit = get_settings().memory_limit_per_user
    return MemoryStats(
        total=total,
        active=active,
        archived=archived,
        by_category=by_category,
        limit=limit,
        remaining=max(0, limit - total),
    )


# Bulk import ------------------------------------------------------------------------------------------------


def bulk_import(user_id: str, request: BulkImportRequest) -> BulkImportResult:
    """Store every valid memory that fits under the limit, in the order given; report the others by index."""
    accepted: list[tuple[int, MemoryRecord]] = []
    rejected: list[RejectedMemory] = []
    for index, item in enumerate(request.memories):
        try:
            memory = MemoryCreate.model_validate(item)
        except ValidationError as error:
            rejected.append(RejectedMemory(index=index, reason=_validation_reason(error)))
        else:
            accepted.append((index, _new_record(user_id, memory)))
    imported = store_within_limit(user_id, [record for _, record in accepted])
    _publish_created([public_memory(record) for _, record in accepted[:imported]], user_id)
    rejected += [RejectedMemory(index=index, reason=LIMIT_REACHED_REASON) for index, _ in accepted[imported:]]
    return BulkImportResult(imported=imported, rejected=sorted(rejected, key=lambda rejection: rejection.index))


def _validation_reason(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        # Pydantic names the model class when the item is not an object; say it in the API's terms.
        message = "must be an object" if problem["type"] == "model_type" else problem["msg"]
        problems.append(f"{'.'.join(str(part) for part in problem['loc']) or 'memory'}: {message}")
    return "; ".join(problems)


def store_within_limit(user_id: str, records: Sequence[MemoryRecord]) -> int:
    """Store as many of `records`, in order, as the per-user limit leaves room for; returns how many.

    Each write is one transaction that counts what it adds only while the count stays within the limit, so
    concurrent requests can never pass it together. When a write is refused, expired memories are reclaimed
    (once) and the count read again to size the next write.
    """
    limit = get_settings().memory_limit_per_user
    stored, room, reclaimed, recounts = 0, limit, False, 0
    while stored < len(records) and room > 0:
        batch = records[stored : stored + min(room, store.MAX_MEMORIES_PER_TRANSACTION)]
        try:
            store.add_memories(user_id, batch, limit)
        except store.MemoryLimitReachedError:
            if not reclaimed:
                store.reclaim_expired(user_id)
                reclaimed = True
            elif (recounts := recounts + 1) == _LIMIT_RECOUNTS:
                break
            room = limit - store.stored_count(user_id)
            continue
        stored += len(batch)
        room -= len(batch)
    return stored


def _new_record(user_id: str, memory: MemoryCreate) -> MemoryRecord:
    return store.new_memory(
        user_id=user_id, memory_id=new_id(), content=memory.content, category=memory.category,
        priority=memory.priority, active=memory.active, expires_at=memory.expires_at,
    )  # fmt: skip


# For other contexts: prompts --------------------------------------------------


def estimate_tokens(content: str) -> int:
    """A memory's cost in a prompt: about four characters a token, plus its line's bullet and label."""
    return math.ceil(len(content) / 4) + MEMORY_OVERHEAD_TOKENS


def select_within_budget(memories: Iterable[MemoryPublic], token_budget: int) -> list[MemoryPublic]:
    """The leading memories whose estimated tokens fit in `token_budget`, stopping at the first that does not:
    a lower-priority memory never takes the place of a higher one that did not fit."""
    chosen: list[MemoryPublic] = []
    spent = 0
    for memory in memories:
        spent += estimate_tokens(memory.content)
        if spent > token_budget:
            break
        chosen.append(memory)
    return chosen


def memories_for_prompt(user_id: str, token_budget: int) -> list[MemoryPublic]:
    """The user's active memories, highest priority then newest first, as many as `token_budget` (tokens for the
    memories' lines, the section header aside) allows. Reads only as many pages as the budget needs."""
    memories: Iterator[MemoryPublic] = (public_memory(record) for record in store.prompt_memories(user_id))
    return select_within_budget(memories, token_budget)


def format_memories_for_prompt(memories: Sequence[MemoryPublic]) -> str:
    """A system-prompt section listing `memories` in the order given; empty when there are none."""
    if not memories:
        return ""
    lines = [f"- ({memory.category}) {memory.content.replace(chr(10), chr(10) + '  ')}" for memory in memories]
    return "\n".join([PROMPT_SECTION_HEADER, *lines])


# Shared helpers -------------------------------------------------------------------------------------------


def public_memory(record: MemoryRecord) -> MemoryPublic:
    return MemoryPublic(
        id=record.memory_id,
        content=record.content,
        category=_category(record.category),
        priority=int(record.priority),
        active=record.active,
        archived=record.archived,
        expires_at=record.expires_at,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _category(value: str) -> Category:
    if value not in CATEGORIES:
        raise ValueError(f"stored memory has an unknown category {value!r}")
    return value
