"""The WebSocket wire format: client frames in (`{"action": ..., ...}`), server frames out (`{"event", "data"}`).

Pure functions only, so the unit tests pin the validation and the 32 KB frame limit of API Gateway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# API Gateway WebSocket frames are at most 32 KB; a message may span frames up to 128 KB, but a client
# message over one frame is refused here so every message fits one frame both ways.
MAX_FRAME_BYTES = 32 * 1024
MAX_CLIENT_MESSAGE_BYTES = MAX_FRAME_BYTES

ACTIONS = (
    "chat:send", "chat:resume", "chat:cancel", "chat:typing", "chat:tool-approval", "conversation:join",
    "conversation:leave", "ping",
)  # fmt: skip

_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


class FrameError(Exception):
    """A client frame the server cannot act on; answered with `chat:error` and the connection stays open."""

    def __init__(self, code: str, message: str, action: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.action = action


@dataclass(frozen=True)
class ClientFrame:
    action: str
    fields: dict[str, Any]


def parse_client_frame(body: str | bytes | None) -> ClientFrame:
    """Validate one client message; `FrameError` says what is wrong with it."""
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if len(raw) > MAX_CLIENT_MESSAGE_BYTES:
        raise FrameError("message_too_large", f"Messages are limited to {MAX_CLIENT_MESSAGE_BYTES} bytes")
    try:
        document = json.loads(raw)
    except ValueError:
        raise FrameError("invalid_frame", 'Frames are JSON objects: {"action": ..., ...}') from None
    if not isinstance(document, dict):
        raise FrameError("invalid_frame", 'Frames are JSON objects: {"action": ..., ...}')
    action = document.pop("action", None)
    if not isinstance(action, str) or action not in ACTIONS:
        raise FrameError("unknown_action", f"Unknown action; use one of {', '.join(ACTIONS)}")
    _validate(action, document)
    return ClientFrame(action, document)


def _validate(action: str, fields: dict[str, Any]) -> None:
    def conversation_id(required: bool) -> None:
        value = fields.get("conversationId")
        if value is None and not required:
            return
        if not isinstance(value, str) or not _ID.match(value):
            raise FrameError("invalid_frame", "conversationId must be a conversation id", action)

    if action == "chat:send":
        conversation_id(required=False)
        message = fields.get("message")
        if not isinstance(message, str) or not message.strip():
            raise FrameError("invalid_frame", "message must be a non-empty string", action)
        agent_id = fields.get("agentId")
        if agent_id is not None and (not isinstance(agent_id, str) or not _ID.match(agent_id)):
            raise FrameError("invalid_frame", "agentId must be an agent id", action)
        model = fields.get("model")
        if model is not None and (not isinstance(model, str) or not 0 < len(model) <= 120):
            raise FrameError("invalid_frame", "model must be a model id", action)
    elif action == "chat:typing":
        conversation_id(required=True)
        if not isinstance(fields.get("isTyping"), bool):
            raise FrameError("invalid_frame", "isTyping must be true or false", action)
    elif action in ("chat:resume", "chat:cancel"):
        _message_id(action, fields)
        after = fields.get("after", 0)
        if action == "chat:resume" and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
            raise FrameError("invalid_frame", "after must be a seq, 0 or more", action)
    elif action == "chat:tool-approval":
        _message_id(action, fields)
        tool_call_id = fields.get("toolCallId")
        if not isinstance(tool_call_id, str) or not 0 < len(tool_call_id) <= 128:
            raise FrameError("invalid_frame", "toolCallId must be a tool call id", action)
        if not isinstance(fields.get("approved"), bool):
            raise FrameError("invalid_frame", "approved must be true or false", action)
    elif action in ("conversation:join", "conversation:leave"):
        conversation_id(required=True)


def _message_id(action: str, fields: dict[str, Any]) -> None:
    if not isinstance(fields.get("messageId"), str) or not _ID.match(fields["messageId"]):
        raise FrameError("invalid_frame", "messageId must be a message id", action)


def server_frame(event: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"event": event, "data": data}, ensure_ascii=False, separators=(",", ":")).encode()


def error_frame(
    code: str, message: str, action: str | None = None, details: list[dict[str, Any]] | None = None
) -> bytes:
    data: dict[str, Any] = {"code": code, "message": message}
    if action:
        data["action"] = action
    if details:  # e.g. which limit was hit and when to retry (`rate_limited`)
        data["details"] = details
    return server_frame("chat:error", data)


def split_event(event: str, data: dict[str, Any], limit: int = MAX_FRAME_BYTES) -> list[bytes]:
    """`data` as one frame, or, when that is over `limit`, as several frames of the same event each under it.

    The longest string field is cut into consecutive pieces: content deltas concatenate as they are; any
    other event's pieces carry `part` (from 0) and `parts`, so a client can put them back together.
    """
    whole = server_frame(event, data)
    if len(whole) <= limit:
        return [whole]
    strings = [(key, value) for key, value in data.items() if isinstance(value, str)]
    if not strings:
        raise ValueError(f"a {event} frame of {len(whole)} bytes has no text to split")
    key, text = max(strings, key=lambda item: len(item[1]))
    marked = data.get("type") != "content"
    # The frame with an empty field, plus room for the part markers, is what every piece carries besides text.
    skeleton = {**data, key: ""}
    if marked:
        skeleton |= {"part": 10**6, "parts": 10**6}
    budget = limit - len(server_frame(event, skeleton))
    if budget < 64:
        raise ValueError(f"a {event} frame leaves no room for text under {limit} bytes")
    pieces = _cut(text, budget)
    frames = []
    for index, piece in enumerate(pieces):
        part = {**data, key: piece}
        if marked:
            part |= {"part": index, "parts": len(pieces)}
        frames.append(server_frame(event, part))
    return frames


def _cut(text: str, budget: int) -> list[str]:
    """Consecutive pieces of `text` whose JSON string encodings (quotes aside) each take at most `budget` bytes."""
    pieces: list[str] = []
    start, size = 0, 0
    for index, char in enumerate(text):
        cost = len(json.dumps(char, ensure_ascii=False).encode()) - 2
        if size + cost > budget:
            pieces.append(text[start:index])
            start, size = index, 0
        size += cost
    pieces.append(text[start:])
    return pieces
