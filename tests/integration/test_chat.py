"""Chat through the API with the real anthropic and openai SDKs against fake servers speaking their wire formats:
streaming, failover, partial replies, memories and history in the prompt, usage, cost and limits."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.chat import limits
from shared.llm import catalog
from shared.llm.types import UsageReport
from shared.settings import get_settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.conftest import User, error_code, register

STREAM = "/api/v1/ai/chat/stream"


def events_of(api: TestClient, user: User, body: dict[str, Any]) -> list[dict[str, Any]]:
    with api.stream("POST", STREAM, headers=user.auth, json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line.startswith("data: ")]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(event["delta"] for event in events if event["type"] == "content")


def _text(content: str | list[dict[str, Any]]) -> str:
    """A message's text, whether sent as a string or as content blocks."""
    return content if isinstance(content, str) else "".join(block.get("text", "") for block in content)


def stored_reply(api: TestClient, user: User, conversation_id: str) -> dict[str, Any]:
    messages = api.get(f"/api/v1/conversations/{conversation_id}/messages", headers=user.auth).json()["items"]
    return dict(messages[-1])


@pytest.fixture
def user(api: TestClient) -> User:
    return register(api, "chatter@example.com")


@pytest.fixture
def anthropic(anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]) -> FakeAnthropic:
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    return anthropic_fake


@pytest.fixture
def both(
    anthropic_fake: FakeAnthropic, openai_fake: FakeOpenAI, llm_environment: Callable[..., None]
) -> tuple[FakeAnthropic, FakeOpenAI]:
    """Anthropic first, OpenAI second in the stage's failover chain; short timeouts so a hang fails fast."""
    llm_environment(
        ANTHROPIC_API_KEY="test-key",
        ANTHROPIC_BASE_URL=anthropic_fake.base_url,
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=openai_fake.base_url,
        PROVIDER_CHAIN="anthropic,openai",
        PROVIDER_READ_TIMEOUT_SECONDS="1",
    )
    return anthropic_fake, openai_fake


def test_a_streamed_reply_arrives_in_order_and_is_stored_with_its_usage(
    api: TestClient, user: User, anthropic: FakeAnthropic
) -> None:
    anthropic.reply("Hello from the fake Claude.", input_tokens=1200, output_tokens=300)
    events = events_of(api, user, {"message": "Say hello"})
    assert events[0]["type"] == "start"
    assert [e["type"] for e in events][-2:] == ["usage", "end"]
    start = events[0]
    assert start["provider"] == "anthropic"
    assert text_of(events) == "Hello from the fake Claude."
    expected_cost = catalog.cost_usd(catalog.model_info(start["model"]), UsageReport(1200, 300))
    assert events[-2] == {"type": "usage", "inputTokens": 1200, "outputTokens": 300, "cost": format(expected_cost, "f")}
    assert expected_cost > 0
    assert events[-1] == {"type": "end", "stopReason": "end_turn"}

    reply = stored_reply(api, user, start["conversationId"])
    assert reply["id"] == start["messageId"]
    assert reply["content"] == "Hello from the fake Claude."
    assert reply["metadata"] | {"cost": None} == {
        "provider": "anthropic", "model": start["model"], "inputTokens": 1200, "outputTokens": 300, "cost": None,
        "stopReason": "end_turn", "incomplete": False,
    }  # fmt: skip
    stats = api.get("/api/v1/users/usage-stats", headers=user.auth, params={"days": 7}).json()
    assert stats["totals"] | {"cost": Decimal(stats["totals"]["cost"])} == {
        "requests": 1, "inputTokens": 1200, "outputTokens": 300, "cost": expected_cost,
    }  # fmt: skip
    assert [m["model"] for m in stats["byModel"]] == [start["model"]]


@pytest.mark.parametrize("failure", ["overloaded", "server_error", "timeout"])
def test_a_failing_primary_hands_the_reply_to_the_secondary_and_says_so(
    api: TestClient, user: User, both: tuple[FakeAnthropic, FakeOpenAI], failure: str
) -> None:
    primary, secondary = both
    {
        "overloaded": lambda: primary.fail(529),
        "server_error": lambda: primary.fail(500),
        "timeout": lambda: primary.hang(3),
    }[failure]()
    secondary.reply("Answered by the secondary.")
    events = events_of(api, user, {"message": "Are you there?"})
    assert events[0]["provider"] == "openai"
    assert text_of(events) == "Answered by the secondary."
    assert events[-1]["stopReason"] == "end_turn"
    assert stored_reply(api, user, events[0]["conversationId"])["metadata"]["provider"] == "openai"


