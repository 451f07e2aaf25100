"""The OpenAI- and Anthropic-compatible APIs through the real `openai` and `anthropic` SDKs, against the local
gateway under uvicorn on a real port (moto for the tables), answered by the fake providers: streamed and
buffered text, tool round trips, usage, the SDKs' error classes, and either API served by either provider."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
import uvicorn
from fastapi.testclient import TestClient

from infra.catalog import AUTHORIZER_FUNCTION, STREAMING_FUNCTIONS, all_routes
from infra.local.gateway import Gateway
from shared.settings import get_settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.conftest import User, free_port, register

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture
def stage(aws: None) -> Iterator[str]:
    """The whole local API (the streaming chat app included) served by uvicorn; yields its base URL."""
    gateway = Gateway(all_routes(), authorizer=AUTHORIZER_FUNCTION, stage="test", streaming=STREAMING_FUNCTIONS)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(gateway, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        gateway.close()


@pytest.fixture
def user(api: TestClient) -> User:
    return register(api, "compatible@example.com")


def api_key(api: TestClient, user: User, permissions: list[str]) -> str:
    created = api.post("/api/v1/api-keys", headers=user.auth, json={"name": "sdk", "permissions": permissions})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


@pytest.fixture
def key(api: TestClient, user: User) -> str:
    return api_key(api, user, ["ai.chat"])


@pytest.fixture
def anthropic_only(anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]) -> FakeAnthropic:
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    return anthropic_fake


@pytest.fixture
def openai_only(openai_fake: FakeOpenAI, llm_environment: Callable[..., None]) -> FakeOpenAI:
    llm_environment(OPENAI_API_KEY="test-key", OPENAI_BASE_URL=openai_fake.base_url)
    return openai_fake


@pytest.fixture
def limit_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """`limit_requests(n)`: the chat limit of requests per window set to n for the rest of the test."""

    def limit(count: int) -> None:
        monkeypatch.setenv("CHAT_REQUESTS_PER_WINDOW", str(count))
        get_settings.cache_clear()

    yield limit
    monkeypatch.delenv("CHAT_REQUESTS_PER_WINDOW", raising=False)
    get_settings.cache_clear()


def openai_client(stage: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stage}/v1", api_key=key, max_retries=0)


def anthropic_client(stage: str, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stage, api_key=key, max_retries=0)


# OpenAI clients ----------------------------------------------------------------------------------------------


def _usage_records(user_id: str) -> list[tuple[str, str, int, int, Decimal]]:
    """The user's usage records: (source, model, input tokens, output tokens, cost in USD)."""
    from shared.aws import client
    from shared.money import from_nano_usd
    from shared.tables import CHAT

    items = client("dynamodb").query(
        TableName=CHAT.name_from_env(),
        KeyConditionExpression="pk = :pk AND begins_with(sk, :usage)",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user_id}"}, ":usage": {"S": "USAGE#"}},
    )["Items"]
    return [
        (
            item["source"]["S"],
            item["model"]["S"],
            int(item["inputTokens"]["N"]),
            int(item["outputTokens"]["N"]),
            from_nano_usd(item["costNanoUsd"]["N"]),
        )
        for item in items
    ]


def _catalog_cost(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    from shared.llm import catalog
    from shared.llm.types import UsageReport

    return catalog.cost_usd(catalog.model_info(model), UsageReport(input_tokens, output_tokens))


def test_openai_buffered_completion_answered_by_anthropic_with_its_usage(
    stage: str, key: str, user: User, anthropic_only: FakeAnthropic
) -> None:
    anthropic_only.reply("Paris is warmer.", input_tokens=41, output_tokens=5)

    completion = openai_client(stage, key).chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Which is warmer?"}],
        max_completion_tokens=200,
        stop=["END"],
    )

    assert completion.choices[0].message.content == "Paris is warmer."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (41, 5)
    sent = anthropic_only.last_request.body
    assert sent is not None
    assert (sent["model"], sent["system"], sent["max_tokens"], sent["stop_sequences"]) == (
        "claude-sonnet-4-6",
        "Be terse.",
        200,
        ["END"],
    )
    # Recorded as chat's replies are, priced by the catalog, under the API that asked.
    cost = _catalog_cost("claude-sonnet-4-6", 41, 5)
    assert _usage_records(user.id) == [("openai", "claude-sonnet-4-6", 41, 5, cost)]


