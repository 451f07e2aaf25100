"""The webhooks' part in the jobs workflows (functions.jobs.ports): a user's own subscriptions, exported as the API
shows them (never their secret) and deleted with their deliveries and log, a page at a time. Stage subscriptions
belong to the stage, whoever created them, and stay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.jobs.ports import DeletePage, ExportPage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.webhooks import service, store
else:
    service = LazyModule("functions.webhooks.service")
    store = LazyModule("functions.webhooks.store")

EXPORT_STEM = "webhook-subscriptions"
# Subscriptions deleted per page: each takes its deliveries and log with it.
_SUBSCRIPTIONS_PER_PAGE = 20


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    records, next_cursor = store.subscriptions_page(user_id, limit=limit, cursor=cursor)
    exported = [service.public_subscription(record).model_dump(mode="json", by_alias=True) for record in records]
    return ExportPage(records={EXPORT_STEM: exported} if exported else {}, cursor=next_cursor)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    """Delete a page of the user's subscriptions; every page starts afresh (what is deleted is gone)."""
    records, next_cursor = store.subscriptions_page(
        user_id, limit=max(1, min(limit, _SUBSCRIPTIONS_PER_PAGE)), cursor=None
    )
    deleted = store.delete_many(records)
    return DeletePage(deleted=deleted, cursor="more" if next_cursor else None)
