"""The jobs context's part in an account's deletion: the user's other jobs, their locks, and every file of
theirs in the export bucket. Deletion jobs stay: admins keep seeing what was deleted, and when."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from functions.jobs import files
from functions.jobs.ports import DeletePage

if TYPE_CHECKING:
    from functions.jobs import store
else:
    from shared.lazy import LazyModule

    store = LazyModule("functions.jobs.store")

LOCKED_KINDS = ("export",)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    """First the user's job records a page at a time, then their files, then their locks."""
    position: dict[str, Any] = json.loads(cursor) if cursor else {"phase": "jobs", "start": None}
    if position["phase"] == "jobs":
        records, last_key = store.user_jobs_page(user_id, position["start"], limit)
        leaving = [record for record in records if record.kind != "deletion"]
        store.delete_jobs(leaving)
        following = {"phase": "jobs", "start": last_key} if last_key else {"phase": "files"}
        return DeletePage(deleted=len(leaving), cursor=json.dumps(following))
    keys = files.keys_under(files.export_prefix(user_id), limit)
    if len(keys) < limit:
        keys += files.keys_under(files.import_prefix(user_id), limit - len(keys))
    files.delete_keys(keys)
    if len(keys) == limit:
        return DeletePage(deleted=len(keys), cursor=json.dumps({"phase": "files"}))
    store.delete_locks(user_id, LOCKED_KINDS)
    return DeletePage(deleted=len(keys), cursor=None)
