"""The playground's request and response bodies, and the events a comparison streams."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from shared.http.models import ApiModel

MIN_MODELS = 2
MAX_MODELS = 6
PROMPT_CHARS = 32_000
SYSTEM_PROMPT_CHARS = 8_000

ModelId = Annotated[str, StringConstraints(min_length=1, max_length=120)]


class ModelChoice(ApiModel):
    """One model of a comparison, with the settings it runs with (the stage's defaults where left out)."""

    model: ModelId
    provider: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2, strict=True)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=64_000, strict=True)] | None = None


class ComparisonRequest(ApiModel):
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=PROMPT_CHARS)]
    # A model may be named more than once (the same model at two temperatures, or twice to see how it varies):
    # every per-model event carries `index`, the entry's position here, which tells such entries apart.
    models: Annotated[list[ModelId | ModelChoice], Field(min_length=MIN_MODELS, max_length=MAX_MODELS)]
    system_prompt: Annotated[str, StringConstraints(max_length=SYSTEM_PROMPT_CHARS)] | None = None

    def choices(self) -> list[ModelChoice]:
        return [entry if isinstance(entry, ModelChoice) else ModelChoice(model=entry) for entry in self.models]


class ModelMetrics(ApiModel):
    input_tokens: int
    output_tokens: int
    cost: Decimal
    latency_ms: int
    ttft_ms: int | None
    tokens_per_second: float | None


class ModelFailure(ApiModel):
    code: str
    message: str


class ModelResult(ApiModel):
    index: int
    model: str
    provider: str | None = Field(description="The provider that served it (after any failover); None if none did")
    served_model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    status: Literal["done", "error"]
    response: str
    truncated: bool = Field(
        default=False, description="Only the start of a very long response was kept (a session item is bounded)"
    )
    metrics: ModelMetrics | None
    error: ModelFailure | None = None


class PlaygroundSession(ApiModel):
    session_id: str
    prompt: str
    system_prompt: str | None
    results: list[ModelResult]
    total_cost: Decimal
    created_at: str
    completed_at: str


# The events `POST /ai/playground` sends, one JSON object per SSE `data:` line (described for the OpenAPI
# document; the comparison builds them as dicts).


class _ComparisonEvent(ApiModel):
    model_config = ConfigDict(defer_build=True)


class SessionEvent(_ComparisonEvent):
    type: Literal["session"]
    session_id: str


class StatusEvent(_ComparisonEvent):
    type: Literal["status"]
    model: str
    index: int
    status: Literal["streaming", "done", "error"]


class ContentEvent(_ComparisonEvent):
    type: Literal["content"]
    model: str
    index: int
    delta: str


class MetricsEvent(_ComparisonEvent):
    type: Literal["metrics"]
    model: str
    index: int
    input_tokens: int
    output_tokens: int
    cost: str = Field(description="USD, a decimal string")
    latency_ms: int
    ttft_ms: int | None
    tokens_per_second: float | None


class ErrorEvent(_ComparisonEvent):
    type: Literal["error"]
    model: str | None = None
    index: int | None = None
    code: str = Field(description="`provider_error`, `model_timeout`, or `internal_error`")
    message: str


class EndEvent(_ComparisonEvent):
    type: Literal["end"]
    session_id: str


ComparisonEvent = Annotated[
    SessionEvent | StatusEvent | ContentEvent | MetricsEvent | ErrorEvent | EndEvent,
    Field(discriminator="type"),
]