def test_openai_stream_with_usage_parses_chunk_by_chunk(stage: str, key: str, anthropic_only: FakeAnthropic) -> None:
    anthropic_only.reply("It is sunny in Paris today.", input_tokens=30, output_tokens=7)

    stream = openai_client(stage, key).chat.completions.create(
        model="stratus-auto",
        messages=[{"role": "user", "content": "Weather?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == (
        "It is sunny in Paris today."
    )
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (30, 7)


def test_openai_tool_round_trip_through_a_streamed_call_and_a_tool_message(
    stage: str, key: str, anthropic_only: FakeAnthropic
) -> None:
    anthropic_only.tool_call("get_weather", {"city": "Paris"}, id="toolu_7")
    anthropic_only.reply("The tool said: {tool_result}")
    client = openai_client(stage, key)
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    question: Any = {"role": "user", "content": "Weather in Paris?"}

    with client.chat.completions.stream(model="claude-sonnet-4-6", messages=[question], tools=tools) as stream:
        first = stream.get_final_completion()
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name, call.function.arguments) == ("toolu_7", "get_weather", '{"city": "Paris"}')

    answer = client.chat.completions.create(
        model="claude-sonnet-4-6",
        tools=tools,
        messages=[
            question,
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "toolu_7", "content": "18°C and sunny"},
        ],
    )

    assert answer.choices[0].message.content == "The tool said: 18°C and sunny"
    sent = anthropic_only.last_request.body
    assert sent is not None
    assert sent["messages"][-1] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_7", "content": "18°C and sunny"}],
    }


def test_openai_models_list_shows_the_default_and_the_servable_models(
    stage: str, key: str, anthropic_only: FakeAnthropic
) -> None:
    listed = [model.id for model in openai_client(stage, key).models.list()]

    assert listed[0] == "stratus-auto"
    assert "claude-sonnet-4-6" in listed
    assert not any(model.startswith("gpt-") for model in listed)  # OpenAI is not configured on this stage


def test_openai_errors_are_the_sdks_own_classes(
    stage: str, api: TestClient, user: User, key: str, anthropic_only: FakeAnthropic
) -> None:
    hello: Any = [{"role": "user", "content": "hi"}]
    client = openai_client(stage, key)

    with pytest.raises(openai.AuthenticationError):
        openai_client(stage, "sk-stratus-not-a-real-key").chat.completions.create(model="stratus-auto", messages=hello)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-9-ultra", messages=hello)
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as two:
        client.chat.completions.create(model="stratus-auto", messages=hello, n=2)
    assert two.value.param == "n"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="stratus-auto", messages=[{"role": "assistant", "content": "I start"}])
    no_chat = api_key(api, user, ["mcp.use"])
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(stage, no_chat).chat.completions.create(model="stratus-auto", messages=hello)
    assert anthropic_only.requests == []  # none of them reached a provider


def test_a_revoked_key_is_refused_at_once(
    stage: str, api: TestClient, user: User, anthropic_only: FakeAnthropic
) -> None:
    created = api.post("/api/v1/api-keys", headers=user.auth, json={"name": "sdk", "permissions": ["ai.chat"]})
    client = openai_client(stage, created.json()["key"])
    hello: Any = [{"role": "user", "content": "hi"}]
    assert client.chat.completions.create(model="stratus-auto", messages=hello).choices[0].message.content

    assert api.delete(f"/api/v1/api-keys/{created.json()['id']}", headers=user.auth).status_code == 204

    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="stratus-auto", messages=hello)
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(stage, created.json()["key"]).messages.create(
            model="stratus-auto", max_tokens=5, messages=hello
        )


def test_openai_provider_failure_before_any_output_is_a_server_error(
    stage: str, key: str, anthropic_only: FakeAnthropic
) -> None:
    anthropic_only.fail(400)  # not retryable: no other provider would do better

    with pytest.raises(openai.InternalServerError) as failed:
        openai_client(stage, key).chat.completions.create(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert failed.value.status_code == 502


def test_a_limit_is_an_openai_rate_limit_error_with_retry_after(
    stage: str, key: str, anthropic_only: FakeAnthropic, limit_requests: Callable[[int], None]
) -> None:
    limit_requests(1)
    client = openai_client(stage, key)
    hello: Any = [{"role": "user", "content": "hi"}]

    client.chat.completions.create(model="stratus-auto", messages=hello)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="stratus-auto", messages=hello, stream=True)
    assert int(limited.value.response.headers["retry-after"]) > 0
    assert len(anthropic_only.requests) == 1


