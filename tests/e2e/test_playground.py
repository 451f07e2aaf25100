"""The model playground on the running local stack over real HTTP: with no provider key, the offline model answers
under every model's name, and the comparison is kept as the user's session. A stack of this module's own, whose
models are a fake Anthropic API sending a word every few tenths of a second, shows a comparison running to its end
after its client went away."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LocalStack, model_environment, running_stack
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.scripted import Reply

pytestmark = pytest.mark.e2e

# A bound on waiting for the comparison to be stored after its client left, so a lost run fails, not hangs.
SETTLE_SECONDS = 30.0


def registered(http: httpx.Client) -> dict[str, str]:
    email = f"playground-{uuid.uuid4().hex[:8]}@example.com"
    token = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"}).json()
    return {"authorization": f"Bearer {token['accessToken']}"}


def test_a_comparison_over_real_http_streams_every_model_and_is_kept(http: httpx.Client) -> None:
    auth = registered(http)
    models = ["claude-haiku-4-5", {"model": "gpt-5-mini", "temperature": 0.3}]

    body = {"prompt": "Compare, offline friends", "models": models}
    with http.stream("POST", "/api/v1/ai/playground", headers=auth, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events: list[dict[str, Any]] = [
            json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line.startswith("data: ")
        ]
    session_id = events[0]["sessionId"]
    assert events[0]["type"] == "session"
    assert events[-1] == {"type": "end", "sessionId": session_id}
    texts = {}
    for index, model in enumerate(["claude-haiku-4-5", "gpt-5-mini"]):
        own = [event for event in events if event.get("index") == index]
        assert {event["model"] for event in own} == {model}
        assert [event["status"] for event in own if event["type"] == "status"] == ["streaming", "done"]
        (metrics,) = [event for event in own if event["type"] == "metrics"]
        assert metrics["cost"] == "0"  # the offline model is free
        texts[index] = "".join(event["delta"] for event in own if event["type"] == "content")
        assert "Compare, offline friends" in texts[index]

    stored = http.get(f"/api/v1/ai/playground/sessions/{session_id}", headers=auth).json()
    assert [(result["model"], result["response"]) for result in stored["results"]] == [
        ("claude-haiku-4-5", texts[0]),
        ("gpt-5-mini", texts[1]),
    ]
    listed = http.get("/api/v1/ai/playground/sessions", headers=auth).json()["items"]
    assert [session["sessionId"] for session in listed] == [session_id]
    assert http.delete(f"/api/v1/ai/playground/sessions/{session_id}", headers=auth).status_code == 204
    assert http.get(f"/api/v1/ai/playground/sessions/{session_id}", headers=auth).status_code == 404
    assert http.post("/api/v1/ai/playground", json=body).status_code == 401


@pytest.fixture(scope="module")
def slow_models() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory, slow_models: FakeAnthropic) -> Iterator[LocalStack]:
    log_path: Path = tmp_path_factory.mktemp("playground-stack") / "local.log"
    with running_stack(log_path, model_environment(slow_models.base_url)) as stack:
        yield stack


def test_a_comparison_whose_client_went_away_runs_to_its_end_and_is_kept(
    slow_stack: LocalStack, slow_models: FakeAnthropic
) -> None:
    fast = Reply("one two three four five", chunk_delay=0.2)
    slow = Reply("six seven eight nine ten eleven", chunk_delay=0.3)
    slow_models.for_model("claude-haiku-4-5", fast).for_model("claude-sonnet-4-6", slow)
    body = {"prompt": "Count for me", "models": ["claude-haiku-4-5", "claude-sonnet-4-6"]}
    with httpx.Client(base_url=slow_stack.base_url, timeout=30) as http:
        auth = registered(http)
        with http.stream("POST", "/api/v1/ai/playground", headers=auth, json=body) as response:
            assert response.status_code == 200
            seen: list[dict[str, Any]] = []
            for line in response.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line.removeprefix("data: ")))
                    if seen[-1]["type"] == "content":
                        break  # the client leaves after the first word
        session_id = seen[0]["sessionId"]

        deadline = time.monotonic() + SETTLE_SECONDS
        while (found := http.get(f"/api/v1/ai/playground/sessions/{session_id}", headers=auth)).status_code == 404:
            assert time.monotonic() < deadline, "the comparison was never stored"
            time.sleep(0.1)
    results = found.json()["results"]
    assert [(result["status"], result["response"]) for result in results] == [("done", fast.text), ("done", slow.text)]
    assert slow_models.streams_closed_early == 0
