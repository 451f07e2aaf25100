"""A Claude.ai export's `conversations.json`: each conversation's `chat_messages` in order, each message's
`sender` human or assistant, its text in `content` blocks (newer exports) or `text` (older ones)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from functions.jobs.formats.items import (
    ImportedConversation,
    ImportedMessage,
    RejectedItem,
    Role,
    conversation_label,
    conversation_read,
    from_iso,
)
from functions.jobs.formats.limits import ImportLimits

MARKER = "chat_messages"
"""The key every Claude conversation has: a file where none has it is not a Claude export."""

_SENDERS: dict[str, Role] = {"human": "user", "user": "user", "assistant": "assistant"}


def import_conversation(index: int, raw: object, limits: ImportLimits) -> ImportedConversation | RejectedItem:
    """The conversation with its messages in order, or why it cannot be imported."""
    if not isinstance(raw, dict):
        return RejectedItem(f"conversation {index + 1}", "not a conversation (a JSON object)")
    label = conversation_label(index, raw.get("name"))
    chat_messages = raw.get("chat_messages")
    if not isinstance(chat_messages, list):
        return RejectedItem(label, "it has no chat_messages")
    if len(chat_messages) > limits.max_messages_per_conversation:
        return RejectedItem(label, f"it has more than {limits.max_messages_per_conversation} messages")
    started = from_iso(raw.get("created_at"))
    return conversation_read(
        label,
        list(_messages(chat_messages, label, started)),
        started=started,
        updated=from_iso(raw.get("updated_at")),
        source_id=raw.get("uuid"),
        title=raw.get("name"),
        untitled="Imported from Claude",
        model=raw.get("model"),
    )


def _messages(
    chat_messages: list[Any], label: str, started: datetime | None
) -> Iterator[ImportedMessage | RejectedItem]:
    last_time = started
    for number, message in enumerate(chat_messages, start=1):
        item = f"{label}, message {number}"
        if not isinstance(message, dict):
            yield RejectedItem(item, "not a message (a JSON object)")
            continue
        sender = message.get("sender")
        role = _SENDERS.get(sender) if isinstance(sender, str) else None
        if role is None:
            yield RejectedItem(item, "its sender is neither human nor assistant")
            continue
        created = from_iso(message.get("created_at")) or last_time
        if created is None:
            yield RejectedItem(item, "it has no timestamp")
            continue
        last_time = created
        text = _text(message)
        if not text.strip():
            yield RejectedItem(item, "it has no text")
            continue
        yield ImportedMessage(role=role, content=text, created_at=created)


def _text(message: dict[str, Any]) -> str:
    """The text blocks of `content` (tool calls, tool results and thinking are not the conversation), else
    `text`; then the text of files the user pasted or attached, which Claude extracted and read with it."""
    blocks = message.get("content")
    texts = [
        block["text"]
        for block in (blocks if isinstance(blocks, list) else [])
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    ]
    text = "\n\n".join(t for t in texts if t)
    if not text.strip() and isinstance(message.get("text"), str):
        text = message["text"]
    attachments = message.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        extracted = attachment.get("extracted_content") if isinstance(attachment, dict) else None
        if isinstance(extracted, str) and extracted.strip():
            name = attachment.get("file_name") or "attachment"
            text = f"{text}\n\n[{name}]\n{extracted}" if text else f"[{name}]\n{extracted}"
    return text
