"""The MCP registry's part in the jobs workflows (functions.jobs.ports): the servers a user registered for
themselves, exported with their secrets masked and deleted with their names, a page at a time. Stage servers
belong to the stage, whoever registered them, and stay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.jobs.ports import DeletePage, ExportPage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.mcp import service, store
else:
    service = LazyModule("functions.mcp.service")
    store = LazyModule("functions.mcp.store")

EXPORT_STEM = "mcp-servers"
# A server deleted is two items (the server and its name).
_ITEMS_PER_SERVER = 2


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    """The user's own servers as the API shows them: secret names kept, their values masked, never in clear."""
    records, next_cursor = store.own_servers_page(user_id, limit=limit, cursor=cursor)
    exported = [service.public_server(record).model_dump(mode="json", by_alias=True) for record in records]
    return ExportPage(records={EXPORT_STEM: exported} if exported else {}, cursor=next_cursor)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    """Delete a page of the user's own servers with their name claims; every page starts afresh (what is deleted
    is gone)."""
    records, next_cursor = store.own_servers_page(user_id, limit=max(1, limit // _ITEMS_PER_SERVER), cursor=None)
    deleted = store.delete_own_servers(records)
    return DeletePage(deleted=deleted, cursor="more" if next_cursor else None)