def test_twenty_concurrent_calls_against_a_limit_of_ten_serve_exactly_ten(
    stage: str, key: str, anthropic_only: FakeAnthropic, limit_requests: Callable[[int], None]
) -> None:
    limit_requests(10)
    client = openai_client(stage, key)

    def call(index: int) -> str:
        try:
            completion = client.chat.completions.create(
                model="stratus-auto", messages=[{"role": "user", "content": f"question {index}"}], stream=index % 2 == 0
            )
        except openai.RateLimitError:
            return "limited"
        if isinstance(completion, openai.Stream):
            return "served" if "".join(c.choices[0].delta.content or "" for c in completion if c.choices) else "empty"
        return "served" if completion.choices[0].message.content else "empty"

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(call, range(20)))

    assert sorted(outcomes) == ["limited"] * 10 + ["served"] * 10
    assert len(anthropic_only.requests) == 10


def test_opting_in_stores_the_exchange_in_a_new_conversation_then_continues_it(
    stage: str, api: TestClient, user: User, key: str, anthropic_only: FakeAnthropic
) -> None:
    anthropic_only.reply("Paris is warmer.").reply("By four degrees.")
    client = openai_client(stage, key)
    first: Any = [{"role": "user", "content": "Which is warmer?"}]

    raw = client.chat.completions.with_raw_response.create(
        model="stratus-auto", messages=first, extra_headers={"X-Stratus-Conversation": "new"}
    )
    conversation_id = raw.headers["x-stratus-conversation"]
    assert raw.parse().choices[0].message.content == "Paris is warmer."

    later = [*first, {"role": "assistant", "content": "Paris is warmer."}, {"role": "user", "content": "By how much?"}]
    with anthropic_client(stage, key).messages.with_streaming_response.create(
        model="stratus-auto",
        max_tokens=50,
        messages=later,
        stream=True,
        extra_headers={"X-Stratus-Conversation": conversation_id},
    ) as streamed:
        assert streamed.headers["x-stratus-conversation"] == conversation_id
        streamed.read()

    stored = api.get(f"/api/v1/conversations/{conversation_id}/messages", headers=user.auth).json()["items"]
    assert [(message["role"], message["content"]) for message in stored] == [
        ("user", "Which is warmer?"),
        ("assistant", "Paris is warmer."),
        ("user", "By how much?"),
        ("assistant", "By four degrees."),
    ]
    # The model was sent the client's messages, not the stored history twice.
    assert anthropic_only.last_request.body is not None
    assert len(anthropic_only.last_request.body["messages"]) == 3


def test_without_opting_in_nothing_is_stored_and_a_conversation_of_nobody_is_not_found(
    stage: str, api: TestClient, user: User, key: str, anthropic_only: FakeAnthropic
) -> None:
    client = openai_client(stage, key)
    hello: Any = [{"role": "user", "content": "hi"}]

    raw = client.chat.completions.with_raw_response.create(model="stratus-auto", messages=hello)

    assert "x-stratus-conversation" not in raw.headers
    assert api.get("/api/v1/conversations", headers=user.auth).json()["items"] == []
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="stratus-auto", messages=hello, extra_headers={"X-Stratus-Conversation": "01JNOSUCHCONVERSATION00000"}
        )


def test_memories_opt_in_puts_the_callers_memories_in_the_prompt(
    stage: str, api: TestClient, user: User, key: str, anthropic_only: FakeAnthropic
) -> None:
    api.post("/api/v1/memories", headers=user.auth, json={"content": "Prefers metric units", "category": "preference"})
    client = openai_client(stage, key)
    ask: Any = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "How warm is it?"}]

    client.chat.completions.create(model="stratus-auto", messages=ask)
    assert anthropic_only.last_request.body is not None
    assert anthropic_only.last_request.body["system"] == "Be terse."

    client.chat.completions.create(model="stratus-auto", messages=ask, extra_headers={"X-Stratus-Memories": "on"})
    assert anthropic_only.last_request.body is not None
    system = anthropic_only.last_request.body["system"]
    assert system.startswith("Be terse.\n\n")
    assert "Prefers metric units" in system


# Anthropic clients -------------------------------------------------------------------------------------------


def test_anthropic_buffered_message_answered_by_openai_with_its_usage(
    stage: str, key: str, user: User, openai_only: FakeOpenAI
) -> None:
    openai_only.reply("Oslo is colder.", input_tokens=22, output_tokens=4)

    message = anthropic_client(stage, key).messages.create(
        model="gpt-5",
        max_tokens=300,
        system="Be terse.",
        stop_sequences=["END"],
        messages=[{"role": "user", "content": "Which is colder?"}],
    )

    assert [block.text for block in message.content if block.type == "text"] == ["Oslo is colder."]
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("end_turn", 22, 4)
    sent = openai_only.last_request.body
    assert sent is not None
    assert sent["messages"][0] == {"role": "system", "content": "Be terse."}
    assert (sent["model"], sent["max_completion_tokens"], sent["stop"]) == ("gpt-5", 300, ["END"])
    assert _usage_records(user.id) == [("anthropic", "gpt-5", 22, 4, _catalog_cost("gpt-5", 22, 4))]


