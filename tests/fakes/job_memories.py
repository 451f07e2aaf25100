"""The fake memories context of `tests.fakes.job_contexts`: a user's memories and profile, one export page."""

from __future__ import annotations

from collections.abc import Sequence

from functions.jobs.formats.items import ImportedItem, ImportedMemory
from functions.jobs.ports import DeletePage, ExportPage, ImportResult
from tests.fakes.job_contexts import store_imported, user


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    data = user(user_id)
    records = {"memories": list(data.memories)} if data.memories else {}
    documents = {"profile.json": data.profile} if data.profile else {}
    return ExportPage(records=records, documents=documents)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    data = user(user_id)
    deleted, data.memories = len(data.memories), []
    return DeletePage(deleted=deleted)


def import_items(user_id: str, job_id: str, items: Sequence[ImportedItem]) -> ImportResult:
    return store_imported(user_id, job_id, items, (ImportedMemory,))
