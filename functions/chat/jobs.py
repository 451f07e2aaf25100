"""Chat's part in the account deletion workflow (functions.jobs.ports): what chat keeps per user, its rate-limit
windows and playground sessions, deleted a page at a time. Their usage is the usage context's; their messages are
conversations'.

A tool call waiting for its user's approval (`APPROVAL#<message>` items) is keyed by message, not by user, and
lives at most `APPROVAL_WAIT_SECONDS` plus an hour before DynamoDB's TTL removes it; no new one can appear once
the account's credentials are refused, which happens before the deletion starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.jobs.ports import DeletePage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.chat import playground_store, store
else:
    store = LazyModule("functions.chat.store")
    playground_store = LazyModule("functions.chat.playground_store")


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    deleted, more = store.delete_limit_windows_page(user_id, limit=limit)
    if not more:  # the windows are gone: the page's room left goes to the playground sessions
        if deleted == limit:
            return DeletePage(deleted=deleted, cursor="more")
        sessions, more = playground_store.delete_user_items_page(user_id, limit - deleted)
        deleted += sessions
    return DeletePage(deleted=deleted, cursor="more" if more else None)
