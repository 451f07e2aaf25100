"""Analytics' logic: the dashboard and the breakdowns over the last `days` days (today included), summed from the
counters' day items, and today's figures in Prometheus text format. Reads are bounded by days x shards (x the
dimension's own items), never by traffic.

Storage stays behind `store`, loaded on first use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from functions.analytics.counts import AGENT, CHANNEL, LENGTH, LENGTH_EDGES, MODEL, dollars
from functions.analytics.models import (
    AgentFigures,
    Breakdown,
    ChannelFigures,
    Dashboard,
    DayFigures,
    LengthBucket,
    ModelFigures,
    StageFigures,
)
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.analytics import store
    from functions.analytics.store import CounterItem
else:
    store = LazyModule("functions.analytics.store")

Sums = defaultdict[str, Decimal]


def period(days: int, *, today: datetime | None = None) -> list[str]:
    """The `days` UTC days ending today, oldest first."""
    last = (today or datetime.now(UTC)).date()
    return [(last - timedelta(days=offset)).isoformat() for offset in range(days - 1, -1, -1)]


def _summed(items: Iterable[CounterItem], key: str = "dimension") -> dict[str, Sums]:
    sums: dict[str, Sums] = defaultdict(lambda: defaultdict(Decimal))
    for item in items:
        into = sums[getattr(item, key)]
        for figure, value in item.figures.items():
            into[figure] += value
    return sums


def _average(total: Decimal, count: Decimal) -> int | None:
    return round(total / count) if count else None


def _stage(figures: Sums) -> dict[str, object]:
    return {
        "new_users": int(figures["newUsers"]),
        "conversations": int(figures["conversations"]),
        "messages": int(figures["messages"]),
        "replies": int(figures["replies"]),
        "failed_replies": int(figures["failures"]),
        "input_tokens": int(figures["inputTokens"]),
        "output_tokens": int(figures["outputTokens"]),
        "cost": dollars(figures["costPicoUsd"]),
        "average_latency_ms": _average(figures["latencyMsSum"], figures["latencyCount"]),
        "average_time_to_first_token_ms": _average(figures["ttftMsSum"], figures["ttftCount"]),
    }


def dashboard(days: int) -> Dashboard:
    """The stage's figures by day and in total: one BatchGetItem per 100 (day, shard) items."""
    span = period(days)
    by_day = _summed(store.stage_items(span), key="day")
    totals: Sums = defaultdict(Decimal)
    for figures in by_day.values():
        for figure, value in figures.items():
            totals[figure] += value
    return Dashboard(
        days=days,
        from_=span[0],
        to=span[-1],
        totals=StageFigures.model_validate(_stage(totals)),
        by_day=[
            DayFigures.model_validate(
                {"day": day, "active_users": int(by_day[day]["activeUsers"]) if day in by_day else 0,
                 **_stage(by_day.get(day, defaultdict(Decimal)))}
            )
            for day in span
        ],
    )  # fmt: skip


def _breakdown(days: int, prefix: str) -> tuple[list[str], dict[str, Sums], dict[str, dict[str, str]]]:
    span = period(days)
    items = store.dimension_items(span, prefix)
    names: dict[str, dict[str, str]] = {}
    for item in items:
        names.setdefault(item.dimension, {}).update(item.names)
    return span, _summed(items), names


def models(days: int) -> Breakdown[ModelFigures]:
    span, sums, names = _breakdown(days, MODEL)
    figures = [
        ModelFigures(
            provider=names[dimension].get("provider") or dimension.split("#")[1],
            model=names[dimension].get("model") or dimension.split("#", 2)[2],
            replies=int(sum_["replies"]),
            failures=int(sum_["failures"]),
            input_tokens=int(sum_["inputTokens"]),
            output_tokens=int(sum_["outputTokens"]),
            cost=dollars(sum_["costPicoUsd"]),
            average_latency_ms=_average(sum_["latencyMsSum"], sum_["latencyCount"]),
            average_time_to_first_token_ms=_average(sum_["ttftMsSum"], sum_["ttftCount"]),
        )
        for dimension, sum_ in sums.items()
    ]
    figures.sort(key=lambda entry: (-entry.replies, entry.provider, entry.model))
    return Breakdown[ModelFigures](days=days, from_=span[0], to=span[-1], items=figures)


