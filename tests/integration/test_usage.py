"""Usage through API Gateway events on moto: statistics by day and by model, the dashboard, isolation between
users, bad input, and the services other contexts call (chat records a reply, the GDPR workflows delete)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

from functions.usage import jobs, service
from functions.usage.models import ReplyUsage
from tests.integration.conftest import User, error_code, register
from tests.integration.jobs_pages import delete_all, export_all


def reply_usage(user: User, model: str = "claude-haiku-4-5", **changes: Any) -> ReplyUsage:
    usage = ReplyUsage(
        user_id=user.id, provider="anthropic", model=model, input_tokens=100, output_tokens=20, cache_read_tokens=0,
        cache_write_tokens=0, cost_usd=Decimal("0.000123"), latency_ms=400, time_to_first_token_ms=90,
        conversation_id="conversation", message_id="message", status="complete",
    )  # fmt: skip
    return replace(usage, **changes)


def record_days_ago(user: User, days: int, usage: ReplyUsage) -> None:
    """What a reply `days` ago would have left (the service records the present only)."""
    from functions.usage import store

    moment = datetime.now(UTC) - timedelta(days=days)
    store.record_usage(usage, moment, f"record-{days}-{usage.model}-{usage.latency_ms}")


def test_usage_stats_add_up_the_replies_of_the_period_by_day_and_by_model(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    service.record_reply(reply_usage(ada, cost_usd=Decimal("0.000000001"), latency_ms=300))
    service.record_reply(reply_usage(ada, cost_usd=Decimal("0.000000002"), latency_ms=501))
    record_days_ago(ada, 3, reply_usage(ada, "gpt-4o-mini", provider="openai", input_tokens=7, output_tokens=3))
    record_days_ago(ada, 7, reply_usage(ada, "gpt-4o-mini", provider="openai"))  # one day before the period

    response = api.get("/api/v1/users/usage-stats", headers=ada.auth, params={"days": 7})

    assert response.status_code == 200, response.text
    today = datetime.now(UTC).date()
    three_days_ago = (today - timedelta(days=3)).isoformat()
    assert response.json() == {
        "days": 7,
        "from": (today - timedelta(days=6)).isoformat(),
        "to": today.isoformat(),
        # Costs are exact decimals: nano-dollars add up without rounding.
        "totals": {"requests": 3, "inputTokens": 207, "outputTokens": 43, "cost": "0.000123003"},
        "byDay": [
            {"day": three_days_ago, "requests": 1, "inputTokens": 7, "outputTokens": 3, "cost": "0.000123"},
            {"day": today.isoformat(), "requests": 2, "inputTokens": 200, "outputTokens": 40, "cost": "0.000000003"},
        ],
        "byModel": [
            {"model": "claude-haiku-4-5", "provider": "anthropic", "requests": 2, "inputTokens": 200,
             "outputTokens": 40, "cost": "0.000000003", "averageLatencyMs": 400},
            {"model": "gpt-4o-mini", "provider": "openai", "requests": 1, "inputTokens": 7, "outputTokens": 3,
             "cost": "0.000123", "averageLatencyMs": 400},
        ],
    }  # fmt: skip


def test_a_user_with_no_replies_gets_zeros_and_never_another_users_usage(api: TestClient) -> None:
    ada, grace = register(api, "ada@example.com"), register(api, "grace@example.com")
    service.record_reply(reply_usage(ada))

    stats = api.get("/api/v1/users/usage-stats", headers=grace.auth).json()

    assert stats["days"] == 30
    assert stats["totals"] == {"requests": 0, "inputTokens": 0, "outputTokens": 0, "cost": "0"}
    assert stats["byDay"] == stats["byModel"] == []


def test_usage_stats_refuse_a_period_outside_one_day_to_a_year(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    for days in (0, 367, "week"):
        response = api.get("/api/v1/users/usage-stats", headers=ada.auth, params={"days": days})
        assert response.status_code == 422, days
        assert error_code(response) == "validation_error"
    assert api.get("/api/v1/users/usage-stats", headers=ada.auth, params={"days": 366}).status_code == 200


def test_the_dashboard_counts_what_the_user_keeps_and_used_and_nothing_of_others(api: TestClient) -> None:
    ada, grace = register(api, "ada@example.com"), register(api, "grace@example.com")
    for user, conversations in ((ada, 2), (grace, 1)):
        for number in range(conversations):
            created = api.post("/api/v1/conversations", headers=user.auth, json={"title": f"talk {number}"})
            messages = f"/api/v1/conversations/{created.json()['id']}/messages"
            for text in ("hello", "hi there"):
                assert api.post(messages, headers=user.auth, json={"content": text}).status_code == 201
    assert api.post("/api/v1/memories", headers=ada.auth, json={"content": "Prefers tea"}).status_code == 201
    service.record_reply(reply_usage(ada, input_tokens=10, output_tokens=5, cost_usd=Decimal("0.5")))
    record_days_ago(ada, 30, reply_usage(ada))  # before the dashboard's 30 days

    dashboard = api.get("/api/v1/users/dashboard", headers=ada.auth)

    assert dashboard.status_code == 200, dashboard.text
    body = dashboard.json()
    assert (body["conversations"], body["messages"], body["memories"]) == (2, 4, 1)
    assert body["usageLast30Days"] == {"requests": 1, "inputTokens": 10, "outputTokens": 5, "cost": "0.5"}
    assert set(body["limitsLeft"]) == {"windowSeconds", "resetsAt", "requests", "tokens", "costUsd"}
    assert set(body) == {"conversations", "messages", "memories", "usageLast30Days", "limitsLeft"}


def test_the_usage_routes_need_a_credential(api: TestClient) -> None:
    for path in ("/api/v1/users/usage-stats", "/api/v1/users/dashboard"):
        assert api.get(path).status_code == 401


def test_deleting_a_users_usage_takes_their_records_and_totals_and_only_theirs(api: TestClient) -> None:
    leaver, stayer = register(api, "leaver@example.com"), register(api, "stayer@example.com")
    for user in (leaver, stayer):
        for number in range(30):  # more than one BatchWriteItem of keys
            service.record_reply(reply_usage(user, message_id=f"m{number}"))
    record_days_ago(leaver, 2, reply_usage(leaver))

    assert (
        delete_all(jobs.delete_page, leaver.id, limit=7)[0] == 30 + 1 + 2
    )  # the records, today's and that day's totals
    assert service.usage_stats(leaver.id, 366).totals.requests == 0
    assert service.usage_stats(stayer.id, 366).totals.requests == 30
    assert jobs.delete_page(leaver.id, None, 7).deleted == 0


def test_the_export_holds_every_usage_record_and_daily_total_of_the_user(api: TestClient) -> None:
    ada, eve = register(api, "ada@example.com"), register(api, "eve@example.com")
    for number in range(3):
        service.record_reply(reply_usage(ada, message_id=f"m{number}", cost_usd=Decimal("0.25")))
    service.record_reply(reply_usage(eve))

    records, page_count = export_all(jobs.export_page, ada.id, "usage", limit=2)
    assert page_count > 1
    replies = [record for record in records if record["kind"] == "reply"]
    days = [record for record in records if record["kind"] == "day"]
    assert sorted(record["messageId"] for record in replies) == ["m0", "m1", "m2"]
    assert {record["cost"] for record in replies} == {"0.25"}
    assert replies[0]["inputTokens"] == 100
    assert [(day["model"], day["requests"], day["cost"]) for day in days] == [("claude-haiku-4-5", 3, "0.75")]
    assert json.loads(json.dumps(records)) == records
