"""Memories' routes: the caller's own memories, what goes into their prompts, counts, search and bulk import.

The fixed paths (`/active`, `/stats`, `/search`, `/bulk-import`) are declared before `/{memoryId}` so they are
never taken for a memory id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from functions.memories import service
from functions.memories.models import (
    BulkImportRequest,
    BulkImportResult,
    Category,
    MemoryCreate,
    MemoryPublic,
    MemoryRestore,
    MemoryStats,
    MemoryUpdate,
    SearchText,
)
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal
from shared.http.models import Page
from shared.http.responses import refusals
from shared.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=2048)]
MemoryId = Annotated[str, Path(alias="memoryId", max_length=26)]

router = APIRouter(prefix="/api/v1/memories", tags=["memories"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MemoryPublic, responses=refusals(409))
def create_memory(principal: CurrentPrincipal, body: MemoryCreate) -> MemoryPublic:
    return service.create_memory(principal.user_id, body)


@router.get("", response_model=Page[MemoryPublic], responses=refusals(400))
def list_memories(
    principal: CurrentPrincipal,
    *,
    category: Annotated[Category | None, Query()] = None,
    active: Annotated[bool | None, Query()] = None,
    archived: Annotated[bool, Query()] = False,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[MemoryPublic]:
    items, next_cursor = service.list_memories(
        principal.user_id, category=category, active=active, archived=archived, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get("/active", response_model=Page[MemoryPublic], responses=refusals(400))
def active_memories(
    principal: CurrentPrincipal, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[MemoryPublic]:
    items, next_cursor = service.active_memories(principal.user_id, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/stats", response_model=MemoryStats)
def memory_stats(principal: CurrentPrincipal) -> MemoryStats:
    return service.memory_stats(principal.user_id)


@router.get("/search", response_model=Page[MemoryPublic], responses=refusals(400))
def search_memories(
    principal: CurrentPrincipal,
    q: Annotated[SearchText, Query()],
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[MemoryPublic]:
    items, next_cursor = service.search_memories(principal.user_id, q, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.post("/bulk-import", response_model=BulkImportResult, responses=refusals(409))
def bulk_import(principal: CurrentPrincipal, body: BulkImportRequest) -> BulkImportResult:
    return service.bulk_import(principal.user_id, body)


@router.get("/{memoryId}", response_model=MemoryPublic, responses=refusals(404))
def get_memory(principal: CurrentPrincipal, memory_id: MemoryId) -> MemoryPublic:
    return service.get_memory(principal.user_id, memory_id)


@router.put("/{memoryId}", response_model=MemoryPublic, responses=refusals(404, 409))
def update_memory(principal: CurrentPrincipal, memory_id: MemoryId, body: MemoryUpdate) -> MemoryPublic:
    return service.update_memory(principal.user_id, memory_id, body)


@router.delete(
    "/{memoryId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=refusals(404, 409)
)
def delete_memory(principal: CurrentPrincipal, memory_id: MemoryId) -> Response:
    service.delete_memory(principal.user_id, memory_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{memoryId}/archive", response_model=MemoryPublic, responses=refusals(404, 409))
def archive_memory(principal: CurrentPrincipal, memory_id: MemoryId) -> MemoryPublic:
    return service.archive_memory(principal.user_id, memory_id)


@router.post("/{memoryId}/restore", response_model=MemoryPublic, responses=refusals(404, 409))
def restore_memory(principal: CurrentPrincipal, memory_id: MemoryId, body: MemoryRestore | None = None) -> MemoryPublic:
    return service.restore_memory(principal.user_id, memory_id, body)


app = create_app(title="Stratus memories", protected=[router])
