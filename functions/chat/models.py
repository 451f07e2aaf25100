"""Chat's request and response bodies, and the events a reply streams."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from shared.http.models import ApiModel, JsonBool

Id = Annotated[str, StringConstraints(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")]


class ToolDefinition(ApiModel):
    name: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: Annotated[str, StringConstraints(max_length=2_000)] = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ChatRequest(ApiModel):
    message: Annotated[str, StringConstraints(min_length=1, max_length=200_000)]
    conversation_id: Id | None = None
    # The agent to answer as; a conversation keeps the agent it started with.
    agent_id: Id | None = None
    model: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    provider: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2, strict=True)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=64_000, strict=True)] | None = None
    use_memories: JsonBool | None = None
    tools: Annotated[list[ToolDefinition], Field(max_length=64)] = []


class ChatUsage(ApiModel):
    input_tokens: int
    output_tokens: int
    cost: Decimal


class ChatReplyMessage(ApiModel):
    id: str
    role: str
    content: str
    model: str | None
    provider: str | None
    stop_reason: str | None
    incomplete: bool


class Citation(ApiModel):
    """A source a grounded reply was given: a chunk of one of its agent's documents."""

    document_id: str
    title: str = Field(description="The document's name: its file name")
    chunk_id: str = Field(description="`<documentId>:<ordinal>`")
    page: int | None = Field(description="The page the chunk starts on (PDF)")
    score: float = Field(description="How well it matched the message: higher is better")
    snippet: str


class ChatResponse(ApiModel):
    conversation_id: str
    message: ChatReplyMessage
    usage: ChatUsage
    citations: list[Citation] = Field(default_factory=list, description="The sources the reply was given (agents)")


class AgentTestRequest(ApiModel):
    message: Annotated[str, StringConstraints(min_length=1, max_length=200_000)]


class AgentTestResponse(ApiModel):
    answer: str
    citations: list[Citation]
    usage: ChatUsage


class ModelPublic(ApiModel):
    id: str
    provider: str
    display_name: str
    context_window: int
    input_price: float
    output_price: float
    cache_read_price: float
    cache_write_price: float


class ProviderHealth(ApiModel):
    provider: str
    reachable: bool
    latency_ms: float
    error: str | None = None


# The events `POST /ai/chat/stream` sends, one JSON object per SSE `data:` line: what the OpenAPI document says
# of the stream (the reply generator builds them as dicts; the fuzz tier checks every event against these).


class _StreamEvent(ApiModel):
    # Described, never validated at run time: built only if the OpenAPI document is.
    model_config = ConfigDict(defer_build=True)


class StartEvent(_StreamEvent):
    type: Literal["start"]
    conversation_id: str | None = Field(description="None for a reply outside any conversation")
    message_id: str
    model: str
    provider: str = Field(description="The provider that actually served, after any failover")


class CitationsEvent(_StreamEvent):
    type: Literal["citations"]
    items: list[Citation] = Field(description="Sent after `start`, before any content, when there are sources")


class ContentEvent(_StreamEvent):
    type: Literal["content"]
    delta: str


class ToolUseEvent(_StreamEvent):
    type: Literal["tool_use"]
    tool_call_id: str
    tool_name: str
    tool_input: dict[str, Any]


class ToolResultEvent(_StreamEvent):
    type: Literal["tool_result"]
    tool_call_id: str
    content: str
    is_error: bool


class UsageEvent(_StreamEvent):
    type: Literal["usage"]
    input_tokens: int
    output_tokens: int
    cost: str = Field(description="USD, a decimal string")


class EndEvent(_StreamEvent):
    type: Literal["end"]
    stop_reason: str = Field(
        description="`end_turn`, `max_tokens`, `tool_use`, `stop_sequence`, `max_tool_rounds`, `cancelled` (the stop "
        "button) or `error`"
    )
    stop_sequence: str | None = Field(None, description="Which stop sequence ended the reply (`stop_sequence` only)")


class ErrorEvent(_StreamEvent):
    type: Literal["error"]
    code: str = Field(description="`provider_error`, or `internal_error`")
    message: str


ChatStreamEvent = Annotated[
    StartEvent | CitationsEvent | ContentEvent | ToolUseEvent | ToolResultEvent | UsageEvent | EndEvent | ErrorEvent,
    Field(discriminator="type"),
]


class ReplyCancelled(ApiModel):
    message_id: str
    cancelled: bool = Field(description="True: it was running and is stopping; false: it had already ended")


class ToolApprovalAnswer(ApiModel):
    tool_call_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    approved: Annotated[bool, Field(strict=True)]


class ToolApprovalAnswered(ApiModel):
    tool_call_id: str
    approved: bool
