"""The audit log's part in the jobs workflows (functions.jobs.ports): the user's own events exported as the API
shows them (`audit.jsonl`); at deletion, the events stay (the legal hold) and only the user's data key is deleted,
so their personal fields no longer open (crypto-shredding, functions.audit.crypto)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.jobs.ports import DeletePage, ExportPage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.audit import service, store
else:
    service = LazyModule("functions.audit.service")
    store = LazyModule("functions.audit.store")

EXPORT_STEM = "audit"
_EARLIEST, _LATEST = "", "9999-12-31T23:59:59.999Z"


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    records, next_cursor = store.user_events_page(
        user_id, lower=_EARLIEST, upper=_LATEST, action=None, limit=min(limit, 1000), cursor=cursor
    )
    exported = [event.model_dump(mode="json", by_alias=True, exclude_none=True)
                for event in service.public_events(records)]  # fmt: skip
    return ExportPage(records={EXPORT_STEM: exported} if exported else {}, cursor=next_cursor)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    """Delete the user's key, and nothing else: one page, safe to run again."""
    return DeletePage(deleted=1 if store.delete_key(user_id) else 0)
