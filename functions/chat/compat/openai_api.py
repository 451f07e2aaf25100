"""OpenAI's Chat Completions wire format, both ways: a request to the provider-neutral `CompatibleRequest`, a
reply's typed events to `chat.completion.chunk`s (or one buffered `chat.completion`), a Stratus error to OpenAI's
error body, and the servable models to OpenAI's model list."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from functions.chat.compat.neutral import (
    AUTO_MODEL,
    CompatibleRequest,
    Event,
    ReplyOutcome,
    Turn,
    bad_request,
    compatible_status,
    conversation,
    error_param,
    invalid_body,
)
from functions.chat.compat.openai_models import (
    AssistantMessage,
    ChatCompletionRequest,
    Content,
    NamedToolChoice,
    SystemMessage,
    ToolMessage,
    UserMessage,
)
from shared.errors import DomainError, ProviderFailed
from shared.llm.types import Message, ToolCall, ToolChoice, ToolResult, ToolSpec, UseTool

# What ends a stream of chunks (not JSON: the route sends it as the last `data:` line).
DONE = "[DONE]"
MAX_STOP_SEQUENCES = 4

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
    "refusal": "content_filter",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}
_ERROR_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}


# Requests --------------------------------------------------------------------------------------------------


def parse_request(body: object) -> CompatibleRequest:
    """A Chat Completions request body in neutral terms; `BadRequest` for anything malformed or unsupported."""
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as error:
        raise invalid_body(error) from None
    _refuse_unsupported(request)
    system: list[str] = []
    turns: list[Turn] = []
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if isinstance(message, SystemMessage):
            system.append(_text(message.content))
        elif isinstance(message, UserMessage):
            turns.append(Turn(Message("user", _text(message.content)), where))
        elif isinstance(message, AssistantMessage):
            calls = tuple(
                ToolCall(call.id, call.function.name, _arguments(call.function.arguments, where))
                for call in message.tool_calls or ()
            )
            turns.append(Turn(Message("assistant", _text(message.content), tool_calls=calls), where))
        elif isinstance(message, ToolMessage):
            result = ToolResult(message.tool_call_id, _text(message.content))
            turns.append(Turn(Message("user", "", tool_results=(result,)), where))
    tools = tuple(
        ToolSpec(tool.function.name, tool.function.description, tool.function.parameters)
        for tool in request.tools or ()
    )
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or ())
    if len(stop) > MAX_STOP_SEQUENCES:
        raise bad_request(f"stop takes at most {MAX_STOP_SEQUENCES} sequences", "stop")
    return CompatibleRequest(
        model=request.model,
        messages=conversation(turns),
        system="\n\n".join(part for part in system if part) or None,
        temperature=request.temperature,
        max_tokens=request.max_completion_tokens or request.max_tokens,
        tools=tools,
        tool_choice=_tool_choice(request.tool_choice, tools),
        stop_sequences=tuple(sequence for sequence in stop if sequence),
        stream=request.stream,
        include_usage=request.stream_options is not None and request.stream_options.include_usage,
    )


def _refuse_unsupported(request: ChatCompletionRequest) -> None:
    refusals = [
        (request.n is not None and request.n > 1, "n", "only one choice (n=1) is supported"),
        (bool(request.logprobs) or request.top_logprobs is not None, "logprobs", "logprobs are not supported"),
        (
            request.response_format is not None and request.response_format.type != "text",
            "response_format",
            "only the text response format is supported",
        ),
        (request.functions is not None or request.function_call is not None, "functions", "use tools, not functions"),
        (request.audio is not None or "audio" in (request.modalities or ()), "modalities", "audio is not supported"),
    ]
    for refused, param, message in refusals:
        if refused:
            raise bad_request(message, param)


def _text(content: Content | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n\n".join(part.text for part in content)


def _arguments(raw: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise bad_request(f"{where}: a tool call's arguments must be a JSON object", where)
    return value


def _tool_choice(choice: str | NamedToolChoice | None, tools: tuple[ToolSpec, ...]) -> ToolChoice:
    if choice is None or choice == "auto":
        return "auto"
    if choice == "none":
        return "none"
    if not tools:
        raise bad_request("tool_choice requires tools", "tool_choice")
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in {tool.name for tool in tools}:
            raise bad_request("tool_choice names a tool that is not in tools", "tool_choice")
        return UseTool(choice.function.name)
    return "required"


# Replies ---------------------------------------------------------------------------------------------------


def finish_reason(stop_reason: str) -> str:
    return _FINISH_REASONS.get(stop_reason, "stop")


class CompletionChunks:
    """A reply's typed events as `chat.completion.chunk`s: the role first, content deltas, one tool_calls delta
    per call (id, name and whole arguments, indexed from 0), the finish reason, then the usage chunk (empty
    choices) when the client asked for it. A provider failure becomes OpenAI's in-stream error object, which
    ends the stream (its SDK raises on it)."""

    def __init__(self, *, include_usage: bool = False, created: int | None = None) -> None:
        self.outcome = ReplyOutcome()
        self._include_usage = include_usage
        self._created = int(time.time()) if created is None else created
        self._tool_calls = 0

    def take(self, event: Event) -> list[dict[str, Any]]:
        self.outcome.take(event)
        kind = event["type"]
        if kind == "start":
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content":
            return [self._chunk({"content": event["delta"]})]
        if kind == "tool_use":
            call = {
                "index": self._tool_calls,
                "id": event["toolCallId"],
                "type": "function",
                "function": {"name": event["toolName"], "arguments": json.dumps(event["toolInput"])},
            }
            self._tool_calls += 1
            return [self._chunk({"tool_calls": [call]})]
        if kind == "error":
            return [{"error": _error_object(ProviderFailed(str(event["message"])), 502)}]
        if kind == "end" and self.outcome.failure is None:
            chunks = [self._chunk({}, finish_reason(self.outcome.stop_reason))]
            if self._include_usage:
                chunks.append({**self._head(), "choices": [], "usage": usage(self.outcome)})
            return chunks
        return []

    def _head(self) -> dict[str, Any]:
        return {
            "id": completion_id(self.outcome),
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.outcome.model,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**self._head(), "choices": [choice]}


def completion(outcome: ReplyOutcome, *, created: int | None = None) -> dict[str, Any]:
    """The whole reply as one `chat.completion`; `ProviderFailed` if the provider failed it."""
    if outcome.failure is not None:
        raise ProviderFailed(outcome.failure)
    message: dict[str, Any] = {"role": "assistant", "content": outcome.text or None}
    if outcome.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": json.dumps(call.input)}}
            for call in outcome.tool_calls
        ]
    return {
        "id": completion_id(outcome),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": outcome.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason(outcome.stop_reason), "logprobs": None}
        ],
        "usage": usage(outcome),
    }


def completion_id(outcome: ReplyOutcome) -> str:
    return f"chatcmpl-{outcome.message_id}"


def usage(outcome: ReplyOutcome) -> dict[str, int]:
    return {
        "prompt_tokens": outcome.input_tokens,
        "completion_tokens": outcome.output_tokens,
        "total_tokens": outcome.input_tokens + outcome.output_tokens,
    }


# Errors and models -----------------------------------------------------------------------------------------


def error_response(error: DomainError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, OpenAI error body and headers (`retry-after` on a 429) a Stratus error answers with."""
    status = compatible_status(error)
    return status, {"error": _error_object(error, status)}, dict(error.headers)


def _error_object(error: DomainError, status: int) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    code = "model_not_found" if error.error_code == "model_unavailable" else _ERROR_CODES.get(status, error.error_code)
    return {"message": error.message, "type": kind, "param": error_param(error), "code": code}


def model_list(models: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """OpenAI's model list of (model id, provider) pairs, after `stratus-auto` (the caller's default)."""
    data = [{"id": AUTO_MODEL, "object": "model", "created": 0, "owned_by": "stratus"}]
    data.extend({"id": model, "object": "model", "created": 0, "owned_by": provider} for model, provider in models)
    return {"object": "list", "data": data}
