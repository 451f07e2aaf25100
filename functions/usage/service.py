"""Usage's logic: recording what each reply used (chat calls `record_reply` as a reply ends), the user's
statistics by day and by model, the dashboard, and the user's usage data for the GDPR workflows.

Storage stays behind `store`, loaded on first use.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from functions.usage.models import Dashboard, DayUsage, ModelUsage, ReplyUsage, UsageFigures, UsageStats
from shared.auth.principal import Principal
from shared.concurrency import together
from shared.ids import new_id
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.usage import store
else:
    store = LazyModule("functions.usage.store")

Figures = TypeVar("Figures", bound=UsageFigures)


def record_reply(usage: ReplyUsage) -> None:
    """Keep what one reply used, and add it to the day's totals for its model."""
    store.record_usage(usage, datetime.now(UTC), new_id())


def usage_stats(user_id: str, days: int) -> UsageStats:
    """Requests, tokens, cost and latency over the last `days` days (today included), by day and by model."""
    last_day = datetime.now(UTC).date()
    first_day = last_day - timedelta(days=days - 1)
    by_day: defaultdict[str, _Sum] = defaultdict(_Sum)
    by_model: defaultdict[str, _Sum] = defaultdict(_Sum)
    providers: dict[str, str] = {}
    latency_ms: defaultdict[str, int] = defaultdict(int)
    for total in store.daily_totals(user_id, first_day, last_day):
        for entry in (by_day[total.day], by_model[total.model]):
            entry.add(total.requests, total.input_tokens, total.output_tokens, total.cost_usd)
        providers[total.model] = total.provider
        latency_ms[total.model] += total.latency_ms_total
    overall = _Sum()
    for entry in by_day.values():
        overall.add(entry.requests, entry.input_tokens, entry.output_tokens, entry.cost)
    return UsageStats(
        days=days,
        from_=first_day.isoformat(),
        to=last_day.isoformat(),
        totals=overall.figures(UsageFigures),
        by_day=[entry.figures(DayUsage, day=day) for day, entry in sorted(by_day.items())],
        by_model=[
            entry.figures(
                ModelUsage,
                model=model,
                provider=providers[model],
                average_latency_ms=round(latency_ms[model] / entry.requests) if entry.requests else 0,
            )
            for model, entry in sorted(by_model.items())
        ],
    )


def dashboard(principal: Principal) -> Dashboard:
    """Counts of the user's conversations, messages and memories, this month's usage, and the limits left."""
    from functions.chat import limits
    from functions.conversations import service as conversations
    from functions.memories import service as memories

    # Four independent reads: at the same time.
    conversation_stats, memory_stats, usage, limits_left = together(
        lambda: conversations.conversation_stats(principal),
        lambda: memories.memory_stats(principal.user_id),
        lambda: usage_stats(principal.user_id, 30),
        lambda: limits.remaining(principal.user_id),
    )
    return Dashboard(
        conversations=conversation_stats.conversations,
        messages=conversation_stats.messages,
        memories=memory_stats.total,
        usage_last_30_days=usage.totals,
        limits_left=limits_left,
    )


class _Sum:
    """Requests, tokens and cost added up over daily totals."""

    def __init__(self) -> None:
        self.requests = self.input_tokens = self.output_tokens = 0
        self.cost = Decimal(0)

    def add(self, requests: int, input_tokens: int, output_tokens: int, cost: Decimal) -> None:
        self.requests += requests
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cost += cost

    def figures(self, body: type[Figures], **more: Any) -> Figures:
        """The sum as a response body (`UsageFigures` or one of its kinds, with their `more` fields)."""
        return body(
            requests=self.requests,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost=format(self.cost, "f"),
            **more,
        )
