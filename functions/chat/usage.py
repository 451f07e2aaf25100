"""Usage statistics and the dashboard, from the usage records every reply leaves."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.auth.principal import Principal
from shared.concurrency import together
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.chat import store
else:
    store = LazyModule("functions.chat.store")


def usage_stats(user_id: str, days: int) -> dict[str, Any]:
    """Requests, tokens, cost and latency over the last `days` days (today included), by day and by model."""
    last_day = store.today()
    first_day = last_day - timedelta(days=days - 1)
    totals = store.daily_totals(user_id, first_day, last_day)
    by_day: dict[str, dict[str, Any]] = {}
    by_model: dict[str, dict[str, Any]] = {}
    latency: defaultdict[str, int] = defaultdict(int)
    for total in totals:
        for key, bucket in ((total.day, by_day), (total.model, by_model)):
            entry = bucket.setdefault(key, _empty())
            entry["requests"] += total.requests
            entry["inputTokens"] += total.input_tokens
            entry["outputTokens"] += total.output_tokens
            entry["cost"] += total.cost_usd
        by_model[total.model]["provider"] = total.provider
        latency[total.model] += total.latency_ms_total
    overall = _empty()
    for entry in by_day.values():
        for name in ("requests", "inputTokens", "outputTokens", "cost"):
            overall[name] += entry[name]
    for model, entry in by_model.items():
        entry["averageLatencyMs"] = round(latency[model] / entry["requests"]) if entry["requests"] else 0
    return {
        "days": days,
        "from": first_day.isoformat(),
        "to": last_day.isoformat(),
        "totals": _json(overall),
        "byDay": [{"day": day, **_json(entry)} for day, entry in sorted(by_day.items())],
        "byModel": [{"model": model, **_json(entry)} for model, entry in sorted(by_model.items())],
    }


def dashboard(principal: Principal) -> dict[str, Any]:
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
    return {
        "conversations": conversation_stats.conversations,
        "messages": conversation_stats.messages,
        "memories": memory_stats.total,
        "usageLast30Days": usage["totals"],
        "limitsLeft": limits_left,
    }


def _empty() -> dict[str, Any]:
    return {"requests": 0, "inputTokens": 0, "outputTokens": 0, "cost": Decimal(0)}


def _json(entry: dict[str, Any]) -> dict[str, Any]:
    return {name: format(value, "f") if isinstance(value, Decimal) else value for name, value in entry.items()}
