"""The model playground through the API, with the real anthropic and openai SDKs against the fake providers:
models of different speeds compared in one stream, one failing alone, limits counted for every model before
anything runs, and the comparisons kept as the user's sessions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.chat import playground_store
from functions.chat import store as chat_store
from shared.llm import catalog
from shared.llm.types import UsageReport
from shared.settings import get_settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.scripted import Fail, Reply
from tests.integration import test_chat
from tests.integration.conftest import User, error_code, register
from tests.integration.test_chat import in_one_window
from tests.integration.test_revocation import api_key

PLAYGROUND = "/api/v1/ai/playground"
SESSIONS = f"{PLAYGROUND}/sessions"
Event = dict[str, Any]
# The fakes as chat's tests configure them: Anthropic first, OpenAI second in the stage's chain.
both = test_chat.both

# Three models of different speeds (a word every 20, 40 and 60 ms: the fake sleeps in 20 ms steps).
FAST = ("claude-haiku-4-5", Reply("Quick and short answer from the fast model.", 40, 11, chunk_delay=0.02))
MEDIUM = ("gpt-5-mini", Reply("A steadier answer, from the model in the middle.", 41, 13, chunk_delay=0.04))
SLOW = ("claude-sonnet-4-6", Reply("The slowest model takes its time over every word.", 42, 17, chunk_delay=0.06))


@pytest.fixture
def user(api: TestClient) -> User:
    return register(api, "tester@example.com")


@pytest.fixture
def window(monkeypatch: pytest.MonkeyPatch) -> int:
    """The limits see one moment, so a test's requests never straddle two windows; the window's start."""
    moment = in_one_window(monkeypatch)
    return int(moment) - int(moment) % get_settings().chat_window_seconds


def script(both: tuple[FakeAnthropic, FakeOpenAI], *models: tuple[str, Any]) -> None:
    anthropic, openai = both
    for model, behaviour in models:
        (openai if model.startswith("gpt") else anthropic).for_model(model, behaviour)


def compare(api: TestClient, user: User, body: dict[str, Any]) -> list[tuple[str | None, Event]]:
    """The comparison's events, each with its SSE id."""
    with api.stream("POST", PLAYGROUND, headers=user.auth, json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        events: list[tuple[str | None, Event]] = []
        event_id: str | None = None
        for line in response.iter_lines():
            if line.startswith("id: "):
                event_id = line.removeprefix("id: ")
            elif line.startswith("data: "):
                events.append((event_id, json.loads(line.removeprefix("data: "))))
                event_id = None
        return events


def of_model(events: list[tuple[str | None, Event]], index: int) -> list[Event]:
    return [event for _, event in events if event.get("index") == index]


def text_of(events: list[Event]) -> str:
    return "".join(event["delta"] for event in events if event["type"] == "content")


def price(model: str, behaviour: Reply) -> Decimal:
    usage = UsageReport(behaviour.input_tokens, behaviour.billed_output_tokens)
    return catalog.cost_usd(catalog.model_info(model), usage)


def test_three_models_of_different_speeds_each_arrive_complete_with_their_exact_metrics(
    api: TestClient, user: User, both: tuple[FakeAnthropic, FakeOpenAI], window: int
) -> None:
    script(both, FAST, MEDIUM, SLOW)
    events = compare(api, user, {"prompt": "Explain tides", "models": [SLOW[0], MEDIUM[0], FAST[0]]})

    session_id = events[0][1]["sessionId"]
    assert events[0][1] == {"type": "session", "sessionId": session_id}
    assert events[-1][1] == {"type": "end", "sessionId": session_id}
    # Every event is numbered within the session, from 1 without gaps.
    assert [event_id for event_id, _ in events] == [f"{session_id}:{seq}" for seq in range(1, len(events) + 1)]

    for index, (model, behaviour) in enumerate((SLOW, MEDIUM, FAST)):
        own = of_model(events, index)
        assert all(event["model"] == model for event in own)
        assert own[0] == {"type": "status", "model": model, "index": index, "status": "streaming"}
        assert own[-1] == {"type": "status", "model": model, "index": index, "status": "done"}
        assert text_of(own) == behaviour.text
        (metrics,) = [event for event in own if event["type"] == "metrics"]
        assert metrics | {"latencyMs": None, "ttftMs": None, "tokensPerSecond": None} == {
            "type": "metrics", "model": model, "index": index, "inputTokens": behaviour.input_tokens,
            "outputTokens": behaviour.billed_output_tokens, "cost": format(price(model, behaviour), "f"),
            "latencyMs": None, "ttftMs": None, "tokensPerSecond": None,
        }  # fmt: skip
        assert 0 <= metrics["ttftMs"] <= metrics["latencyMs"]
        assert metrics["tokensPerSecond"] > 0
        assert not [event for event in own if event["type"] == "error"]

    # The prompt reached each model as the request gave it; the comparison counted three requests.
    anthropic, openai = both
    assert sorted(request.body["model"] for request in anthropic.requests if request.body) == [FAST[0], SLOW[0]]
    assert [request.body["messages"][-1]["content"] for request in openai.requests if request.body] == ["Explain tides"]
    assert chat_store.window_counts(user.id, window).requests == 3

    stored = api.get(f"{SESSIONS}/{session_id}", headers=user.auth).json()
    total = sum((price(model, behaviour) for model, behaviour in (SLOW, MEDIUM, FAST)), Decimal(0))
    assert Decimal(stored["totalCost"]) == total > 0
    assert stored["prompt"] == "Explain tides"
    assert [(r["model"], r["status"], r["response"], r["provider"]) for r in stored["results"]] == [
        (SLOW[0], "done", SLOW[1].text, "anthropic"),
        (MEDIUM[0], "done", MEDIUM[1].text, "openai"),
        (FAST[0], "done", FAST[1].text, "anthropic"),
    ]
    streamed = [event for _, event in events if event["type"] == "metrics"]
    by_index = {event["index"]: event for event in streamed}
    for result in stored["results"]:
        assert result["metrics"]["outputTokens"] == by_index[result["index"]]["outputTokens"]
        assert result["metrics"]["cost"] == by_index[result["index"]]["cost"]

    # Each model call is a usage record of the user's, with its price.
    stats = api.get("/api/v1/users/usage-stats", headers=user.auth, params={"days": 1}).json()
    assert stats["totals"]["requests"] == 3
    assert Decimal(stats["totals"]["cost"]) == total


def test_a_failing_model_reports_its_own_error_while_the_others_finish(
    api: TestClient, user: User, both: tuple[FakeAnthropic, FakeOpenAI], window: int
) -> None:
    # Refused credentials: no failover, the model's part fails at once.
    script(both, FAST, MEDIUM, (SLOW[0], Fail(401)))
    events = compare(api, user, {"prompt": "hi", "models": [FAST[0], SLOW[0], MEDIUM[0]]})

    failed = of_model(events, 1)
    assert [event["type"] for event in failed] == ["status", "metrics", "error", "status"]
    assert failed[2] | {"message": None} == {
        "type": "error", "model": SLOW[0], "index": 1, "code": "provider_error", "message": None,
    }  # fmt: skip
    assert failed[-1]["status"] == "error"
    for index, (_, behaviour) in ((0, FAST), (2, MEDIUM)):
        assert text_of(of_model(events, index)) == behaviour.text
        assert of_model(events, index)[-1]["status"] == "done"
    assert events[-1][1]["type"] == "end"

    stored = api.get(f"{SESSIONS}/{events[0][1]['sessionId']}", headers=user.auth).json()
    assert [result["status"] for result in stored["results"]] == ["done", "error", "done"]
    assert stored["results"][1]["error"]["code"] == "provider_error"
    assert Decimal(stored["totalCost"]) == price(*FAST) + price(*MEDIUM)


@pytest.fixture
def five_requests_a_window(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CHAT_REQUESTS_PER_WINDOW", "5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("five_requests_a_window")
def test_six_models_over_a_limit_of_five_are_refused_before_anything_runs_or_is_charged(
    api: TestClient, user: User, both: tuple[FakeAnthropic, FakeOpenAI], window: int
) -> None:
    models = [FAST[0], MEDIUM[0], SLOW[0], FAST[0], MEDIUM[0], SLOW[0]]
    response = api.post(PLAYGROUND, headers=user.auth, json={"prompt": "hi", "models": models})
    assert response.status_code == 429
    assert error_code(response) == "rate_limited"
    assert "requests_per_window" in response.json()["error"]["message"]
    assert int(response.headers["retry-after"]) > 0

    anthropic, openai = both
    assert anthropic.requests == []
    assert openai.requests == []
    assert chat_store.window_counts(user.id, window) == chat_store.WindowCounts(0, 0, Decimal(0))
    stats = api.get("/api/v1/users/usage-stats", headers=user.auth, params={"days": 1}).json()
    assert stats["totals"]["requests"] == 0
    assert api.get(SESSIONS, headers=user.auth).json()["items"] == []
    # The five requests are all still there for a comparison of five.
    events = compare(api, user, {"prompt": "hi", "models": models[:5]})
    assert [event["status"] for _, event in events if event["type"] == "status"].count("done") == 5


def test_an_unknown_model_is_refused_and_counts_nothing(
    api: TestClient, user: User, both: tuple[FakeAnthropic, FakeOpenAI], window: int
) -> None:
    response = api.post(PLAYGROUND, headers=user.auth, json={"prompt": "hi", "models": [FAST[0], "no-such-model"]})
    assert response.status_code == 422
    assert error_code(response) == "model_unavailable"
    assert chat_store.window_counts(user.id, window).requests == 0
    assert both[0].requests == []


@pytest.mark.parametrize(
    "models",
    [
        pytest.param(["claude-haiku-4-5"], id="one model"),
        pytest.param(["claude-haiku-4-5"] * 7, id="seven models"),
        pytest.param(["claude-haiku-4-5", {"model": "gpt-5-mini", "temperature": 3}], id="temperature over 2"),
        pytest.param(["claude-haiku-4-5", {"provider": "openai"}], id="an entry without its model"),
        pytest.param(["claude-haiku-4-5", 5], id="a number"),
    ],
)
def test_a_list_of_models_that_is_not_two_to_six_valid_entries_is_refused(
    api: TestClient, user: User, both: tuple[FakeAnthropic, FakeOpenAI], models: list[Any]
) -> None:
    response = api.post(PLAYGROUND, headers=user.auth, json={"prompt": "hi", "models": models})
    assert response.status_code == 422
    assert error_code(response) == "validation_error"


def test_the_same_model_named_twice_is_told_apart_by_its_index(
    api: TestClient, user: User, both: tuple[FakeAnthropic, FakeOpenAI]
) -> None:
    anthropic, _ = both
    same = Reply("Same model, same words.", 10, 6)
    script(both, (FAST[0], same), (FAST[0], same))
    body = {
        "prompt": "hi",
        "models": [{"model": FAST[0], "temperature": 0.2}, {"model": FAST[0], "temperature": 0.9, "maxTokens": 99}],
        "systemPrompt": "Answer briefly.",
    }
    events = compare(api, user, body)
    for index in (0, 1):
        own = of_model(events, index)
        assert text_of(own) == "Same model, same words."
        assert own[-1]["status"] == "done"
    sent = sorted((r.body["temperature"], r.body["max_tokens"], r.body["system"]) for r in anthropic.requests if r.body)
    assert [(temperature, system) for temperature, _, system in sent] == [
        (0.2, "Answer briefly."),
        (0.9, "Answer briefly."),
    ]
    assert sent[1][1] == 99
    stored = api.get(f"{SESSIONS}/{events[0][1]['sessionId']}", headers=user.auth).json()
    assert [(r["index"], r["temperature"], r["maxTokens"]) for r in stored["results"]] == [(0, 0.2, None), (1, 0.9, 99)]
    assert stored["systemPrompt"] == "Answer briefly."


@pytest.mark.usefixtures("both")
def test_sessions_are_listed_newest_first_read_and_deleted_by_their_owner_alone(api: TestClient, user: User) -> None:
    first = compare(api, user, {"prompt": "first", "models": [FAST[0], MEDIUM[0]]})[0][1]["sessionId"]
    second = compare(api, user, {"prompt": "second", "models": [FAST[0], MEDIUM[0]]})[0][1]["sessionId"]

    page = api.get(SESSIONS, headers=user.auth, params={"limit": 1}).json()
    assert [item["sessionId"] for item in page["items"]] == [second]
    rest = api.get(SESSIONS, headers=user.auth, params={"limit": 1, "cursor": page["nextCursor"]}).json()
    assert [item["prompt"] for item in rest["items"]] == ["first"]
    assert rest["items"][0]["results"][0]["response"]

    other = register(api, "other@example.com")
    assert api.get(SESSIONS, headers=other.auth).json()["items"] == []
    assert api.get(f"{SESSIONS}/{first}", headers=other.auth).status_code == 404
    assert error_code(api.delete(f"{SESSIONS}/{first}", headers=other.auth)) == "session_not_found"
    # A cursor of the owner's list starts nothing in someone else's.
    assert api.get(SESSIONS, headers=other.auth, params={"cursor": page["nextCursor"]}).status_code == 400

    assert api.delete(f"{SESSIONS}/{first}", headers=user.auth).status_code == 204
    assert api.get(f"{SESSIONS}/{first}", headers=user.auth).status_code == 404
    assert api.delete(f"{SESSIONS}/{first}", headers=user.auth).status_code == 404
    assert [item["sessionId"] for item in api.get(SESSIONS, headers=user.auth).json()["items"]] == [second]


@pytest.mark.usefixtures("both")
def test_a_caller_without_the_playground_permission_is_refused(api: TestClient, user: User) -> None:
    _, chat_only = api_key(api, user, ["ai.chat"])
    response = api.post(
        PLAYGROUND,
        headers={"authorization": f"Bearer {chat_only}"},
        json={"prompt": "hi", "models": [FAST[0], MEDIUM[0]]},
    )
    assert response.status_code == 403
    assert error_code(response) == "permission_denied"


def test_a_model_past_its_timeout_ends_its_own_part_keeping_what_it_produced(
    api: TestClient,
    user: User,
    both: tuple[FakeAnthropic, FakeOpenAI],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLAYGROUND_MODEL_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    try:
        # Its first word comes at once, the rest after far longer than the timeout.
        script(both, FAST, (SLOW[0], Reply("first then nothing for ages", 10, 9, chunk_delay=0.4)))
        events = compare(api, user, {"prompt": "hi", "models": [SLOW[0], FAST[0]]})
    finally:
        get_settings.cache_clear()
    late = of_model(events, 0)
    (error,) = [event for event in late if event["type"] == "error"]
    assert error["code"] == "model_timeout"
    assert late[-1]["status"] == "error"
    produced = text_of(late)
    assert "first then nothing for ages".startswith(produced)
    assert produced != "first then nothing for ages"
    assert text_of(of_model(events, 1)) == FAST[1].text

    stored = api.get(f"{SESSIONS}/{events[0][1]['sessionId']}", headers=user.auth).json()
    assert (stored["results"][0]["status"], stored["results"][0]["response"]) == ("error", produced)


def test_six_long_responses_are_kept_within_one_item(aws: None) -> None:
    long = "ü" * 100_000 + "\n" * 20_000  # 220 KB as stored, six times over
    session = {
        "sessionId": "01J00000000000000000000000",
        "prompt": "p" * 30_000,
        "systemPrompt": None,
        "results": [
            {
                "index": i,
                "model": "m",
                "provider": None,
                "status": "done",
                "response": long,
                "truncated": False,
                "metrics": None,
                "error": None,
            }
            for i in range(6)
        ],
        "totalCost": "0",
        "createdAt": "2026-01-01T00:00:00+00:00",
        "completedAt": "2026-01-01T00:00:01+00:00",
    }
    playground_store.put_session("user-1", session)
    stored = playground_store.get_session("user-1", session["sessionId"])
    assert stored["prompt"] == session["prompt"]
    for result in stored["results"]:
        assert result["truncated"] is True
        assert long.startswith(result["response"])
        assert len(result["response"]) > 20_000


def test_an_accounts_sessions_are_exported_and_deleted_a_page_at_a_time(aws: None) -> None:
    for user_id in ("leaver", "stayer"):
        for number in range(5):
            playground_store.put_session(
                user_id, _empty_session(f"01J0000000000000000000000{number}", f"prompt {number}")
            )

    exported: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, cursor = playground_store.export_sessions_page("leaver", cursor, 2)
        exported += page
        if cursor is None:
            break
    assert [session["prompt"] for session in exported] == [f"prompt {n}" for n in reversed(range(5))]

    assert playground_store.delete_user_items_page("leaver", 3) == (3, True)
    assert playground_store.delete_user_items_page("leaver", 3) == (2, False)
    assert playground_store.export_sessions_page("leaver", None, 10) == ([], None)
    assert len(playground_store.export_sessions_page("stayer", None, 10)[0]) == 5


def test_deleting_an_account_takes_its_playground_sessions_after_its_limit_windows(aws: None) -> None:
    from functions.chat import jobs, limits
    from tests.integration.jobs_pages import delete_all

    for user_id in ("leaver", "stayer"):
        limits.admit(user_id)
        for number in range(7):
            playground_store.put_session(user_id, _empty_session(f"01J0000000000000000000000{number}"))

    assert delete_all(jobs.delete_page, "leaver", limit=3) == (8, 3)
    assert playground_store.export_sessions_page("leaver", None, 10) == ([], None)
    assert len(playground_store.export_sessions_page("stayer", None, 10)[0]) == 7


def test_the_account_export_holds_every_comparison_page_by_page_and_nothing_of_another_user(aws: None) -> None:
    from functions.chat import jobs
    from tests.integration.jobs_pages import export_all

    for user_id in ("leaver", "stayer"):
        for number in range(5):
            playground_store.put_session(user_id, _empty_session(f"01J0000000000000000000000{number}", user_id))

    exported, pages = export_all(jobs.export_page, "leaver", "playground-sessions", limit=2)
    assert [session["sessionId"] for session in exported] == [f"01J0000000000000000000000{n}" for n in (4, 3, 2, 1, 0)]
    assert {session["prompt"] for session in exported} == {"leaver"}
    # Three pages of comparisons, then the (empty) enhancement sessions' page.
    assert pages == 4


def _empty_session(session_id: str, prompt: str = "p") -> dict[str, Any]:
    return {
        "sessionId": session_id,
        "prompt": prompt,
        "systemPrompt": None,
        "results": [],
        "totalCost": "0",
        "createdAt": "2026-01-01T00:00:00+00:00",
        "completedAt": "2026-01-01T00:00:01+00:00",
    }


def test_a_method_a_session_path_does_not_serve_is_refused_naming_every_method_it_does(
    api: TestClient, user: User
) -> None:
    response = api.options(f"{SESSIONS}/01J00000000000000000000000", headers=user.auth)
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "DELETE"}
