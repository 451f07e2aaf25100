"""Analytics on moto: events counted into per-day counters through the events function, exact under concurrency
and redelivery; the dashboard and breakdowns read a bounded number of items; `/health/metrics` parses as
Prometheus text; every route needs `analytics.read`."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.analytics import consumer
from infra.catalog import EVENTS_QUEUE
from infra.local.queues import sqs_event
from shared import events
from shared.aws import client
from tests.fakes.events import deliver_events, published
from tests.integration.conftest import User, error_code, register

ROUTES = ("dashboard", "models", "agents", "channels", "conversations")


@pytest.fixture
def admin(api: TestClient) -> User:
    admin = register(api, "admin@example.com")  # the stage's first account is its admin (`*`)
    published()  # what registering published is not this test's to count
    return admin


@pytest.fixture
def member(api: TestClient, admin: User) -> User:
    return register(api, "member@example.com")


def reply_data(number: int = 0, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "conversationId": f"c{number}", "messageId": f"m{number}", "provider": "anthropic",
        "model": "claude-haiku-4-5", "source": "chat", "inputTokens": 100, "outputTokens": 20, "cost": "0.000123",
        "latencyMs": 400, "timeToFirstTokenMs": 90, "agentId": None, "channel": None, "citations": 0,
        "failed": False, "stopReason": "end_turn", "messageCount": 2,
    }  # fmt: skip
    return {**data, **changes}


def dashboard(api: TestClient, user: User, days: int = 1) -> dict[str, Any]:
    response = api.get("/api/v1/analytics/dashboard", headers=user.auth, params={"days": days})
    assert response.status_code == 200, response.text
    return dict(response.json())


def breakdown(api: TestClient, user: User, route: str, days: int = 1) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/analytics/{route}", headers=user.auth, params={"days": days})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_a_hundred_concurrent_replies_are_counted_exactly(api: TestClient, admin: User) -> None:
    def reply(number: int) -> None:
        model = "claude-haiku-4-5" if number % 2 else "gpt-4o-mini"
        provider = "anthropic" if number % 2 else "openai"
        events.publish(
            "reply.completed",
            reply_data(number, model=model, provider=provider, cost="0.000000001", latencyMs=number),
            user_id=f"user-{number % 10}",
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(reply, range(100)))
    delivered = deliver_events()

    assert Counter(event.type for event in delivered) == {"reply.completed": 100}
    today = dashboard(api, admin)["byDay"][-1]
    assert today["replies"] == 100
    assert (today["inputTokens"], today["outputTokens"]) == (10_000, 2_000)
    assert today["cost"] == "0.0000001"  # exact: a hundred nano-dollars
    assert today["averageLatencyMs"] == round(sum(range(100)) / 100)
    assert today["activeUsers"] == 10  # distinct users: ten, each replied to ten times
    by_model = {item["model"]: item for item in breakdown(api, admin, "models")}
    assert by_model["claude-haiku-4-5"]["replies"] == by_model["gpt-4o-mini"]["replies"] == 50
    assert by_model["gpt-4o-mini"]["provider"] == "openai"


def test_a_redelivered_batch_is_counted_once(api: TestClient, admin: User) -> None:
    deliver_events()
    for number in range(5):
        events.publish("reply.completed", reply_data(number), user_id="someone")
    events.publish("conversation.created", {"id": "c1", "agentId": "agent-1"}, user_id="someone")
    assert events.flush()
    queue_url = os.environ[EVENTS_QUEUE.env_var]
    messages = client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 6
    from functions.events.handler import lambda_handler

    batch = sqs_event(messages, queue_url=queue_url, region=os.environ["AWS_REGION"])
    for _ in range(3):  # SQS delivers at least once: the same batch three times
        assert lambda_handler(batch, None) == {"batchItemFailures": []}

    today = dashboard(api, admin)["byDay"][-1]
    assert (today["replies"], today["conversations"], today["activeUsers"]) == (5, 1, 1)
    assert breakdown(api, admin, "agents") == [
        {"agentId": "agent-1", "conversations": 1, "replies": 0, "citations": 0, "failures": 0}
    ]


def test_an_event_counted_halfway_is_completed_on_redelivery_and_not_doubled(
    api: TestClient, admin: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The day's active-user transaction committed, the event's own did not (the consumer died between them)."""
    from functions.analytics import store

    deliver_events()
    event = events.publish("reply.completed", reply_data(), user_id="halfway")
    assert events.flush()
    published()  # taken off the queue: handed to the consumer by hand below
    real = store._transact
    calls: list[int] = []

    def dies_on_second(writes: list[dict[str, Any]]) -> None:
        calls.append(len(writes))
        if len(calls) == 2:
            raise RuntimeError("the container died")
        real(writes)

    monkeypatch.setattr(store, "_transact", dies_on_second)
    assert list(consumer.consume([event])) == [event.id]
    monkeypatch.setattr(store, "_transact", real)
    assert list(consumer.consume([event])) == []
    assert list(consumer.consume([event])) == []

    today = dashboard(api, admin)["byDay"][-1]
    assert (today["replies"], today["activeUsers"]) == (1, 1)


