"""Chat's part in the export and account deletion workflows (functions.jobs.ports): what chat keeps per user.

Exported: the user's playground comparisons and text-enhancement sessions, as their GET routes answer them.
Deleted a page at a time: their rate-limit windows, comparisons, enhancement sessions and usage counters. Their
usage records are the usage context's; their messages are conversations'.

A tool call waiting for its user's approval (`APPROVAL#<message>` items), a reply's event log (`REPLY#<stream>`)
and a stream ticket (`TICKET#<hash>`) are keyed by message, stream or ticket, not by user, and live at most an hour
or so before DynamoDB's TTL removes them; no new one can appear once the account's credentials are refused, which
happens before the deletion starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from functions.jobs.ports import DeletePage, ExportPage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.chat import enhance_store, playground_store, store
else:
    store = LazyModule("functions.chat.store")
    playground_store = LazyModule("functions.chat.playground_store")
    enhance_store = LazyModule("functions.chat.enhance_store")

ExportPart = Callable[[str, str | None, int], tuple[list[dict[str, Any]], str | None]]


def _export_parts() -> tuple[tuple[str, ExportPart], ...]:
    return (
        ("playground-sessions", playground_store.export_sessions_page),
        ("enhancement-sessions", enhance_store.export_sessions_page),
    )


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    """A page of one part (the cursor says which, and where in it), then the next part's, until the last."""
    parts = _export_parts()
    index, _, inner = (cursor or "0:").partition(":")
    part = int(index)
    stem, page = parts[part]
    records, next_inner = page(user_id, inner or None, limit)
    if next_inner:
        next_cursor: str | None = f"{part}:{next_inner}"
    else:
        next_cursor = f"{part + 1}:" if part + 1 < len(parts) else None
    return ExportPage(records={stem: records} if records else {}, cursor=next_cursor)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    """Delete up to `limit` items, part after part: limit windows, comparisons, enhancement items."""
    parts: tuple[Callable[[int], tuple[int, bool]], ...] = (
        lambda room: store.delete_limit_windows_page(user_id, limit=room),
        lambda room: playground_store.delete_user_items_page(user_id, room),
        lambda room: enhance_store.delete_user_items_page(user_id, room),
    )
    deleted = 0
    for delete in parts:
        if deleted == limit:
            return DeletePage(deleted=deleted, cursor="more")
        gone, more = delete(limit - deleted)
        deleted += gone
        if more:
            return DeletePage(deleted=deleted, cursor="more")
    return DeletePage(deleted=deleted, cursor=None)
