"""Anthropic's Messages API, streamed through the `anthropic` SDK (imported on first use: ~1.7 s of import)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio

from shared.llm.providers import (
    STOP_END_TURN,
    LoopBound,
    parse_tool_input,
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
    ToolChoice,
    ToolUseRequested,
    UsageReport,
    UseTool,
)

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

# Error types Anthropic sends in a mid-stream `error` event (HTTP status already 200) that another try may survive.
_RETRYABLE_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})
# How long a finished reply waits for the end of the response body (which follows `message_stop` at once).
_END_OF_BODY_SECONDS = 1.0


class AnthropicProvider:
    """Streams from Anthropic. The SDK's own retries are off: failover to the next provider is the retry."""

    def __init__(
        self,
        name: str = "anthropic",
        *,
        api_key: str,
        base_url: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self._api_key = api_key
        self._base_url = base_url
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._clients: LoopBound[AsyncAnthropic] = LoopBound(self._build_client)

    def _build_client(self) -> AsyncAnthropic:
        import anthropic
        import httpx2

        # `read` bounds the wait for the first byte and every gap between streamed chunks.
        timeout = httpx2.Timeout(self._read_timeout, connect=self._connect_timeout)
        return anthropic.AsyncAnthropic(
            api_key=self._api_key,
            base_url=self._base_url,  # None: the SDK reads ANTHROPIC_BASE_URL, else its default
            max_retries=0,
            timeout=timeout,
            http_client=anthropic.DefaultAsyncHttpxClient(timeout=timeout),  # see LoopBound
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
        from anthropic.types import (
            InputJSONDelta,
            RawContentBlockDeltaEvent,
            RawContentBlockStartEvent,
            RawContentBlockStopEvent,
            RawMessageDeltaEvent,
            RawMessageStartEvent,
            RawMessageStopEvent,
            ToolUseBlock,
        )
        from anthropic.types import TextDelta as SdkTextDelta

        usage = _Usage()
        stop_reason = STOP_END_TURN
        stop_sequence: str | None = None
        tool_blocks: dict[int, tuple[str, str, list[str]]] = {}
        stream = await self._clients.get().messages.create(stream=True, **anthropic_arguments(request))
        async with stream:
            async for event in stream:
                if isinstance(event, RawMessageStartEvent):
                    usage.update(event.message.usage)
                elif isinstance(event, RawContentBlockStartEvent):
                    block = event.content_block
                    if isinstance(block, ToolUseBlock):
                        tool_blocks[event.index] = (block.id, block.name, [])
                elif isinstance(event, RawContentBlockDeltaEvent):
                    delta = event.delta
                    if isinstance(delta, SdkTextDelta) and delta.text:
                        yield TextDelta(delta.text)
                    elif isinstance(delta, InputJSONDelta) and event.index in tool_blocks:
                        tool_blocks[event.index][2].append(delta.partial_json)
                elif isinstance(event, RawContentBlockStopEvent):
                    if (tool := tool_blocks.pop(event.index, None)) is not None:
                        tool_input = parse_tool_input(self.name, "".join(tool[2]))
                        yield ToolUseRequested(ToolCall(tool[0], tool[1], tool_input))
                elif isinstance(event, RawMessageDeltaEvent):
                    stop_reason = event.delta.stop_reason or stop_reason
                    stop_sequence = event.delta.stop_sequence or stop_sequence
                    usage.update(event.usage)
                elif isinstance(event, RawMessageStopEvent):
                    yield usage.report()
                    yield Finished(stop_reason, stop_sequence)
                    await _read_to_the_end(stream)
                    return
        raise transport_error(self.name, "the stream ended before message_stop")

    async def check(self) -> None:
        try:
            await self._clients.get().models.list(limit=1)
        except Exception as error:
            mapped = self._map_error(error)
            if mapped is None:
                raise
            raise mapped from error

    def _map_error(self, error: Exception) -> ProviderError | None:
        import anthropic
        import httpx2

        if isinstance(error, anthropic.APIStatusError):
            detail = error.api_message or error.type or "error"
            if error.status_code < 400:  # an `error` event inside a 200 stream
                retryable = (error.type or "") in _RETRYABLE_ERROR_TYPES
                return ProviderError(f"{self.name} stream error: {detail}", provider=self.name, retryable=retryable)
            return status_error(self.name, error.status_code, str(detail), error.response.headers)
        if isinstance(error, anthropic.APITimeoutError | httpx2.TimeoutException):
            return transport_error(self.name, "timed out")
        if isinstance(error, anthropic.APIConnectionError | httpx2.TransportError):
            return transport_error(self.name, f"connection failed ({type(error).__name__})")
        if isinstance(error, anthropic.AnthropicError):
            return ProviderError(f"{self.name}: {type(error).__name__}", provider=self.name, retryable=False)
        return None


async def _read_to_the_end(stream: AsyncIterable[object]) -> None:
    """Read what follows `message_stop` (the end of the body, at once), so the connection goes back to the client's
    pool: closing the stream before its end closes the connection, and the next reply would open a new one (a TLS
    handshake before its first token). The reply is whole by then: a server slow to end the body, or failing to, is
    given up on after a moment, as before."""
    with anyio.move_on_after(_END_OF_BODY_SECONDS), contextlib.suppress(Exception):
        async for _ in stream:
            pass


class _Usage:
    """Token counts from message_start, then message_delta's cumulative counts where it has them."""

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_write = 0

    def update(self, counts: Any) -> None:
        for attribute, reported in (
            ("input", counts.input_tokens),
            ("output", counts.output_tokens),
            ("cache_read", counts.cache_read_input_tokens),
            ("cache_write", counts.cache_creation_input_tokens),
        ):
            if reported is not None:
                setattr(self, attribute, reported)

    def report(self) -> UsageReport:
        return UsageReport(self.input, self.output, self.cache_read, self.cache_write)


def anthropic_arguments(request: ModelRequest) -> dict[str, Any]:
    """The Messages API body for `request` (without `stream`)."""
    arguments: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [anthropic_message(message) for message in request.messages if _has_content(message)],
    }
    if request.system:
        arguments["system"] = request.system
    if request.tools:
        arguments["tools"] = [
            {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}
            for tool in request.tools
        ]
        if request.tool_choice != "auto":
            arguments["tool_choice"] = anthropic_tool_choice(request.tool_choice)
    if request.stop_sequences:
        arguments["stop_sequences"] = list(request.stop_sequences)
    if request.temperature is not None:
        # anthropic 2.x dropped `temperature` from its signature; the API still takes it for the models that do.
        arguments["extra_body"] = {"temperature": request.temperature}
    return arguments


def anthropic_tool_choice(choice: ToolChoice) -> dict[str, str]:
    if isinstance(choice, UseTool):
        return {"type": "tool", "name": choice.name}
    return {"type": {"required": "any"}.get(choice, choice)}


def anthropic_message(message: Message) -> dict[str, Any]:
    if not message.tool_calls and not message.tool_results:
        return {"role": message.role, "content": message.content}
    blocks: list[dict[str, Any]] = [
        {
            "type": "tool_result",
            "tool_use_id": result.tool_call_id,
            "content": result.content,
            **({"is_error": True} if result.is_error else {}),
        }
        for result in message.tool_results
    ]
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input} for call in message.tool_calls
    )
    return {"role": message.role, "content": blocks}


def _has_content(message: Message) -> bool:
    # The API refuses empty turns; an empty one is a reply that was cut off before its first token.
    return bool(message.content or message.tool_calls or message.tool_results)