def test_anthropic_stream_helper_assembles_the_same_message_as_the_buffered_reply(
    stage: str, key: str, openai_only: FakeOpenAI
) -> None:
    openai_only.reply("Light rain, then sun.", input_tokens=18, output_tokens=6)
    openai_only.reply("Light rain, then sun.", input_tokens=18, output_tokens=6)
    client = anthropic_client(stage, key)
    ask: Any = {"model": "gpt-5", "max_tokens": 100, "messages": [{"role": "user", "content": "Forecast?"}]}

    with client.messages.stream(**ask) as stream:
        texts = list(stream.text_stream)
        streamed = stream.get_final_message()
    buffered = client.messages.create(**ask)

    assert "".join(texts) == "Light rain, then sun."
    assert streamed.model_dump(exclude={"id"}) == buffered.model_dump(exclude={"id"})


def test_anthropic_tool_use_and_tool_result_round_trip(stage: str, key: str, openai_only: FakeOpenAI) -> None:
    openai_only.tool_call("get_weather", {"city": "Oslo"}, id="call_3", text="Let me check.")
    openai_only.reply("The tool said: {tool_result}")
    client = anthropic_client(stage, key)
    tools: Any = [{"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER}]
    question: Any = {"role": "user", "content": "Weather in Oslo?"}

    with client.messages.stream(model="gpt-5", max_tokens=100, tools=tools, messages=[question]) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert (call.id, call.name, call.input) == ("call_3", "get_weather", {"city": "Oslo"})

    answer = client.messages.create(
        model="gpt-5",
        max_tokens=100,
        tools=tools,
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_3", "content": "4°C"}]},
        ],
    )

    assert [block.text for block in answer.content if block.type == "text"] == ["The tool said: 4°C"]
    assert openai_only.last_request.body is not None
    assert openai_only.last_request.body["messages"][-1] == {"role": "tool", "tool_call_id": "call_3", "content": "4°C"}


def test_anthropic_errors_are_the_sdks_own_classes(
    stage: str, api: TestClient, user: User, key: str, openai_only: FakeOpenAI
) -> None:
    hello: Any = [{"role": "user", "content": "hi"}]
    client = anthropic_client(stage, key)

    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(stage, "sk-stratus-not-a-real-key").messages.create(
            model="gpt-5", max_tokens=5, messages=hello
        )
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-9-ultra", max_tokens=5, messages=hello)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="gpt-5", max_tokens=5, messages=[{"role": "assistant", "content": "I start"}])
    without_chat = anthropic_client(stage, api_key(api, user, ["mcp.use"]))
    with pytest.raises(anthropic.PermissionDeniedError):
        without_chat.messages.create(model="gpt-5", max_tokens=5, messages=hello)
    assert openai_only.requests == []


def test_a_limit_is_an_anthropic_rate_limit_error_with_retry_after(
    stage: str, key: str, openai_only: FakeOpenAI, limit_requests: Callable[[int], None]
) -> None:
    limit_requests(1)
    hello: Any = [{"role": "user", "content": "hi"}]
    client = anthropic_client(stage, key)

    client.messages.create(model="gpt-5", max_tokens=5, messages=hello)
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="gpt-5", max_tokens=5, messages=hello, stream=True)
    assert int(limited.value.response.headers["retry-after"]) > 0
    assert len(openai_only.requests) == 1


def test_a_stop_sequence_is_named_back_to_an_anthropic_client_streamed_and_buffered(
    stage: str, key: str, anthropic_only: FakeAnthropic
) -> None:
    anthropic_only.reply("Three steps. END and more")
    anthropic_only.reply("Three steps. END and more")
    client = anthropic_client(stage, key)
    ask: Any = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "stop_sequences": ["###", "END"],
        "messages": [{"role": "user", "content": "How many steps?"}],
    }

    message = client.messages.create(**ask)
    with client.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()

    for answer in (message, streamed):
        assert (answer.stop_reason, answer.stop_sequence) == ("stop_sequence", "END")
        assert [block.text for block in answer.content if block.type == "text"] == ["Three steps. "]
