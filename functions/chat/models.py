"""Chat's request and response bodies, and the events a reply streams."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from shared.http.models import ApiModel

Id = Annotated[str, StringConstraints(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")]


class ToolDefinition(ApiModel):
    name: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: Annotated[str, StringConstraints(max_length=2_000)] = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ChatRequest(ApiModel):
    message: Annotated[str, StringConstraints(min_length=1, max_length=200_000)]
    conversation_id: Id | None = None
    model: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    provider: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=64_000)] | None = None
    use_memories: bool | None = None
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


class ChatResponse(ApiModel):
    conversation_id: str
    message: ChatReplyMessage
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
