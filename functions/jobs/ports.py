"""What a context offers the jobs workflows: its data of one user page by page (export, deletion), the items an
import hands it, and what the daily archiving run finds through its own index.

Each context implements these in `functions/<context>/jobs.py` (a module, its functions at top level) and keeps
owning its data: the workflows never touch a context's table themselves. A page is bounded work (at most `limit`
items read or written, so a task never outgrows one Lambda invocation whatever the user holds); its `cursor` says
where the next page starts, None when the context is done. A cursor is an opaque string the context alone reads
(a JSON document of its own, for example); the state machine carries it from one page to the next.

Pages are retried after a failure (Step Functions' Retry): a page must be safe to run twice with the same cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from functions.jobs.formats.items import ImportedItem, RejectedItem

# The kinds an import counts, in its result and in each context's ImportResult.
IMPORT_KINDS = ("conversations", "messages", "projects", "prompts", "memories")

# Items one page reads or writes at most: a few seconds of DynamoDB batches, far from a Lambda's time limit.
PAGE_ITEMS = 2_000


@dataclass(frozen=True)
class ExportPage:
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Archive file stem ("conversations", "projects", "memories", "mcp-servers", ...) → its JSON Lines records in
    order. `conversations` records are `{"conversation": {...}}` and `{"message": {...}}` lines, each conversation
    followed by its messages (formats.archive); a long conversation may continue on the next page."""
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Whole documents of the archive: "profile.json", "settings.json" (identity)."""
    cursor: str | None = None


@dataclass(frozen=True)
class DeletePage:
    deleted: int
    """Items removed (or, for messages kept in others' conversations, made anonymous) by this page."""
    cursor: str | None = None


@dataclass(frozen=True)
class ArchivePage:
    archived: int
    cursor: str | None = None


@dataclass(frozen=True)
class ImportResult:
    imported: dict[str, int] = field(default_factory=dict)
    """Counted by kind: conversations, messages, projects, prompts, memories."""
    rejected: list[RejectedItem] = field(default_factory=list)


class ExportsData(Protocol):
    def export_page(self, user_id: str, cursor: str | None, limit: int) -> ExportPage: ...


class DeletesData(Protocol):
    def delete_page(self, user_id: str, cursor: str | None, limit: int) -> DeletePage: ...


class ArchivesData(Protocol):
    def archive_page(self, now: datetime, cursor: str | None, limit: int) -> ArchivePage: ...


class ImportsData(Protocol):
    def import_items(self, user_id: str, job_id: str, items: Sequence[ImportedItem]) -> ImportResult:
        """Store `items` (only the kinds this context declares in functions.jobs.contexts.JOB_CONTEXTS) for `user_id`.
        Idempotent per (user, item): a retried page or a second import of the same file adds nothing twice
        (ids derive from the item's `source_id` where it has one, else from `job_id` and its place in the file).
        A conversation's `project_source_id` names a project imported earlier in the same job."""
        ...
