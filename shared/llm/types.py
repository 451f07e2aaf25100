"""The provider-neutral shapes of a model call: what goes in, the events that stream out, and how it fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: JSON Schema for its input."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    tool_call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Message:
    """One turn. An assistant turn may carry tool calls; the user turn after it carries their results."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()


@dataclass(frozen=True)
class UseTool:
    """The model must call this one tool."""

    name: str


# How the model may use the request's tools: "auto" (as it sees fit), "none" (answer in text), "required" (call
# at least one), or `UseTool` (call that one).
ToolChoice = Literal["auto", "none", "required"] | UseTool


@dataclass(frozen=True)
class ModelRequest:
    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int = 1024
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    # The model stops before any of these; the stream then finishes with `stop_sequence`.
    stop_sequences: tuple[str, ...] = ()


# What a provider streams back --------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolUseRequested:
    call: ToolCall


@dataclass(frozen=True)
class UsageReport:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class Finished:
    """The last event of a successful stream. `stop_reason`: end_turn, max_tokens, tool_use, stop_sequence.
    `stop_sequence`: which of the request's sequences stopped it, when the service says."""

    stop_reason: str
    stop_sequence: str | None = None


ProviderEvent = TextDelta | ToolUseRequested | UsageReport | Finished


class ProviderError(Exception):
    """A failed call. `retryable` errors (rate limits, overload, 5xx, timeouts, connection failures) may move to
    the next provider in the chain; the others (bad credentials, a bad request) would fail there too."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class Provider(Protocol):
    """One LLM service. `stream` yields events until `Finished`, or raises `ProviderError`."""

    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]: ...

    async def check(self) -> None:
        """Raise `ProviderError` if the service cannot be reached with the configured credentials."""
        ...


@dataclass(frozen=True)
class ModelInfo:
    """A model of the catalog: who serves it, how much context it takes, what a million tokens cost (USD)."""

    id: str
    provider: str
    context_window: int
    input_price: float
    output_price: float
    cache_read_price: float = 0.0
    cache_write_price: float = 0.0
    display_name: str = ""
    aliases: tuple[str, ...] = field(default=())