def test_bad_credentials_do_not_fail_over(api: TestClient, user: User, both: tuple[FakeAnthropic, FakeOpenAI]) -> None:
    primary, secondary = both
    primary.fail(401)
    events = events_of(api, user, {"message": "hi"})
    assert [e["type"] for e in events] == ["start", "usage", "error", "end"]
    assert events[2]["code"] == "provider_error"
    assert secondary.requests == []


def test_a_failure_mid_stream_keeps_the_partial_reply_marked_incomplete(
    api: TestClient, user: User, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_one_window(monkeypatch)
    anthropic.fail_mid_stream(after_chunks=3, text="one two three four five six")
    events = events_of(api, user, {"message": "count"})
    assert text_of(events) == "one two three "
    assert [e["type"] for e in events][-3:] == ["usage", "error", "end"]
    assert events[-1]["stopReason"] == "error"
    reply = stored_reply(api, user, events[0]["conversationId"])
    assert reply["content"] == "one two three "
    assert reply["metadata"]["incomplete"] is True
    # The provider never reported usage: what was sent and received is estimated, so it still counts.
    usage = next(e for e in events if e["type"] == "usage")
    assert usage["outputTokens"] == 4  # "one two three " is 14 characters, about 4 a token
    assert usage["inputTokens"] >= 2
    assert reply["metadata"]["outputTokens"] == 4
    limits_left = api.get("/api/v1/users/dashboard", headers=user.auth).json()["limitsLeft"]
    assert int(limits_left["tokens"]) == get_settings().chat_tokens_per_window - usage["inputTokens"] - 4


def test_the_prompt_carries_the_history_the_memories_and_the_settings(
    api: TestClient, user: User, anthropic: FakeAnthropic
) -> None:
    api.post("/api/v1/memories", headers=user.auth, json={"content": "Prefers metric units", "category": "preference"})
    api.put("/api/v1/users/settings", headers=user.auth, json={"systemPrompt": "Be terse.", "maxTokens": 321})
    anthropic.reply("First answer.")
    first = events_of(api, user, {"message": "First question"})
    anthropic.reply("Second answer.")
    events_of(api, user, {"message": "Second question", "conversationId": first[0]["conversationId"]})

    sent = anthropic.last_request.body
    assert sent is not None
    assert sent["max_tokens"] == 321
    assert "Be terse." in json.dumps(sent["system"])
    assert "Prefers metric units" in json.dumps(sent["system"])
    assert [(m["role"], _text(m["content"])) for m in sent["messages"]] == [
        ("user", "First question"),
        ("assistant", "First answer."),
        ("user", "Second question"),
    ]

    anthropic.reply("No memories here.")
    events_of(api, user, {"message": "Third", "useMemories": False})
    assert "Prefers metric units" not in json.dumps(anthropic.last_request.body)


def test_the_buffered_reply_matches_the_stream_and_a_dead_provider_is_a_502(
    api: TestClient, user: User, anthropic: FakeAnthropic
) -> None:
    anthropic.reply("All at once.", input_tokens=5, output_tokens=4)
    response = api.post("/api/v1/ai/chat", headers=user.auth, json={"message": "buffered please"})
    assert response.status_code == 200
    body = response.json()
    assert body["message"]["content"] == "All at once."
    assert body["message"]["provider"] == "anthropic"
    assert body["usage"]["inputTokens"] == 5
    assert stored_reply(api, user, body["conversationId"])["content"] == "All at once."

    anthropic.fail(529).fail(529).fail(529).fail(529)
    failed = api.post("/api/v1/ai/chat", headers=user.auth, json={"message": "again"})
    assert failed.status_code == 502
    assert error_code(failed) == "provider_error"


def test_another_users_conversation_and_unknown_models_are_refused_before_streaming(
    api: TestClient, user: User, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_one_window(monkeypatch)
    other = register(api, "other@example.com")
    theirs = api.post("/api/v1/conversations", headers=other.auth, json={"title": "private"}).json()
    refused = api.post(STREAM, headers=user.auth, json={"message": "hi", "conversationId": theirs["id"]})
    assert refused.status_code == 404
    assert error_code(refused) == "conversation_not_found"
    unknown = api.post(STREAM, headers=user.auth, json={"message": "hi", "model": "gpt-7-imaginary"})
    assert unknown.status_code == 422
    assert error_code(unknown) == "model_unavailable"
    limits_left = api.get("/api/v1/users/dashboard", headers=user.auth).json()["limitsLeft"]["requests"]
    assert limits_left == get_settings().chat_requests_per_window - 1  # only the 404 above was counted
    assert api.post(STREAM, headers=user.auth, json={"message": ""}).status_code == 422
    assert anthropic.requests == []


def in_one_window(monkeypatch: pytest.MonkeyPatch) -> float:
    """The limits see one moment (returned), so a test's requests never straddle two windows, whatever the clock
    does."""
    moment = time.time()
    monkeypatch.setattr(limits, "time", SimpleNamespace(time=lambda: moment, monotonic=time.monotonic))
    return moment


@pytest.fixture
def two_requests_a_window(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    """Two requests an hour; the seconds left in the (held) window."""
    monkeypatch.setenv("CHAT_REQUESTS_PER_WINDOW", "2")
    moment = in_one_window(monkeypatch)
    get_settings.cache_clear()
    yield 3600 - moment % 3600
    get_settings.cache_clear()


def test_limits_answer_429_with_retry_after_on_both_paths(
    api: TestClient, user: User, two_requests_a_window: float
) -> None:
    events_of(api, user, {"message": "one"})
    assert api.post("/api/v1/ai/chat", headers=user.auth, json={"message": "two"}).status_code == 200
    for path in (STREAM, "/api/v1/ai/chat"):
        refused = api.post(path, headers=user.auth, json={"message": "three"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) == max(1, int(two_requests_a_window))
        assert refused.json()["error"]["details"][0]["limit"] == "requests_per_window"
    # A refused request leaves nothing behind: no conversation, no message "three".
    conversations = api.get("/api/v1/conversations", headers=user.auth).json()["items"]
    assert len(conversations) == 2
    for conversation in conversations:
        messages = api.get(f"/api/v1/conversations/{conversation['id']}/messages", headers=user.auth).json()["items"]
        assert "three" not in [m["content"] for m in messages]


@pytest.fixture
def fifty_requests_a_window(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CHAT_REQUESTS_PER_WINDOW", "50")
    in_one_window(monkeypatch)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fifty_requests_a_window", "llm_environment")
def test_a_hundred_concurrent_chats_against_a_limit_of_fifty_serve_exactly_fifty(api: TestClient, user: User) -> None:
    def chat(number: int) -> int:
        return api.post("/api/v1/ai/chat", headers=user.auth, json={"message": f"request {number}"}).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(chat, range(100)))
    assert statuses.count(200) == 50
    assert statuses.count(429) == 50
    listed = api.get("/api/v1/conversations", headers=user.auth, params={"limit": 100}).json()["items"]
    assert len(listed) == 50  # the refused fifty left no conversation behind


def test_models_list_the_configured_providers_with_prices_and_health_probes_them(
    api: TestClient, user: User, anthropic: FakeAnthropic
) -> None:
    models = api.get("/api/v1/ai/models", headers=user.auth).json()["items"]
    assert models
    assert {model["provider"] for model in models} == {"anthropic"}
    assert all(model["inputPrice"] > 0 and model["contextWindow"] > 0 for model in models)
    health = api.get("/api/v1/ai/health", headers=user.auth).json()["items"]
    assert [(h["provider"], h["reachable"]) for h in health] == [("anthropic", True)]


@pytest.mark.usefixtures("llm_environment")
def test_with_no_provider_the_offline_model_answers_and_says_so(api: TestClient, user: User) -> None:
    events = events_of(api, user, {"message": "Is anyone there?"})
    assert events[0]["provider"] == "offline"
    assert "offline" in text_of(events).lower()
    assert events[-2]["cost"] == "0"
