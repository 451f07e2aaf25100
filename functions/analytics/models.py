"""The bodies of the analytics routes."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import Field

from shared.http.models import ApiModel

T = TypeVar("T")


class StageFigures(ApiModel):
    new_users: int
    conversations: int
    messages: int
    replies: int
    failed_replies: int
    input_tokens: int
    output_tokens: int
    # Exact decimal dollars, as a string (as usage reports cost).
    cost: str
    # None: no reply measured it in the period.
    average_latency_ms: int | None
    average_time_to_first_token_ms: int | None


class DayFigures(StageFigures):
    day: str
    # Distinct users who did something that day (a sum over days would count a user once per day).
    active_users: int


class Dashboard(ApiModel):
    """The stage's figures over a period, and each day's."""

    days: int
    from_: str = Field(alias="from")
    to: str
    totals: StageFigures
    by_day: list[DayFigures]


class ModelFigures(ApiModel):
    provider: str
    model: str
    replies: int
    failures: int
    input_tokens: int
    output_tokens: int
    cost: str
    average_latency_ms: int | None
    average_time_to_first_token_ms: int | None


class AgentFigures(ApiModel):
    agent_id: str
    conversations: int
    replies: int
    citations: int
    failures: int


class ChannelFigures(ApiModel):
    channel: str
    inbound: int
    answered: int
    failed: int


class LengthBucket(ApiModel):
    # Conversations that reached at least this many messages during the period.
    at_least: int
    conversations: int


class Breakdown(ApiModel, Generic[T]):
    """A period's figures by model, agent, channel or conversation length, summed over its days."""

    days: int
    from_: str = Field(alias="from")
    to: str
    items: list[T]
