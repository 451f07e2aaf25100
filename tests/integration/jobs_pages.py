"""Running a context's jobs pages to their end, as the workflows do, for the contexts' tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functions.jobs.ports import DeletePage, ExportPage

# A context whose pages have not ended after this many has lost its way (a cursor that never ends).
MAX_PAGES = 50


def export_all(
    export_page: Callable[[str, str | None, int], ExportPage], user_id: str, stem: str, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Every record of `stem` the pages hold, in order, and how many pages it took."""
    records: list[dict[str, Any]] = []
    cursor = None
    for pages in range(1, MAX_PAGES + 1):
        page = export_page(user_id, cursor, limit)
        records += page.records.get(stem, [])
        if (cursor := page.cursor) is None:
            return records, pages
    raise AssertionError("the export never ended")


def delete_all(delete_page: Callable[[str, str | None, int], DeletePage], user_id: str, limit: int) -> tuple[int, int]:
    """How many items the pages deleted, and how many pages it took."""
    deleted = 0
    cursor = None
    for pages in range(1, MAX_PAGES + 1):
        page = delete_page(user_id, cursor, limit)
        deleted += page.deleted
        if (cursor := page.cursor) is None:
            return deleted, pages
    raise AssertionError("the deletion never ended")