def test_webhook_and_audit_events_are_counted_by_their_dimensions(api: TestClient, admin: User) -> None:
    for _ in range(3):
        events.publish("message.created", {"id": "m", "conversationId": "c"}, user_id=admin.id)
    events.publish("conversation.created", {"id": "c"}, user_id=admin.id)
    events.publish("channel.message.received", {"channelId": "ch", "channelType": "telegram"}, user_id=admin.id)
    events.publish("user.registered", {}, user_id="newcomer", kind="audit")
    events.publish("reply.completed", reply_data(channel="telegram", agentId="a1", citations=3), user_id=admin.id)
    events.publish("reply.completed", reply_data(channel="telegram", failed=True, messageCount=4), user_id=admin.id)
    deliver_events()

    today = dashboard(api, admin)["byDay"][-1]
    assert (today["newUsers"], today["messages"], today["conversations"]) == (1, 3, 1)
    assert (today["replies"], today["failedReplies"]) == (2, 1)
    assert breakdown(api, admin, "channels") == [{"channel": "telegram", "inbound": 1, "answered": 1, "failed": 1}]
    assert breakdown(api, admin, "agents") == [
        {"agentId": "a1", "conversations": 0, "replies": 1, "citations": 3, "failures": 0}
    ]
    lengths = {bucket["atLeast"]: bucket["conversations"] for bucket in breakdown(api, admin, "conversations")}
    assert (lengths[2], lengths[4], lengths[8]) == (1, 1, 0)


@pytest.fixture
def counted_reads() -> Iterator[Counter[str]]:
    """The DynamoDB calls made, by operation name."""
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    dynamodb = client("dynamodb")
    dynamodb.meta.events.register("before-call.dynamodb", count)
    yield calls
    dynamodb.meta.events.unregister("before-call.dynamodb", count)


def _traffic(replies: int) -> None:
    for number in range(replies):
        model = f"model-{number % 3}"
        events.publish("reply.completed", reply_data(number, model=model, agentId="a1"), user_id=f"u{number}")
    deliver_events()


