"""`make bench` (analytics): the dashboard and breakdowns for 30 days on the local stack's moto server, after 30 days
of traffic, and what counting one event costs the events function.

Traffic: REPLIES_PER_DAY `reply.completed` events a day over 30 days (5 models, 10 agents, 3 channels). The first
COUNTED go through the consumer, as the events function would; the rest are added with the same `ADD`s, one
UpdateItem per item, to seed the 30 days faster than two transactions an event would on moto. Reported per route: the
DynamoDB calls one read makes (the same whatever the traffic: days x shards) and its latency.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

DAYS = 30
REPLIES_PER_DAY = 200
COUNTED = 50
READS = 20


def _reply(day: datetime, number: int) -> Any:
    from shared.events import Event

    return Event(
        type="reply.completed",
        user_id=f"user-{number % 50}",
        at=(day + timedelta(seconds=number)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        data={
            "provider": "anthropic", "model": f"model-{number % 5}", "inputTokens": 300, "outputTokens": 80,
            "cost": "0.000412", "latencyMs": 900 + number % 300, "timeToFirstTokenMs": 200 + number % 50,
            "agentId": f"agent-{number % 10}", "channel": ("telegram", "whatsapp", None)[number % 3],
            "citations": number % 4, "failed": number % 50 == 0, "messageCount": 2 + 2 * (number % 20),
        },
    )  # fmt: skip


def _seed(event: Any) -> None:
    """The event's `ADD`s without its markers: what counting it leaves in the day's items."""
    from functions.analytics import store
    from functions.analytics.counts import STAGE, day_of, increments
    from shared.aws import client

    counted = increments(event)
    day = day_of(event)
    writes = [store._update(store.day_pk(day, store.shard_of(event.user_id)), STAGE, {"activeUsers": 1})]
    writes += [
        store._update(store.day_pk(day, store.shard_of(event.id)), dimension, figures, counted.names.get(dimension))
        for dimension, figures in counted.figures.items()
    ]
    for write in writes:
        client("dynamodb").update_item(**write["Update"])


def report_analytics() -> None:
    from infra.local.aws import start_local_aws
    from tests.bench.__main__ import percentiles

    with start_local_aws("bench-analytics"):
        from botocore.client import BaseClient

        from functions.analytics import consumer, service, store

        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        traffic = [_reply(today - timedelta(days=offset), n) for offset in range(DAYS) for n in range(REPLIES_PER_DAY)]
        event_ms: list[float] = []
        for event in traffic[:COUNTED]:
            began = time.perf_counter()
            assert not list(consumer.consume([event]))
            event_ms.append((time.perf_counter() - began) * 1000)
        for event in traffic[COUNTED:]:
            _seed(event)

        calls: Counter[str] = Counter()
        make_api_call = BaseClient._make_api_call

        def counting(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            calls[operation] += 1
            return make_api_call(self, operation, params)

        reads = {
            "dashboard": lambda: service.dashboard(DAYS),
            "models": lambda: service.models(DAYS),
            "agents": lambda: service.agents(DAYS),
            "channels": lambda: service.channels(DAYS),
            "conversations": lambda: service.conversation_lengths(DAYS),
            "/health/metrics (today)": lambda: service.metrics_text("bench"),
        }
        print(f"\nAnalytics on the local stack's moto server ({DAYS} days x {REPLIES_PER_DAY} replies, "
              f"{store.shards()} shards)")  # fmt: skip
        print(f"  {'count one reply.completed (empty table)':<40} {percentiles(event_ms)}   2 TransactWriteItems")
        for name, read in reads.items():
            read()  # warm
            BaseClient._make_api_call = counting  # type: ignore[method-assign]
            try:
                calls.clear()
                read()
                made = ", ".join(f"{count} {operation}" for operation, count in sorted(calls.items()))
            finally:
                BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
            samples = []
            for _ in range(READS):
                began = time.perf_counter()
                read()
                samples.append((time.perf_counter() - began) * 1000)
            print(f"  {name + ' (' + str(DAYS) + ' days)' if 'metrics' not in name else name:<40} "
                  f"{percentiles(samples)}   {made}")  # fmt: skip
