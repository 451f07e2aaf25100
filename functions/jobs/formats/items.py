"""The neutral shape every import becomes, whatever it came from: what the contexts' import functions take."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Role = Literal["user", "assistant", "system"]
ImportFormat = Literal["stratus", "chatgpt", "claude"]


@dataclass(frozen=True)
class ImportedMessage:
    role: Role
    content: str
    created_at: datetime
    metadata: dict[str, Any] | None = None


@dataclass
class ImportedConversation:
    """One conversation. `messages` holds its messages in order, with a RejectedItem in place of each one that
    could not be imported. From a Stratus archive it is read lazily: consume it before asking the import for its
    next item (a list, for the formats read a conversation at a time)."""

    source_id: str | None
    """The conversation's id in the file it came from: what a retried import deduplicates on."""
    title: str
    created_at: datetime
    updated_at: datetime
    messages: Iterable[ImportedMessage | RejectedItem]
    model: str | None = None
    system_prompt: str | None = None
    archived: bool = False
    project_source_id: str | None = None
    """The `source_id` of the ImportedProject it belongs to, imported earlier in the same file."""


@dataclass(frozen=True)
class ImportedProject:
    source_id: str
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ImportedPrompt:
    source_id: str | None
    title: str
    content: str
    tags: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ImportedMemory:
    source_id: str | None
    content: str
    category: str | None
    """As exported; None lets the memories context apply its default, as for priority."""
    priority: int | None
    active: bool
    archived: bool
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RejectedItem:
    """An item of the file left out, and why: the job's `result.rejected` entry `{item, reason}`."""

    item: str
    reason: str

    def as_result(self) -> dict[str, str]:
        return {"item": self.item, "reason": self.reason}


ImportedItem = ImportedProject | ImportedConversation | ImportedPrompt | ImportedMemory | RejectedItem


def conversation_label(index: int, title: object) -> str:
    """How a rejected conversation of an export is named to its user: its place in the file and its title."""
    if isinstance(title, str) and title.strip():
        return f'conversation {index + 1} "{short_title(title, "")[:80]}"'
    return f"conversation {index + 1}"


def conversation_read(
    label: str,
    messages: list[ImportedMessage | RejectedItem],
    *,
    started: datetime | None,
    updated: datetime | None,
    source_id: object,
    title: object,
    untitled: str,
    model: object = None,
    archived: bool = False,
) -> ImportedConversation | RejectedItem:
    """A conversation read from an export, its times defaulting to its messages'; refused without any message."""
    imported = [m for m in messages if isinstance(m, ImportedMessage)]
    if not imported:
        return RejectedItem(label, "it has no message with text")
    created = started or imported[0].created_at
    return ImportedConversation(
        source_id=source_id if isinstance(source_id, str) and source_id else None,
        title=short_title(title, untitled),
        created_at=created,
        updated_at=max(updated or imported[-1].created_at, created),
        messages=messages,
        model=model if isinstance(model, str) and model else None,
        archived=archived,
    )


def from_epoch_seconds(value: object) -> datetime | None:
    """A Unix timestamp in seconds (ChatGPT's `create_time`, a float) as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def from_iso(value: object) -> datetime | None:
    """An ISO 8601 timestamp (`Z` or an offset; naive ones taken as UTC) as an aware UTC datetime."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def short_title(value: object, fallback: str) -> str:
    """A title a conversation can carry: stripped, at most 200 characters, never empty."""
    title = " ".join(value.split()) if isinstance(value, str) else ""
    return (title or fallback)[:200]
