"""OpenAI's Chat Completions API, and every OpenAI-compatible endpoint (Gemini, Ollama, vLLM, OpenRouter) under its
own name and base URL, streamed through the `openai` SDK (imported on first use)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.llm.providers import (
    STOP_END_TURN,
    STOP_MAX_TOKENS,
    STOP_TOOL_USE,
    LoopBound,
    estimate_tokens,
    parse_tool_input,
    prompt_text,
    status_error,
    transport_error,
)
from shared.llm.types import (
    Finished,
    Message,
    ModelRequest,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCall,
    ToolUseRequested,
    UsageReport,
    UseTool,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI

_STOP_REASONS = {
    "stop": STOP_END_TURN,
    "length": STOP_MAX_TOKENS,
    "tool_calls": STOP_TOOL_USE,
    "function_call": STOP_TOOL_USE,
    "content_filter": "content_filter",
}
# Keyless endpoints (a local Ollama) still need something in the SDK's Authorization header.
_NO_KEY = "no-key"


@dataclass
class _PendingToolCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAIProvider:
    """Streams chat completions. `name` is "openai" for OpenAI itself, else the compatible endpoint's name.
    The SDK's own retries are off: failover to the next provider is the retry."""

    def __init__(
        self,
        name: str = "openai",
        *,
        api_key: str | None,
        base_url: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self._api_key = api_key or _NO_KEY
        self._base_url = base_url
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        # OpenAI's reasoning models refuse `max_tokens`; compatible servers do not all know its successor.
        self._max_tokens_field = "max_completion_tokens" if name == "openai" else "max_tokens"
        self._clients: LoopBound[AsyncOpenAI] = LoopBound(self._build_client)

    def _build_client(self) -> AsyncOpenAI:
        import httpx2
        import openai

        timeout = httpx2.Timeout(self._read_timeout, connect=self._connect_timeout)
        options: dict[str, Any] = {} if self._base_url is None else {"base_url": self._base_url}
        # Without `base_url` the SDK reads OPENAI_BASE_URL, else its default; the HTTP client: see LoopBound.
        return openai.AsyncOpenAI(
            api_key=self._api_key,
            max_retries=0,
            timeout=timeout,
            http_client=openai.DefaultAsyncHttpxClient(timeout=timeout),
            **options,
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        try:
            async for event in self._stream(request):
                yield event
        except ProviderError:
            raise
        except Exception as error:
            mapped = self._map_error(error)
            if mapped is None:
                raise
            raise mapped from error

    async def _stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        arguments = openai_arguments(request, max_tokens_field=self._max_tokens_field)
        stream = await self._clients.get().chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **arguments
        )
        usage: UsageReport | None = None
        finish_reason: str | None = None
        pending: dict[int, _PendingToolCall] = {}
        output: list[str] = []
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    cached = 0
                    if chunk.usage.prompt_tokens_details is not None:
                        cached = chunk.usage.prompt_tokens_details.cached_tokens or 0
                    # OpenAI counts cached tokens inside prompt_tokens; the catalog prices them apart.
                    usage = UsageReport(chunk.usage.prompt_tokens - cached, chunk.usage.completion_tokens, cached)
                for choice in chunk.choices[:1]:
                    delta = choice.delta
                    if delta.content:
                        output.append(delta.content)
                        yield TextDelta(delta.content)
                    for call in delta.tool_calls or ():
                        slot = pending.setdefault(call.index, _PendingToolCall())
                        slot.id = call.id or slot.id
                        if call.function is not None:
                            slot.name = call.function.name or slot.name
                            if call.function.arguments:
                                slot.arguments.append(call.function.arguments)
                    if choice.finish_reason is not None:
                        finish_reason = choice.finish_reason
                        for index in sorted(pending):
                            slot = pending.pop(index)
                            yield ToolUseRequested(
                                ToolCall(slot.id, slot.name, parse_tool_input(self.name, "".join(slot.arguments)))
                            )
        if finish_reason is None:
            raise transport_error(self.name, "the stream ended before a finish reason")
        if usage is None:  # some compatible servers ignore include_usage
            usage = UsageReport(estimate_tokens(prompt_text(request)), estimate_tokens("".join(output)))
        yield usage
        yield Finished(_STOP_REASONS.get(finish_reason, finish_reason))

    async def check(self) -> None:
        try:
            await self._clients.get().models.list()
        except Exception as error:
            mapped = self._map_error(error)
            if mapped is None:
                raise
            raise mapped from error

    def _map_error(self, error: Exception) -> ProviderError | None:
        import httpx2
        import openai

        if isinstance(error, openai.APIStatusError):
            return status_error(self.name, error.status_code, _detail(error.body), error.response.headers)
        if isinstance(error, openai.APITimeoutError | httpx2.TimeoutException):
            return transport_error(self.name, "timed out")
        if isinstance(error, openai.APIConnectionError | httpx2.TransportError):
            return transport_error(self.name, f"connection failed ({type(error).__name__})")
        if isinstance(error, openai.APIError) and not isinstance(error, openai.APIResponseValidationError):
            # An `error` object inside a 200 stream: the server failed after it started answering.
            return ProviderError(f"{self.name} stream error: {_detail(error.body)}", provider=self.name, retryable=True)
        if isinstance(error, openai.OpenAIError):
            return ProviderError(f"{self.name}: {type(error).__name__}", provider=self.name, retryable=False)
        return None


def openai_arguments(request: ModelRequest, *, max_tokens_field: str = "max_completion_tokens") -> dict[str, Any]:
    """The Chat Completions body for `request` (without the streaming options)."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        messages.extend(openai_messages(message))
    arguments: dict[str, Any] = {"model": request.model, "messages": messages, max_tokens_field: request.max_tokens}
    if request.temperature is not None:
        arguments["temperature"] = request.temperature
    if request.tools:
        arguments["tools"] = [
            {
                "type": "function",
                "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema},
            }
            for tool in request.tools
        ]
        if isinstance(request.tool_choice, UseTool):
            arguments["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice.name}}
        elif request.tool_choice != "auto":
            arguments["tool_choice"] = request.tool_choice
    if request.stop_sequences:
        # Chat Completions says "stop" for a stop sequence as for a natural end: its stop reads as end_turn.
        arguments["stop"] = list(request.stop_sequences)
    return arguments


def openai_messages(message: Message) -> list[dict[str, Any]]:
    """One turn as Chat Completions messages: a tool result is a `tool` message of its own."""
    if message.role == "assistant":
        turn: dict[str, Any] = {"role": "assistant", "content": message.content or None}
        if message.tool_calls:
            turn["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.input)},
                }
                for call in message.tool_calls
            ]
        return [turn]
    turns: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": result.tool_call_id, "content": result.content}
        for result in message.tool_results
    ]
    if message.content or not turns:
        turns.append({"role": "user", "content": message.content})
    return turns


def _detail(body: object) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return "error"
