"""Realtime's part in the account deletion workflow (functions.jobs.ports): the user's WebSocket connections and
their room memberships, found through gsi1, deleted a page of connections at a time. The connections themselves
hold no credential that still works: every one of the user's was refused before the deletion started."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.jobs.ports import DeletePage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.realtime import store
else:
    store = LazyModule("functions.realtime.store")

# A connection is its item and two per room it joined: a page of connections stays well within `limit` items.
_ITEMS_PER_CONNECTION = 10


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    connections = max(1, limit // _ITEMS_PER_CONNECTION)
    deleted, more = store.remove_user_connections_page(user_id, limit=connections)
    return DeletePage(deleted=deleted, cursor="more" if more else None)
