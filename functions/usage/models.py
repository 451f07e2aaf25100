"""Usage's models: what a reply used, as chat hands it over, and the bodies of the usage routes."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from shared.http.models import ApiModel


@dataclass(frozen=True)
class ReplyUsage:
    """What one reply used, recorded by chat as the reply ends (complete, cut off, or failed)."""

    user_id: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal
    latency_ms: int
    time_to_first_token_ms: int | None
    # None: a reply outside any conversation (the playground, text enhancement).
    conversation_id: str | None
    message_id: str
    status: Literal["complete", "incomplete", "failed"]
    # What asked for the reply: chat, playground, enhance.
    source: str = "chat"


class UsageFigures(ApiModel):
    requests: int
    input_tokens: int
    output_tokens: int
    # Exact decimal dollars, as a string: a float would round a sum of many small costs.
    cost: str


class DayUsage(UsageFigures):
    day: str


class ModelUsage(UsageFigures):
    model: str
    provider: str
    average_latency_ms: int


class UsageStats(ApiModel):
    days: int
    from_: str = Field(alias="from")
    to: str
    totals: UsageFigures
    by_day: list[DayUsage]
    by_model: list[ModelUsage]


class Dashboard(ApiModel):
    conversations: int
    messages: int
    memories: int
    usage_last_30_days: UsageFigures
    # Chat's limits, as `functions.chat.limits.remaining` tells them.
    limits_left: dict[str, Any]
