"""A Stratus export archive read back as imported items: its projects first (conversations name them), then
its conversations with their messages, prompts and memories, each as the API's export wrote it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from functions.jobs.formats.archive import ExportArchive
from functions.jobs.formats.items import (
    ImportedConversation,
    ImportedItem,
    ImportedMemory,
    ImportedMessage,
    ImportedProject,
    ImportedPrompt,
    RejectedItem,
    Role,
    from_iso,
    short_title,
)

_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system"}
_SINGULAR = {"projects": "project", "conversations": "conversation", "prompts": "prompt", "memories": "memory"}


class _Missing(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _Missing(f"it has no {key}")
    return value


def _optional_text(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    return value if isinstance(value, str) and value else None


def _time(record: dict[str, Any], key: str) -> Any:
    value = from_iso(record.get(key))
    if value is None:
        raise _Missing(f"its {key} is not a timestamp")
    return value


def import_archive(archive: ExportArchive) -> Iterator[ImportedItem]:
    """Every item of the archive, in the order an import stores them."""
    readers = (("projects", _project), ("conversations", _conversation), ("prompts", _prompt), ("memories", _memory))
    for context, convert in readers:
        for number, record in enumerate(archive.records(context), start=1):
            label = f"{_SINGULAR[context]} {number}"
            try:
                yield convert(record, label)
            except _Missing as missing:
                yield RejectedItem(label, missing.reason)  # a conversation's messages are skipped with it


def _project(record: dict[str, Any], _: str) -> ImportedProject:
    return ImportedProject(
        source_id=_text(record, "id"),
        name=_text(record, "name"),
        description=_optional_text(record, "description"),
        created_at=_time(record, "createdAt"),
        updated_at=_time(record, "updatedAt"),
    )


def _conversation(record: dict[str, Any], label: str) -> ImportedConversation:
    created = _time(record, "createdAt")
    return ImportedConversation(
        source_id=_optional_text(record, "id"),
        title=short_title(record.get("title"), "Imported conversation"),
        created_at=created,
        updated_at=from_iso(record.get("updatedAt")) or created,
        messages=_messages(record.get("messages") or (), label),
        model=_optional_text(record, "model"),
        system_prompt=_optional_text(record, "systemPrompt"),
        archived=record.get("archived") is True,
        project_source_id=_optional_text(record, "projectId"),
    )


def _messages(records: Iterable[dict[str, Any]], label: str) -> Iterator[ImportedMessage | RejectedItem]:
    for number, record in enumerate(records, start=1):
        raw_role = record.get("role")
        role = _ROLES.get(raw_role) if isinstance(raw_role, str) else None
        content, created = record.get("content"), from_iso(record.get("createdAt"))
        metadata = record.get("metadata")
        if role is None:
            yield RejectedItem(f"{label}, message {number}", "its role is not user, assistant or system")
        elif not isinstance(content, str) or not content:
            yield RejectedItem(f"{label}, message {number}", "it has no text")
        elif created is None:
            yield RejectedItem(f"{label}, message {number}", "its createdAt is not a timestamp")
        else:
            yield ImportedMessage(role, content, created, metadata if isinstance(metadata, dict) else None)


def _prompt(record: dict[str, Any], _: str) -> ImportedPrompt:
    tags = record.get("tags")
    return ImportedPrompt(
        source_id=_optional_text(record, "id"),
        title=_text(record, "title"),
        content=_text(record, "content"),
        tags=[tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else [],
        created_at=from_iso(record.get("createdAt")),
        updated_at=from_iso(record.get("updatedAt")),
    )


def _memory(record: dict[str, Any], _: str) -> ImportedMemory:
    priority = record.get("priority")
    return ImportedMemory(
        source_id=_optional_text(record, "id"),
        content=_text(record, "content"),
        category=_optional_text(record, "category"),
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else None,
        active=record.get("active") is not False,
        archived=record.get("archived") is True,
        expires_at=from_iso(record.get("expiresAt")),
        created_at=_time(record, "createdAt"),
        updated_at=from_iso(record.get("updatedAt")) or _time(record, "createdAt"),
    )
