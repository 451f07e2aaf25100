"""The channels' part in the jobs workflows (functions.jobs.ports): the user's channels exported as the API shows
them (secrets masked, never in clear), and deleted with their contact maps and processed message ids, a page at a
time. Their conversations are the conversations context's, exported and deleted with the user's others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.jobs.ports import DeletePage, ExportPage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.channels import service, store
else:
    service = LazyModule("functions.channels.service")
    store = LazyModule("functions.channels.store")

EXPORT_STEM = "channels"
# A channel deleted is its own item and those of its partition (contacts, message ids): a handful of channels a page.
_CHANNELS_PER_PAGE = 5


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    records, next_cursor = store.owned_channels_page(user_id, limit=limit, cursor=cursor)
    exported = [service.exported_channel(record) for record in records]
    return ExportPage(records={EXPORT_STEM: exported} if exported else {}, cursor=next_cursor)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    """Delete a few of the user's channels with everything in their partitions; every page starts afresh."""
    records, next_cursor = store.owned_channels_page(user_id, limit=min(limit, _CHANNELS_PER_PAGE), cursor=None)
    deleted = store.delete_channels(records)
    return DeletePage(deleted=deleted, cursor="more" if next_cursor else None)
