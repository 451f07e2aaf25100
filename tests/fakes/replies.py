"""The typed events of one reply, in the order and shapes the reply generator yields them (start, content,
tool_use, usage, error, end), for tests of what consumes them."""

from __future__ import annotations

from typing import Any

MESSAGE_ID = "01JCOMPATREPLY0000000000000"


def reply_events(
    *chunks: str,
    tool_calls: tuple[tuple[str, str, dict[str, Any]], ...] = (),
    input_tokens: int = 12,
    output_tokens: int = 7,
    stop_reason: str | None = None,
    stop_sequence: str | None = None,
    failure: str | None = None,
    model: str = "claude-sonnet-4-6",
    provider: str = "anthropic",
) -> list[dict[str, Any]]:
    """A reply of `chunks` of text, then `tool_calls` (id, name, input); `failure` ends it with a provider error."""
    events: list[dict[str, Any]] = [
        {"type": "start", "conversationId": None, "messageId": MESSAGE_ID, "model": model, "provider": provider}
    ]
    events += [{"type": "content", "delta": chunk} for chunk in chunks]
    events += [
        {"type": "tool_use", "toolCallId": call_id, "toolName": name, "toolInput": tool_input}
        for call_id, name, tool_input in tool_calls
    ]
    events.append({"type": "usage", "inputTokens": input_tokens, "outputTokens": output_tokens, "cost": "0.00021"})
    if failure is not None:
        events.append({"type": "error", "code": "provider_error", "message": failure})
    stop = stop_reason or ("error" if failure else "tool_use" if tool_calls else "end_turn")
    end: dict[str, Any] = {"type": "end", "stopReason": stop}
    if stop_sequence is not None:
        end["stopSequence"] = stop_sequence
    events.append(end)
    return events
