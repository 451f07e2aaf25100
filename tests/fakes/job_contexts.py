"""Two contexts of tests only, implementing the page protocols of `functions.jobs.ports` over in-memory data, so
the jobs context's tasks and steps are tested on their own: `conversations` (conversations with their messages,
projects; imports projects, conversations and prompts) and `memories` (memories and the profile document).

`install(monkeypatch)` lists them (with the real jobs context, for deletions) as the stage's job contexts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from functions.jobs import contexts
from functions.jobs.formats.items import (
    ImportedConversation,
    ImportedItem,
    ImportedMemory,
    ImportedMessage,
    ImportedProject,
    ImportedPrompt,
    RejectedItem,
)
from functions.jobs.ports import ArchivePage, DeletePage, ExportPage, ImportResult
from shared.tables import JOBS


@dataclass
class UserData:
    conversations: list[dict[str, Any]] = field(default_factory=list)
    """Each `{"id", "title", "createdAt", "messages": [...]}`, as the API answers."""
    projects: list[dict[str, Any]] = field(default_factory=list)
    memories: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    imported: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What imports stored, by (job, kind, source id or place): stored twice, it is still one."""


DATA: dict[str, UserData] = {}
ARCHIVED_AT: list[datetime] = []
# A page of the fake conversations context holds at most this many messages, so a conversation spans pages.
MESSAGES_PER_PAGE = 3


def user(user_id: str) -> UserData:
    return DATA.setdefault(user_id, UserData())


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    DATA.clear()
    ARCHIVED_AT.clear()
    monkeypatch.setattr(
        contexts,
        "JOB_CONTEXTS",
        (
            contexts.JobContext(
                "conversations", "tests.fakes.job_contexts", (), frozenset({"export", "import", "deletion", "archive"}),
                imports=("project", "conversation", "prompt"),
            ),
            contexts.JobContext(
                "memories", "tests.fakes.job_memories", (), frozenset({"export", "import", "deletion"}),
                imports=("memory",),
            ),
            contexts.JobContext(
                "jobs", "functions.jobs.userdata", (JOBS,), frozenset({"deletion"}), uses_export_bucket=True, last=True
            ),
        ),
    )  # fmt: skip


# The conversations context's protocols ----------------------------------------------------------------------


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    """Projects on the first page, then conversations MESSAGES_PER_PAGE messages a page; a long one continues on
    the next page with more `message` lines."""
    data = user(user_id)
    conversation, message = json.loads(cursor) if cursor else (0, 0)
    lines: list[dict[str, Any]] = []
    if conversation < len(data.conversations):
        current = data.conversations[conversation]
        if message == 0:
            lines.append({"conversation": {k: v for k, v in current.items() if k != "messages"}})
        chunk = current["messages"][message : message + MESSAGES_PER_PAGE]
        lines += [{"message": m} for m in chunk]
        message += len(chunk)
        if message >= len(current["messages"]):
            conversation, message = conversation + 1, 0
    records = {"conversations": lines} if lines else {}
    if cursor is None and data.projects:
        records["projects"] = list(data.projects)
    following = json.dumps([conversation, message]) if conversation < len(data.conversations) else None
    return ExportPage(records=records, cursor=following)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    data = user(user_id)
    deleted = len(data.conversations) + len(data.projects)
    data.conversations, data.projects = [], []
    return DeletePage(deleted=deleted)


def archive_page(now: datetime, cursor: str | None, limit: int) -> ArchivePage:
    ARCHIVED_AT.append(now)
    return ArchivePage(archived=1)


def import_items(user_id: str, job_id: str, items: Sequence[ImportedItem]) -> ImportResult:
    return store_imported(user_id, job_id, items, (ImportedProject, ImportedConversation, ImportedPrompt))


def store_imported(user_id: str, job_id: str, items: Sequence[ImportedItem], kinds: tuple[type, ...]) -> ImportResult:
    data = user(user_id)
    counts: dict[str, int] = {}
    rejected: list[RejectedItem] = []
    for item in items:
        assert isinstance(item, kinds), f"handed an item of another context: {item!r}"
        key = f"{job_id}/{type(item).__name__}/{getattr(item, 'source_id', None) or len(data.imported)}"
        if isinstance(item, ImportedPrompt) and item.title == "refused by the context":
            rejected.append(RejectedItem(f'prompt "{item.title}"', "the context refused it"))
            continue
        if isinstance(item, ImportedConversation):
            messages = list(item.messages)
            assert all(isinstance(m, ImportedMessage) for m in messages), "a rejected message reached the context"
            counts["messages"] = counts.get("messages", 0) + len(messages)
            data.imported[key] = {"title": item.title, "messages": [(m.role, m.content) for m in messages]}
        elif isinstance(item, ImportedMemory):
            data.imported[key] = {"content": item.content}
        else:
            data.imported[key] = {"item": item}
        kind = {ImportedProject: "projects", ImportedConversation: "conversations", ImportedPrompt: "prompts",
                ImportedMemory: "memories"}[type(item)]  # fmt: skip
        counts[kind] = counts.get(kind, 0) + 1
    return ImportResult(imported=counts, rejected=rejected)