def test_thirty_days_read_a_bounded_number_of_items_whatever_the_traffic(
    api: TestClient, admin: User, counted_reads: Counter[str]
) -> None:
    from functions.analytics import service, store

    shards = store.shards()
    reads: list[dict[str, int]] = []
    for replies in (3, 60):
        _traffic(replies)
        per_route = {}
        for name, read in (("dashboard", service.dashboard), ("models", service.models), ("agents", service.agents)):
            counted_reads.clear()
            read(30)
            per_route[name] = sum(counted_reads.values())
            if name == "dashboard":
                assert set(counted_reads) == {"BatchGetItem"}
            else:
                assert set(counted_reads) == {"Query"}
        reads.append(per_route)

    assert reads[0] == reads[1]  # twenty times the traffic, the same reads
    assert reads[0]["dashboard"] == -(-30 * shards // 100)  # 100 keys a BatchGetItem
    assert reads[0]["models"] == reads[0]["agents"] == 30 * shards  # one Query per (day, shard)


def test_health_metrics_are_prometheus_text_of_todays_counters(api: TestClient, admin: User) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    events.publish("reply.completed", reply_data(model='odd "model"\\name', cost="0.5"), user_id=admin.id)
    events.publish("connection.opened", {"connectionId": "x"}, user_id=admin.id)
    events.publish("connection.opened", {"connectionId": "y"}, user_id=admin.id)
    events.publish("connection.closed", {"connectionId": "x"}, user_id=admin.id)
    events.publish("requests.counted", {"function": "f", "requests": 7, "errors": 2}, user_id=None)
    events.publish("job.started", {"jobId": "j", "kind": "export"}, user_id=admin.id)
    events.publish("job.finished", {"jobId": "j", "kind": "export", "status": "failed"}, user_id=admin.id)
    deliver_events()

    response = api.get("/api/v1/health/metrics", headers=admin.auth)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k != "stage"))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("stratus_requests_today", ())] == 7
    assert samples[("stratus_errors_today", ())] == 2
    assert samples[("stratus_replies_today", (("outcome", "ok"),))] == 1
    assert samples[("stratus_tokens_today", (("direction", "input"),))] == 100
    assert samples[("stratus_cost_usd_today", ())] == 0.5
    assert samples[("stratus_model_replies_today", (("model", 'odd "model"\\name'), ("provider", "anthropic")))] == 1
    assert samples[("stratus_websocket_connections_open", ())] == 1
    assert samples[("stratus_jobs_today", (("event", "failed"),))] == 1


def test_every_analytics_route_and_the_metrics_need_analytics_read(api: TestClient, member: User) -> None:
    for route in ROUTES:
        response = api.get(f"/api/v1/analytics/{route}", headers=member.auth)
        assert response.status_code == 403, route
        assert error_code(response) == "permission_denied"
    assert api.get("/api/v1/health/metrics", headers=member.auth).status_code == 403
    assert api.get("/api/v1/health/metrics").status_code == 401
    assert api.get("/api/v1/health").status_code == 200  # liveness stays public


@pytest.mark.parametrize("days", ["0", "91", "week"])
def test_days_outside_one_to_ninety_is_a_422(api: TestClient, admin: User, days: str) -> None:
    for route in ROUTES:
        response = api.get(f"/api/v1/analytics/{route}", headers=admin.auth, params={"days": days})
        assert response.status_code == 422, route
        assert error_code(response) == "validation_error"


def test_the_dashboard_has_every_day_of_the_period(api: TestClient, admin: User) -> None:
    body = dashboard(api, admin, days=7)
    assert body["days"] == 7
    assert len(body["byDay"]) == 7
    assert [day["day"] for day in body["byDay"]] == sorted(day["day"] for day in body["byDay"])
    assert body["byDay"][0]["day"] == body["from"]
    assert body["byDay"][-1]["day"] == body["to"]
    assert body["totals"]["cost"] == "0"


@pytest.mark.usefixtures("llm_environment")
def test_a_chat_reply_publishes_reply_completed_with_its_usage(api: TestClient, admin: User) -> None:
    published()
    response = api.post("/api/v1/ai/chat", headers=admin.auth, json={"message": "count me"})
    assert response.status_code == 200, response.text

    completed = [event for event in published() if event.type == "reply.completed"]

    assert len(completed) == 1
    data = completed[0].data
    assert completed[0].user_id == admin.id
    assert data["conversationId"] == response.json()["conversationId"]
    assert data["messageCount"] == 2
    assert data["failed"] is False
    assert isinstance(data["latencyMs"], int)
    assert Decimal(data["cost"]) >= 0


@pytest.mark.usefixtures("fresh_settings")
def test_http_requests_are_published_as_one_aggregate_per_interval(
    api: TestClient, admin: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.http import handler
    from shared.settings import get_settings

    monkeypatch.setenv("REQUEST_COUNTS_SECONDS", "0.001")
    get_settings.cache_clear()
    monkeypatch.setattr(handler, "request_counts", handler.RequestCounts())
    published()
    for _ in range(3):
        api.get("/api/v1/auth/me", headers=admin.auth)
    api.get("/api/v1/conversations/unknown", headers=admin.auth)  # a 404: a request, not an error

    counted = [event for event in published() if event.type == "requests.counted"]

    assert sum(event.data["requests"] for event in counted) == 4
    assert sum(event.data["errors"] for event in counted) == 0
    assert 1 <= len(counted) <= 4
