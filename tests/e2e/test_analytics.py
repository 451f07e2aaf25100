"""Analytics on the running local stack over real HTTP: a reply and the requests around it reach the dashboard,
the breakdowns and `/health/metrics` through the events queue (asynchronously: the test polls briefly)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LocalStack, running_stack

pytestmark = pytest.mark.e2e

POLL_SECONDS = 30


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own (its first account is the stage's admin), publishing request counts every second."""
    with running_stack(
        tmp_path_factory.mktemp("analytics-stack") / "local.log", environment={"REQUEST_COUNTS_SECONDS": "1"}
    ) as stack:
        yield stack


def signed_up(http: httpx.Client) -> dict[str, str]:
    email = f"analytics-{uuid.uuid4().hex[:8]}@example.com"
    response = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"})
    assert response.status_code == 201, response.text
    return {"authorization": f"Bearer {response.json()['accessToken']}"}


def eventually(read: Callable[[], Any], holds: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        value = read()
        if holds(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_a_reply_reaches_the_dashboard_the_breakdowns_and_the_metrics(stack: LocalStack) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        admin = signed_up(http)  # the stage's first account
        member = signed_up(http)
        reply = http.post("/api/v1/ai/chat", headers=admin, json={"message": "Count this reply"})
        assert reply.status_code == 200, reply.text
        assert http.get("/api/v1/analytics/dashboard", headers=member).status_code == 403

        def today() -> dict[str, Any]:
            response = http.get("/api/v1/analytics/dashboard", headers=admin, params={"days": 7})
            assert response.status_code == 200, response.text
            return dict(response.json()["byDay"][-1])

        counted = eventually(today, lambda day: day["replies"] >= 1)
        assert counted["replies"] == 1
        assert counted["activeUsers"] >= 1
        models = http.get("/api/v1/analytics/models", headers=admin).json()["items"]
        assert sum(item["replies"] for item in models) == 1
        lengths = http.get("/api/v1/analytics/conversations", headers=admin).json()["items"]
        assert lengths[0] == {"atLeast": 2, "conversations": 1}

        def metrics() -> dict[str, float]:
            response = http.get("/api/v1/health/metrics", headers=admin)
            assert response.status_code == 200, response.text
            return {
                sample.name + str(sorted((k, v) for k, v in sample.labels.items() if k != "stage")): sample.value
                for family in text_string_to_metric_families(response.text)
                for sample in family.samples
            }

        scraped = eventually(metrics, lambda samples: samples["stratus_requests_today[]"] > 0)
        assert scraped["stratus_requests_today[]"] > 0
        assert scraped["stratus_replies_today[('outcome', 'ok')]"] == 1
