"""Anthropic's Messages wire format, both ways: a request to the provider-neutral `CompatibleRequest`, a reply's
typed events to Anthropic's stream events (or one buffered `message`), and a Stratus error to Anthropic's error
body."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from functions.chat.compat.anthropic_models import MessagesRequest, TextBlock, ToolChoiceParam, ToolResultBlock
from functions.chat.compat.neutral import (
    CompatibleRequest,
    Event,
    ReplyOutcome,
    Turn,
    bad_request,
    compatible_status,
    conversation,
    invalid_body,
)
from shared.errors import DomainError, ProviderFailed
from shared.llm.types import Message, ToolCall, ToolChoice, ToolResult, ToolSpec, UseTool

# Stop reasons Anthropic's clients know; any other end of a reply (cancelled, the tool-round limit) is a plain end.
_STOP_REASONS = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "refusal": "refusal",
    "content_filter": "refusal",
    "content_filtered": "refusal",
    "guardrail_intervened": "refusal",
    "model_context_window_exceeded": "model_context_window_exceeded",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


# Requests --------------------------------------------------------------------------------------------------


def parse_request(body: object) -> CompatibleRequest:
    """A Messages request body in neutral terms; `BadRequest` for anything malformed or unsupported."""
    try:
        request = MessagesRequest.model_validate(body)
    except ValidationError as error:
        raise invalid_body(error) from None
    if request.thinking is not None and request.thinking.type != "disabled":
        raise bad_request("extended thinking is not supported", "thinking")
    turns: list[Turn] = []
    for index, message in enumerate(request.messages):
        where = f"messages.{index}"
        if isinstance(message.content, str):
            turns.append(Turn(Message(message.role, message.content), where))
            continue
        texts: list[str] = []
        calls: list[ToolCall] = []
        results: list[ToolResult] = []
        for block in message.content:
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ToolResultBlock):
                if message.role != "user":
                    raise bad_request(f"{where}: tool_result blocks belong in user messages", where)
                results.append(ToolResult(block.tool_use_id, _text(block.content), block.is_error))
            else:
                if message.role != "assistant":
                    raise bad_request(f"{where}: tool_use blocks belong in assistant messages", where)
                calls.append(ToolCall(block.id, block.name, block.input))
        turn = Message(message.role, "\n\n".join(texts), tool_calls=tuple(calls), tool_results=tuple(results))
        turns.append(Turn(turn, where))
    tools = tuple(ToolSpec(tool.name, tool.description, tool.input_schema) for tool in request.tools or ())
    return CompatibleRequest(
        model=request.model,
        messages=conversation(turns),
        system=_text(request.system) or None,
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        tools=tools,
        tool_choice=_tool_choice(request.tool_choice, tools),
        stop_sequences=tuple(sequence for sequence in request.stop_sequences or () if sequence),
        stream=request.stream,
    )


def _text(content: str | list[TextBlock] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n\n".join(block.text for block in content)


def _tool_choice(choice: ToolChoiceParam | None, tools: tuple[ToolSpec, ...]) -> ToolChoice:
    if choice is None or choice.type == "auto":
        return "auto"
    if choice.type == "none":
        return "none"
    if not tools:
        raise bad_request("tool_choice requires tools", "tool_choice")
    if choice.type == "any":
        return "required"
    if choice.name not in {tool.name for tool in tools}:
        raise bad_request("tool_choice names a tool that is not in tools", "tool_choice")
    return UseTool(choice.name)


# Replies ---------------------------------------------------------------------------------------------------


def stop_reason(outcome: ReplyOutcome) -> str:
    return _STOP_REASONS.get(outcome.stop_reason, "end_turn")


class MessageEvents:
    """A reply's typed events as Anthropic's stream events (each named by its `type`): `message_start`, a text
    block or a tool_use block per run (`content_block_start`, `text_delta`s or one `input_json_delta`,
    `content_block_stop`), `message_delta` with the stop reason and usage, `message_stop`. A provider failure
    becomes an `error` event, which ends the stream (the SDK raises on it)."""

    def __init__(self) -> None:
        self.outcome = ReplyOutcome()
        self._blocks = 0
        self._open_text: int | None = None

    def take(self, event: Event) -> list[dict[str, Any]]:
        self.outcome.take(event)
        kind = event["type"]
        if kind == "start":
            start = {**message_head(self.outcome), "content": [], "stop_reason": None, "stop_sequence": None}
            start["usage"] = {"input_tokens": 0, "output_tokens": 0}
            return [{"type": "message_start", "message": start}]
        if kind == "content":
            out = []
            if self._open_text is None:
                self._open_text = self._blocks
                self._blocks += 1
                out.append(self._block_start({"type": "text", "text": ""}))
            delta = {"type": "text_delta", "text": event["delta"]}
            out.append({"type": "content_block_delta", "index": self._open_text, "delta": delta})
            return out
        if kind == "tool_use":
            out = self._close_text()
            index = self._blocks
            self._blocks += 1
            block = {"type": "tool_use", "id": event["toolCallId"], "name": event["toolName"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(event["toolInput"])}
            out += [
                self._block_start(block),
                {"type": "content_block_delta", "index": index, "delta": delta},
                {"type": "content_block_stop", "index": index},
            ]
            return out
        if kind == "error":
            return [error_body(ProviderFailed(str(event["message"])), 502)]
        if kind == "end" and self.outcome.failure is None:
            delta = {"stop_reason": stop_reason(self.outcome), "stop_sequence": self.outcome.stop_sequence}
            return [
                *self._close_text(),
                {"type": "message_delta", "delta": delta, "usage": usage(self.outcome)},
                {"type": "message_stop"},
            ]
        return []

    def _block_start(self, block: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_start", "index": self._blocks - 1, "content_block": block}

    def _close_text(self) -> list[dict[str, Any]]:
        if self._open_text is None:
            return []
        index, self._open_text = self._open_text, None
        return [{"type": "content_block_stop", "index": index}]


def message(outcome: ReplyOutcome) -> dict[str, Any]:
    """The whole reply as one `message`; `ProviderFailed` if the provider failed it."""
    if outcome.failure is not None:
        raise ProviderFailed(outcome.failure)
    content = [
        {"type": "text", "text": block}
        if isinstance(block, str)
        else {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
        for block in outcome.blocks
    ]
    return {
        **message_head(outcome),
        "content": content,
        "stop_reason": stop_reason(outcome),
        "stop_sequence": outcome.stop_sequence,
        "usage": usage(outcome),
    }


def message_head(outcome: ReplyOutcome) -> dict[str, Any]:
    return {"id": f"msg_{outcome.message_id}", "type": "message", "role": "assistant", "model": outcome.model}


def usage(outcome: ReplyOutcome) -> dict[str, int]:
    return {"input_tokens": outcome.input_tokens, "output_tokens": outcome.output_tokens}


# Errors ----------------------------------------------------------------------------------------------------


def error_response(error: DomainError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, Anthropic error body and headers (`retry-after` on a 429) a Stratus error answers with."""
    status = compatible_status(error)
    return status, error_body(error, status), dict(error.headers)


def error_body(error: DomainError, status: int) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}
