"""Usage's part in the jobs workflows (functions.jobs.ports): the user's usage records and daily totals, exported
and deleted a page at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.jobs.ports import DeletePage, ExportPage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.usage import store
else:
    store = LazyModule("functions.usage.store")

EXPORT_STEM = "usage"


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    """Records `{"kind": "reply", "id", "at", provider, model, tokens, cost, ...}` (one reply's usage) and
    `{"kind": "day", "day", "model", requests, tokens, cost, latencyMsTotal}` (a day's totals per model)."""
    records, next_cursor = store.usage_page(user_id, limit=limit, cursor=cursor)
    return ExportPage(records={EXPORT_STEM: records} if records else {}, cursor=next_cursor)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    deleted, more = store.delete_usage_page(user_id, limit=limit)
    return DeletePage(deleted=deleted, cursor="more" if more else None)
