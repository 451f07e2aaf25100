"""Chat's part in the account deletion workflow (functions.jobs.ports): what chat keeps per user, its rate-limit
windows and its text-enhancement sessions and usage counters, deleted a page at a time. Their usage is the usage
context's; their messages are conversations'.

A tool call waiting for its user's approval (`APPROVAL#<message>` items) is keyed by message, not by user, and
lives at most `APPROVAL_WAIT_SECONDS` plus an hour before DynamoDB's TTL removes it; no new one can appear once
the account's credentials are refused, which happens before the deletion starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.jobs.ports import DeletePage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.chat import enhance_store, store
else:
    store = LazyModule("functions.chat.store")
    enhance_store = LazyModule("functions.chat.enhance_store")


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    deleted, more = store.delete_limit_windows_page(user_id, limit=limit)
    if not more and deleted < limit:
        enhancements, more = enhance_store.delete_user_items_page(user_id, limit - deleted)
        deleted += enhancements
    elif not more:
        more = True  # the enhancement items are for the next page
    return DeletePage(deleted=deleted, cursor="more" if more else None)