def agents(days: int) -> Breakdown[AgentFigures]:
    span, sums, _ = _breakdown(days, AGENT)
    figures = [
        AgentFigures(
            agent_id=dimension.removeprefix(AGENT),
            conversations=int(sum_["conversations"]),
            replies=int(sum_["replies"]),
            citations=int(sum_["citations"]),
            failures=int(sum_["failures"]),
        )
        for dimension, sum_ in sums.items()
    ]
    figures.sort(key=lambda entry: (-entry.replies, -entry.conversations, entry.agent_id))
    return Breakdown[AgentFigures](days=days, from_=span[0], to=span[-1], items=figures)


def channels(days: int) -> Breakdown[ChannelFigures]:
    span, sums, _ = _breakdown(days, CHANNEL)
    figures = [
        ChannelFigures(
            channel=dimension.removeprefix(CHANNEL),
            inbound=int(sum_["inbound"]),
            answered=int(sum_["answered"]),
            failed=int(sum_["failed"]),
        )
        for dimension, sum_ in sums.items()
    ]
    figures.sort(key=lambda entry: (-entry.inbound, entry.channel))
    return Breakdown[ChannelFigures](days=days, from_=span[0], to=span[-1], items=figures)


def conversation_lengths(days: int) -> Breakdown[LengthBucket]:
    span, sums, _ = _breakdown(days, LENGTH)
    buckets = [
        LengthBucket(at_least=edge, conversations=int(sums[f"{LENGTH}{edge}"]["conversations"]))
        if f"{LENGTH}{edge}" in sums
        else LengthBucket(at_least=edge, conversations=0)
        for edge in LENGTH_EDGES
    ]
    return Breakdown[LengthBucket](days=days, from_=span[0], to=span[-1], items=buckets)


# -- Prometheus --------------------------------------------------------------------------------------------------


def metrics_text(stage: str) -> str:
    """Today's counters (UTC) in Prometheus text exposition format 0.0.4. The per-day figures restart at midnight,
    so they are gauges (`*_today`); Prometheus' `increase()` over a counter would misread the reset as traffic."""
    today = period(1)
    # Not run together: `dimension_items` runs its queries on the shared pool itself.
    stage_items, gauges = store.stage_items(today), store.gauge_items()
    model_items = store.dimension_items(today, MODEL)
    figures: Sums = defaultdict(Decimal)
    for item in stage_items:
        for figure, value in item.figures.items():
            figures[figure] += value
    open_connections = sum((item.figures.get("open", Decimal(0)) for item in gauges), Decimal(0))
    labels = {"stage": stage}
    lines: list[str] = []

    def family(name: str, help_: str, samples: Sequence[tuple[dict[str, str], Decimal | int]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} gauge")
        for sample_labels, value in samples:
            lines.append(f"{name}{_labels({**labels, **sample_labels})} {_value(value)}")

    family("stratus_requests_today", "HTTP requests served today (UTC).", [({}, figures["requests"])])
    family("stratus_errors_today", "HTTP requests answered with a 5xx today (UTC).", [({}, figures["errors"])])
    family(
        "stratus_replies_today",
        "Chat replies today (UTC), by outcome.",
        [({"outcome": "ok"}, figures["replies"] - figures["failures"]), ({"outcome": "failed"}, figures["failures"])],
    )
    family(
        "stratus_tokens_today",
        "Tokens of today's replies (UTC), by direction.",
        [({"direction": "input"}, figures["inputTokens"]), ({"direction": "output"}, figures["outputTokens"])],
    )
    family(
        "stratus_cost_usd_today",
        "What today's replies cost (UTC), in US dollars.",
        [({}, Decimal(dollars(figures["costPicoUsd"])))],
    )
    by_model = _summed(model_items)
    model_names = {item.dimension: item.names for item in model_items}
    family(
        "stratus_model_replies_today",
        "Chat replies today (UTC), by provider and model.",
        [
            ({"provider": model_names[dimension].get("provider", ""), "model": model_names[dimension].get("model", "")},
             sum_["replies"])
            for dimension, sum_ in sorted(by_model.items())
        ],
    )  # fmt: skip
    family(
        "stratus_websocket_connections_open",
        "WebSocket connections open now.",
        [({}, max(open_connections, Decimal(0)))],
    )
    family(
        "stratus_jobs_today",
        "Jobs today (UTC): started, finished, failed.",
        [({"event": "started"}, figures["jobsStarted"]), ({"event": "finished"}, figures["jobsFinished"]),
         ({"event": "failed"}, figures["jobsFailed"])],
    )  # fmt: skip
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{name}="{escaped(value)}"' for name, value in sorted(labels.items())) + "}"


def _value(value: Decimal | int) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)
