"""`python -m tests.bench audit`: what the audit log costs, on moto in its own process (`make dev`'s AWS).

- In the request path: `shared.audit.record` (the event built and put on the in-memory outbox) and the end of the
  invocation's `events.flush()` (waiting for the sender thread's SendMessageBatch to the events queue). Goal: at
  most 1 ms p50 for what the request itself spends; the flush waits on the queue, a network round trip.
- The writer: the events function's handler taking batches of 10 audit events off the queue, per event (its
  DynamoDB calls and the crypto of the personal fields), with the users' keys already opened, and the first event
  of a user (the key made and sealed with KMS).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

RECORDS = 1_000
FLUSHED_REQUESTS = 300
WRITER_EVENTS = 500
NEW_USERS = 50


def _percentiles(samples: list[float], unit: str = "ms") -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):8.3f} {unit}   p95 {p95:8.3f} {unit}"


@contextmanager
def _counting_calls() -> Iterator[Counter[str]]:
    from botocore.client import BaseClient

    calls: Counter[str] = Counter()
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def counted(self: Any, operation: str, params: dict[str, Any]) -> Any:
        calls[f"{self.meta.service_model.service_name}:{operation}"] += 1
        return make_api_call(self, operation, params)

    with patch.object(BaseClient, "_make_api_call", counted):
        yield calls


def report_audit() -> None:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    from infra.local.aws import start_local_aws

    with start_local_aws("benchaudit"):
        from infra.catalog import EVENTS_QUEUE
        from shared import audit, events
        from shared.audit import Target
        from shared.auth.principal import Principal
        from shared.aws import client
        from shared.request_context import RequestOrigin, request_origin_var
        from tests.fakes.events import deliver_events

        def drain() -> None:
            """Wait for the sender, then empty the queue (what was sent there is not the writer's figure)."""
            assert events.flush(timeout=300)
            client("sqs").purge_queue(QueueUrl=os.environ[EVENTS_QUEUE.env_var])

        users = [Principal(user_id=f"01BENCHUSER{n:015d}", roles=("member",), permissions=frozenset(),
                           auth_type="token") for n in range(NEW_USERS)]  # fmt: skip
        request_origin_var.set(RequestOrigin("req-bench", "203.0.113.5", "bench/1.0"))

        def record(n: int) -> None:
            audit.record("apikey.created", actor=users[n % NEW_USERS], target=Target("apikey", f"K{n}"),
                         details={"permissions": "ai.chat"})  # fmt: skip

        # Warm the sender thread and the clients.
        record(0)
        drain()
        recording: list[float] = []
        for n in range(RECORDS):
            started = time.perf_counter()
            record(n)
            recording.append((time.perf_counter() - started) * 1000)
        drain()
        flushed: list[float] = []
        for n in range(FLUSHED_REQUESTS):
            started = time.perf_counter()
            record(n)
            events.flush()
            flushed.append((time.perf_counter() - started) * 1000)
        drain()

        # The writer: first events of NEW_USERS users (each key made, sealed by KMS, put), then warm events.
        for n in range(NEW_USERS):
            record(n)
        started = time.perf_counter()
        with _counting_calls() as first_calls:
            deliver_events()
        first_ms = (time.perf_counter() - started) * 1000 / NEW_USERS
        for n in range(WRITER_EVENTS):
            record(n)
        assert events.flush(timeout=300)
        started = time.perf_counter()
        with _counting_calls() as warm_calls:
            delivered = deliver_events()
        warm_ms = (time.perf_counter() - started) * 1000 / max(1, len(delivered))

    print("\nAudit log (moto in its own process)")
    print(f"  {f'audit.record, in the request ({RECORDS})':<52} {_percentiles(recording)}   (goal p50 <= 1 ms)")
    print(f"  {f'audit.record + events.flush ({FLUSHED_REQUESTS} requests)':<52} {_percentiles(flushed)}")
    print(
        f"  {'writer, per event (batches of 10, keys open)':<52} {warm_ms:8.2f} ms   calls/event "
        + ", ".join(f"{name} {count / max(1, len(delivered)):.2f}" for name, count in sorted(warm_calls.items()))
    )
    print(
        f"  {'writer, a user first event (key made, KMS)':<52} {first_ms:8.2f} ms   calls/event "
        + ", ".join(f"{name} {count / NEW_USERS:.2f}" for name, count in sorted(first_calls.items()))
    )
