"""A ChatGPT data export's `conversations.json`: each conversation's `mapping` is a tree of message nodes (one
branch per edit or regeneration); the branch the user last saw runs from `current_node` up through `parent`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from functions.jobs.formats.items import (
    ImportedConversation,
    ImportedMessage,
    RejectedItem,
    Role,
    conversation_label,
    conversation_read,
    from_epoch_seconds,
)
from functions.jobs.formats.limits import ImportLimits

MARKER = "mapping"
"""The key every ChatGPT conversation has: a file where none has it is not a ChatGPT export."""

_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system"}
_TEXT_TYPES = ("text", "multimodal_text")
# A voice conversation's parts carry what was said as text
_TEXT_PART_TYPES = ("audio_transcription",)


def import_conversation(index: int, raw: object, limits: ImportLimits) -> ImportedConversation | RejectedItem:
    """The conversation along the branch the user saw, or why it cannot be imported."""
    if not isinstance(raw, dict):
        return RejectedItem(f"conversation {index + 1}", "not a conversation (a JSON object)")
    label = conversation_label(index, raw.get("title"))
    mapping = raw.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        return RejectedItem(label, "it has no message tree (mapping)")
    if len(mapping) > limits.max_messages_per_conversation:
        return RejectedItem(label, f"it has more than {limits.max_messages_per_conversation} messages")
    branch = _visible_branch(mapping, raw.get("current_node"))
    if branch is None:
        return RejectedItem(label, "its message tree loops back on itself")
    started = from_epoch_seconds(raw.get("create_time"))
    return conversation_read(
        label,
        list(_messages(branch, label, started)),
        started=started,
        updated=from_epoch_seconds(raw.get("update_time")),
        source_id=raw.get("conversation_id") or raw.get("id"),
        title=raw.get("title"),
        untitled="Imported from ChatGPT",
        model=_model(raw, branch),
        archived=raw.get("is_archived") is True,
    )


def _visible_branch(mapping: dict[str, Any], current: object) -> list[dict[str, Any]] | None:
    """The nodes from the root to `current_node`, root first. Without a usable `current_node`, the newest
    branch: from the root, the last child each time. None when the parent links loop."""
    if not isinstance(current, str) or current not in mapping:
        current = _newest_leaf(mapping)
    branch: list[dict[str, Any]] = []
    seen: set[str] = set()
    node_id: object = current
    while isinstance(node_id, str) and node_id in mapping:
        if node_id in seen:
            return None
        seen.add(node_id)
        node = mapping[node_id]
        if not isinstance(node, dict):
            break
        branch.append(node)
        node_id = node.get("parent")
    branch.reverse()
    return branch


def _newest_leaf(mapping: dict[str, Any]) -> str | None:
    roots = [key for key, node in mapping.items() if isinstance(node, dict) and node.get("parent") not in mapping]
    node_id = roots[0] if roots else None
    seen: set[str] = set()
    while node_id is not None and node_id not in seen:
        seen.add(node_id)
        children = [c for c in (mapping[node_id].get("children") or []) if isinstance(c, str) and c in mapping]
        if not children:
            return node_id
        node_id = children[-1]
    return node_id


def _messages(
    branch: list[dict[str, Any]], label: str, started: datetime | None
) -> Iterator[ImportedMessage | RejectedItem]:
    last_time = started
    number = 0
    for node in branch:
        message = node.get("message")
        if not isinstance(message, dict) or not _shown(message):
            continue
        role = _ROLES[message["author"]["role"]]
        text, attachments = _text(message.get("content"))
        if role == "system" and not text.strip():
            continue  # an empty system node is scaffolding, not a message the user saw
        number += 1
        created = from_epoch_seconds(message.get("create_time")) or last_time
        if created is None:
            yield RejectedItem(f"{label}, message {number}", "it has no timestamp")
            continue
        last_time = created
        if not text.strip():
            reason = "it holds only attachments, which are not imported" if attachments else "it has no text"
            yield RejectedItem(f"{label}, message {number}", reason)
            continue
        yield ImportedMessage(role=role, content=text, created_at=created)


def _shown(message: dict[str, Any]) -> bool:
    """Whether the user saw it as a chat message: not a tool's output or a call to a tool, not hidden
    (custom instructions, memory updates), not reasoning or code sent to a tool."""
    author = message.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    raw_metadata = message.get("metadata")
    metadata = raw_metadata if isinstance(raw_metadata, dict) else {}
    content = message.get("content")
    content_type = content.get("content_type") if isinstance(content, dict) else None
    return (
        role in _ROLES
        and message.get("recipient", "all") in ("all", None)
        and not metadata.get("is_visually_hidden_from_conversation")
        and content_type in _TEXT_TYPES
    )


def _text(content: object) -> tuple[str, int]:
    """The message's text, its parts joined; and how many parts were not text (images, files)."""
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    others = 0
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, str):
            texts.append(part)
        elif (
            isinstance(part, dict)
            and part.get("content_type") in _TEXT_PART_TYPES
            and isinstance(part.get("text"), str)
        ):
            texts.append(part["text"])
        elif part is not None:
            others += 1
    return "\n".join(text for text in texts if text), others


def _model(raw: Mapping[str, Any], branch: list[dict[str, Any]]) -> str | None:
    model = raw.get("default_model_slug")
    if isinstance(model, str) and model:
        return model
    for node in reversed(branch):
        message = node.get("message")
        metadata = message.get("metadata") if isinstance(message, dict) else None
        slug = metadata.get("model_slug") if isinstance(metadata, dict) else None
        if isinstance(slug, str) and slug:
            return slug
    return None
