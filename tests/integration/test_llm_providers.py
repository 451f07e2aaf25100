"""Each provider through its real SDK against a local fake speaking the provider's wire format: what is sent,
what streams back, and how every failure maps to a ProviderError."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from shared.llm.failover import AttemptStarted, Cooldowns, StreamInterrupted, stream_with_failover
from shared.llm.providers.anthropic import AnthropicProvider
from shared.llm.providers.bedrock import BedrockProvider
from shared.llm.providers.openai import OpenAIProvider
from shared.llm.registry import chain_for
from shared.llm.types import (
    Finished,
    Message,
    ModelRequest,
    Provider,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCall,
    ToolResult,
    ToolSpec,
    ToolUseRequested,
    UsageReport,
    UseTool,
)
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.bedrock import FakeBedrock, bedrock_client
from tests.fakes.openai_server import FakeOpenAI

WEATHER = ToolSpec(
    "get_weather", "The weather in a city", {"type": "object", "properties": {"city": {"type": "string"}}}
)
CONVERSATION = ModelRequest(
    model="claude-haiku-4-5",
    system="You are terse.",
    max_tokens=321,
    tools=(WEATHER,),
    messages=(
        Message("user", "Weather in Paris?"),
        Message("assistant", "Checking.", tool_calls=(ToolCall("call_1", "get_weather", {"city": "Paris"}),)),
        Message("user", "", tool_results=(ToolResult("call_1", "18°C and sunny"),)),
        Message("assistant", "It is 18°C and sunny."),
        Message("user", "And tomorrow?"),
    ),
)


def collect(provider: Provider, request: ModelRequest = CONVERSATION) -> list[ProviderEvent]:
    async def run() -> list[ProviderEvent]:
        return [event async for event in provider.stream(request)]

    return asyncio.run(run())


def failure(provider: Provider, request: ModelRequest = CONVERSATION) -> tuple[ProviderError, list[ProviderEvent]]:
    seen: list[ProviderEvent] = []

    async def run() -> None:
        async for event in provider.stream(request):
            seen.append(event)

    with pytest.raises(ProviderError) as raised:
        asyncio.run(run())
    return raised.value, seen


def text_of(events: list[Any]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def anthropic_provider(fake: FakeAnthropic, read_timeout: float = 5.0) -> AnthropicProvider:
    return AnthropicProvider(api_key="sk-ant-test", base_url=fake.base_url, read_timeout=read_timeout)


def openai_provider(fake: FakeOpenAI, name: str = "openai", read_timeout: float = 5.0) -> OpenAIProvider:
    return OpenAIProvider(name, api_key="sk-test", base_url=fake.base_url, read_timeout=read_timeout)


def bedrock_provider(fake: FakeBedrock) -> BedrockProvider:
    return BedrockProvider(client=fake.attach(bedrock_client()))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Anthropic ---------------------------------------------------------------------------------------------------


def test_anthropic_streams_text_and_reports_usage(anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.reply("Tomorrow looks rainy in Paris.", input_tokens=42, output_tokens=9, chunk_size=5)

    events = collect(anthropic_provider(anthropic_fake))

    assert text_of(events) == "Tomorrow looks rainy in Paris."
    assert len([event for event in events if isinstance(event, TextDelta)]) == 6
    assert events[-2:] == [UsageReport(42, 9), Finished("end_turn")]


def test_anthropic_reports_cached_tokens(anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.reply("ok", input_tokens=5, output_tokens=1, cache_read_tokens=1000, cache_write_tokens=200)

    events = collect(anthropic_provider(anthropic_fake))

    assert UsageReport(5, 1, 1000, 200) in events


def test_anthropic_sends_system_history_tools_and_max_tokens_in_its_format(anthropic_fake: FakeAnthropic) -> None:
    collect(anthropic_provider(anthropic_fake))

    sent = anthropic_fake.last_request
    assert sent.path == "/v1/messages"
    assert sent.headers["authorization"] == "Bearer sk-ant-test"
    assert sent.body is not None
    assert (sent.body["model"], sent.body["max_tokens"], sent.body["stream"]) == ("claude-haiku-4-5", 321, True)
    assert sent.body["system"] == "You are terse."
    assert sent.body["tools"] == [
        {"name": "get_weather", "description": WEATHER.description, "input_schema": WEATHER.input_schema}
    ]
    assert sent.body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18°C and sunny"}]},
        {"role": "assistant", "content": "It is 18°C and sunny."},
        {"role": "user", "content": "And tomorrow?"},
    ]


def test_anthropic_tool_call_is_parsed_from_streamed_json(anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.tool_call("get_weather", {"city": "Paris", "day": "tomorrow"}, id="toolu_1", text="Let me look.")

    events = collect(anthropic_provider(anthropic_fake))

    assert text_of(events) == "Let me look."
    assert ToolUseRequested(ToolCall("toolu_1", "get_weather", {"city": "Paris", "day": "tomorrow"})) in events
    assert events[-1] == Finished("tool_use")


def test_anthropic_sends_stop_sequences_and_tool_choice_and_reports_the_sequence_hit(
    anthropic_fake: FakeAnthropic,
) -> None:
    anthropic_fake.reply("Rain tomorrow. END of forecast.")
    request = replace(CONVERSATION, stop_sequences=("END", "###"), tool_choice=UseTool("get_weather"))

    events = collect(anthropic_provider(anthropic_fake), request)

    assert text_of(events) == "Rain tomorrow. "
    assert events[-1] == Finished("stop_sequence", "END")
    sent = anthropic_fake.last_request.body
    assert sent is not None
    assert (sent["stop_sequences"], sent["tool_choice"]) == (["END", "###"], {"type": "tool", "name": "get_weather"})


@pytest.mark.parametrize(
    ("choice", "sent"), [("none", {"type": "none"}), ("required", {"type": "any"}), ("auto", None)]
)
def test_anthropic_tool_choice_in_its_words(anthropic_fake: FakeAnthropic, choice: Any, sent: Any) -> None:
    collect(anthropic_provider(anthropic_fake), replace(CONVERSATION, tool_choice=choice))

    body = anthropic_fake.last_request.body
    assert body is not None
    assert body.get("tool_choice") == sent
    assert "stop_sequences" not in body


def replies_in_one_loop(provider: Provider, count: int) -> list[list[ProviderEvent]]:
    """`count` replies from one provider, one after another, as one container's event loop serves them."""

    async def run() -> list[list[ProviderEvent]]:
        return [[event async for event in provider.stream(CONVERSATION)] for _ in range(count)]

    return asyncio.run(run())


def test_anthropic_replies_reuse_one_connection(anthropic_fake: FakeAnthropic) -> None:
    # A new connection per reply is a new TLS handshake before every first token.
    replies = replies_in_one_loop(anthropic_provider(anthropic_fake), 3)

    assert all(reply[-1] == Finished("end_turn") for reply in replies)
    assert len({request.client for request in anthropic_fake.requests}) == 1


@pytest.mark.parametrize("sdk", ["anthropic", "openai"])
def test_a_client_outliving_its_event_loop_is_let_go_without_a_task_on_the_next_loop(
    sdk: str, anthropic_fake: FakeAnthropic, openai_fake: FakeOpenAI
) -> None:
    # The SDKs' own HTTP client, collected later, would close its closed loop's sockets from the running loop.
    provider: list[Provider] = [
        anthropic_provider(anthropic_fake) if sdk == "anthropic" else openai_provider(openai_fake)
    ]
    failures: list[dict[str, Any]] = []

    def watch_the_loop() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: failures.append(context))

    async def reply() -> None:
        watch_the_loop()
        async for _ in provider[0].stream(CONVERSATION):
            pass

    async def collect_garbage() -> None:
        watch_the_loop()
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0)

    gc.collect()
    asyncio.run(reply())
    asyncio.run(reply())
    provider.clear()
    asyncio.run(collect_garbage())

    assert failures == []


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(529, True), (500, True), (429, True), (400, False), (401, False), (403, False), (404, False)],
)
def test_anthropic_error_statuses_map_to_retryable_or_not(
    anthropic_fake: FakeAnthropic, status: int, retryable: bool
) -> None:
    anthropic_fake.fail(status)

    error, _ = failure(anthropic_provider(anthropic_fake))

    assert (error.provider, error.status, error.retryable) == ("anthropic", status, retryable)
    assert len(anthropic_fake.requests) == 1  # the SDK's own retries are off


def test_anthropic_retry_after_headers_are_parsed(anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.fail(429, retry_after=7).fail(529, retry_after_ms=250)
    provider = anthropic_provider(anthropic_fake)

    assert failure(provider)[0].retry_after == 7
    assert failure(provider)[0].retry_after == 0.25


def test_anthropic_timeout_is_retryable(anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.hang(10)

    error, _ = failure(anthropic_provider(anthropic_fake, read_timeout=0.3))

    assert error.retryable
    assert "timed out" in str(error)


def test_anthropic_connection_refused_is_retryable() -> None:
    provider = AnthropicProvider(api_key="k", base_url=f"http://127.0.0.1:{closed_port()}")

    error, _ = failure(provider)

    assert error.retryable
    assert error.status is None


@pytest.mark.parametrize("drop", [False, True])
def test_anthropic_failure_mid_stream_comes_after_the_partial_deltas(anthropic_fake: FakeAnthropic, drop: bool) -> None:
    anthropic_fake.fail_mid_stream(3, drop=drop)

    error, seen = failure(anthropic_provider(anthropic_fake))

    assert text_of(seen) == "This reply will "
    assert error.retryable


def test_anthropic_check_lists_models(anthropic_fake: FakeAnthropic) -> None:
    provider = anthropic_provider(anthropic_fake)
    asyncio.run(provider.check())
    assert anthropic_fake.last_request.path == "/v1/models"

    anthropic_fake.fail(401)
    with pytest.raises(ProviderError) as raised:
        asyncio.run(provider.check())
    assert not raised.value.retryable


# OpenAI and compatible endpoints -----------------------------------------------------------------------------


def test_openai_streams_text_and_reports_usage_with_cached_tokens_apart(openai_fake: FakeOpenAI) -> None:
    openai_fake.reply("Rain tomorrow.", input_tokens=30, output_tokens=4, cache_read_tokens=12)

    events = collect(openai_provider(openai_fake), CONVERSATION)

    assert text_of(events) == "Rain tomorrow."
    # The fake reports prompt_tokens = 42 including 12 cached: billed apart at the cache price.
    assert events[-2:] == [UsageReport(30, 4, 12), Finished("end_turn")]


def test_openai_sends_system_history_tools_and_max_tokens_in_its_format(openai_fake: FakeOpenAI) -> None:
    collect(openai_provider(openai_fake), CONVERSATION)

    sent = openai_fake.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body is not None
    assert sent.body["max_completion_tokens"] == 321
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["tools"][0]["function"]["name"] == "get_weather"
    assert sent.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C and sunny"},
        {"role": "assistant", "content": "It is 18°C and sunny."},
        {"role": "user", "content": "And tomorrow?"},
    ]


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("none", "none"),
        ("required", "required"),
        (UseTool("get_weather"), {"type": "function", "function": {"name": "get_weather"}}),
        ("auto", None),
    ],
)
def test_openai_sends_stop_and_tool_choice_in_its_words(openai_fake: FakeOpenAI, choice: Any, sent: Any) -> None:
    openai_fake.reply("Rain tomorrow. END of forecast.")
    request = replace(CONVERSATION, stop_sequences=("END",), tool_choice=choice)

    events = collect(openai_provider(openai_fake), request)

    # Chat Completions reports a stop sequence as a plain "stop": it reads as the end of the turn.
    assert (text_of(events), events[-1]) == ("Rain tomorrow. ", Finished("end_turn"))
    body = openai_fake.last_request.body
    assert body is not None
    assert (body["stop"], body.get("tool_choice")) == (["END"], sent)


def test_compatible_endpoint_is_served_under_its_own_name_with_max_tokens(openai_fake: FakeOpenAI) -> None:
    openai_fake.fail(503)
    error, _ = failure(openai_provider(openai_fake, name="ollama"))
    assert error.provider == "ollama"

    collect(openai_provider(openai_fake, name="ollama"))
    assert openai_fake.last_request.body is not None
    assert openai_fake.last_request.body["max_tokens"] == 321


def test_openai_replies_reuse_one_connection(openai_fake: FakeOpenAI) -> None:
    replies = replies_in_one_loop(openai_provider(openai_fake), 3)

    assert all(isinstance(reply[-1], Finished) for reply in replies)
    assert len({request.client for request in openai_fake.requests}) == 1


def test_openai_tool_call_deltas_assemble(openai_fake: FakeOpenAI) -> None:
    openai_fake.tool_call("get_weather", {"city": "Paris", "day": "tomorrow"}, id="call_9")

    events = collect(openai_provider(openai_fake))

    assert ToolUseRequested(ToolCall("call_9", "get_weather", {"city": "Paris", "day": "tomorrow"})) in events
    assert events[-1] == Finished("tool_use")


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (401, False)])
def test_openai_error_statuses_map_to_retryable_or_not(openai_fake: FakeOpenAI, status: int, retryable: bool) -> None:
    openai_fake.fail(status, retry_after=1)

    error, _ = failure(openai_provider(openai_fake))

    assert (error.status, error.retryable, error.retry_after) == (status, retryable, 1)
    assert len(openai_fake.requests) == 1


def test_openai_timeout_and_refused_connection_are_retryable(openai_fake: FakeOpenAI) -> None:
    openai_fake.hang(10)
    assert failure(openai_provider(openai_fake, read_timeout=0.3))[0].retryable

    refused = OpenAIProvider(api_key="k", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    assert failure(refused)[0].retryable


@pytest.mark.parametrize("drop", [False, True])
def test_openai_failure_mid_stream_comes_after_the_partial_deltas(openai_fake: FakeOpenAI, drop: bool) -> None:
    openai_fake.fail_mid_stream(2, drop=drop)

    error, seen = failure(openai_provider(openai_fake))

    assert text_of(seen) == "This reply "
    assert error.retryable


def test_openai_check_lists_models(openai_fake: FakeOpenAI) -> None:
    asyncio.run(openai_provider(openai_fake).check())

    assert openai_fake.last_request.path == "/v1/models"


# Bedrock -----------------------------------------------------------------------------------------------------


def test_bedrock_streams_text_usage_and_tool_calls(bedrock_fake: FakeBedrock) -> None:
    bedrock_fake.reply("Cloudy.", input_tokens=50, output_tokens=3, cache_read_tokens=7)
    bedrock_fake.tool_call("get_weather", {"city": "Oslo"}, id="tooluse_1")
    provider = bedrock_provider(bedrock_fake)

    events = collect(provider)
    assert text_of(events) == "Cloudy."
    assert events[-2:] == [UsageReport(50, 3, 7), Finished("end_turn")]

    events = collect(provider)
    assert ToolUseRequested(ToolCall("tooluse_1", "get_weather", {"city": "Oslo"})) in events
    assert events[-1] == Finished("tool_use")


def test_bedrock_sends_the_converse_format(bedrock_fake: FakeBedrock) -> None:
    collect(bedrock_provider(bedrock_fake), CONVERSATION)

    sent = bedrock_fake.last_request
    assert sent.path.endswith("/model/claude-haiku-4-5/converse-stream")
    assert sent.body is not None
    assert sent.body["system"] == [{"text": "You are terse."}]
    assert sent.body["inferenceConfig"] == {"maxTokens": 321}
    assert sent.body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": WEATHER.input_schema}
    assert sent.body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
        ],
    }
    assert sent.body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18°C and sunny"}], "status": "success"}}
    ]


def test_bedrock_sends_stop_sequences_and_reports_a_stop_on_one(bedrock_fake: FakeBedrock) -> None:
    bedrock_fake.reply("Rain tomorrow. END of forecast.")

    events = collect(bedrock_provider(bedrock_fake), replace(CONVERSATION, stop_sequences=("END",)))

    assert (text_of(events), events[-1]) == ("Rain tomorrow. ", Finished("stop_sequence"))
    assert bedrock_fake.last_request.body is not None
    assert bedrock_fake.last_request.body["inferenceConfig"] == {"maxTokens": 321, "stopSequences": ["END"]}


@pytest.mark.parametrize(
    ("choice", "sent"),
    [("auto", None), ("required", {"any": {}}), (UseTool("get_weather"), {"tool": {"name": "get_weather"}})],
)
def test_bedrock_tool_choice_in_converse_words(bedrock_fake: FakeBedrock, choice: Any, sent: Any) -> None:
    collect(bedrock_provider(bedrock_fake), replace(CONVERSATION, tool_choice=choice))

    assert bedrock_fake.last_request.body is not None
    assert bedrock_fake.last_request.body["toolConfig"].get("toolChoice") == sent


def test_bedrock_tool_choice_none_leaves_the_tools_out_unless_the_history_calls_them(bedrock_fake: FakeBedrock) -> None:
    provider = bedrock_provider(bedrock_fake)
    first_turn = replace(CONVERSATION, messages=CONVERSATION.messages[:1], tool_choice="none")

    collect(provider, first_turn)
    assert bedrock_fake.last_request.body is not None
    assert "toolConfig" not in bedrock_fake.last_request.body

    # The history holds a tool call and its result: Converse refuses those without the tools.
    collect(provider, replace(CONVERSATION, tool_choice="none"))
    assert bedrock_fake.last_request.body is not None
    assert "toolChoice" not in bedrock_fake.last_request.body["toolConfig"]


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (403, False)])
def test_bedrock_errors_map_to_retryable_or_not(bedrock_fake: FakeBedrock, status: int, retryable: bool) -> None:
    bedrock_fake.fail(status)

    error, _ = failure(bedrock_provider(bedrock_fake))

    assert (error.status, error.retryable) == (status, retryable)
    assert len(bedrock_fake.requests) == 1  # botocore's retries are off


def test_bedrock_timeout_is_retryable(bedrock_fake: FakeBedrock) -> None:
    bedrock_fake.hang(1)

    assert failure(bedrock_provider(bedrock_fake))[0].retryable


@pytest.mark.parametrize("drop", [False, True])
def test_bedrock_failure_mid_stream_comes_after_the_partial_deltas(bedrock_fake: FakeBedrock, drop: bool) -> None:
    bedrock_fake.fail_mid_stream(2, drop=drop)

    error, seen = failure(bedrock_provider(bedrock_fake))

    assert text_of(seen) == "This reply "
    assert error.retryable


def test_bedrock_hands_over_events_as_they_arrive(bedrock_fake: FakeBedrock) -> None:
    bedrock_fake.reply("one two three four", chunk_delay=0.2)
    provider = bedrock_provider(bedrock_fake)

    async def first_delta_latency() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async for event in provider.stream(CONVERSATION):
            if isinstance(event, TextDelta):
                return loop.time() - started
        raise AssertionError("no text")

    # The whole stream takes 0.8 s; the first word must not wait for it.
    assert asyncio.run(first_delta_latency()) < 0.6


# Failover through the registry, end to end ---------------------------------------------------------------------


Configure = Callable[..., None]


def failover(model: str | None = None) -> list[ProviderEvent | AttemptStarted]:
    async def run() -> list[ProviderEvent | AttemptStarted]:
        attempts = chain_for(model, None)
        stream = stream_with_failover(CONVERSATION, attempts, cooldowns=Cooldowns(), max_retry_wait=0)
        return [event async for event in stream]

    return asyncio.run(run())


@pytest.mark.parametrize("break_primary", ["529", "500", "timeout"])
def test_primary_failure_fails_over_to_the_secondary(
    llm_environment: Configure, anthropic_fake: FakeAnthropic, openai_fake: FakeOpenAI, break_primary: str
) -> None:
    llm_environment(
        ANTHROPIC_API_KEY="a",
        ANTHROPIC_BASE_URL=anthropic_fake.base_url,
        OPENAI_API_KEY="o",
        OPENAI_BASE_URL=openai_fake.base_url,
        PROVIDER_READ_TIMEOUT_SECONDS="0.3",
    )
    if break_primary == "timeout":
        anthropic_fake.hang(10)
    else:
        anthropic_fake.fail(int(break_primary))
    openai_fake.reply("Served by the secondary.")

    events = failover("claude-haiku-4-5")

    attempts = [event for event in events if isinstance(event, AttemptStarted)]
    assert attempts == [AttemptStarted("anthropic", "claude-haiku-4-5"), AttemptStarted("openai", "gpt-5")]
    assert text_of(events) == "Served by the secondary."
    assert openai_fake.last_request.body is not None
    assert openai_fake.last_request.body["model"] == "gpt-5"


def test_non_retryable_primary_failure_does_not_fail_over(
    llm_environment: Configure, anthropic_fake: FakeAnthropic, openai_fake: FakeOpenAI
) -> None:
    llm_environment(
        ANTHROPIC_API_KEY="a",
        ANTHROPIC_BASE_URL=anthropic_fake.base_url,
        OPENAI_API_KEY="o",
        OPENAI_BASE_URL=openai_fake.base_url,
    )
    anthropic_fake.fail(401)

    with pytest.raises(ProviderError) as raised:
        failover()

    assert raised.value.status == 401
    assert openai_fake.requests == []


def test_mid_stream_failure_does_not_fail_over(
    llm_environment: Configure, anthropic_fake: FakeAnthropic, openai_fake: FakeOpenAI
) -> None:
    llm_environment(
        ANTHROPIC_API_KEY="a",
        ANTHROPIC_BASE_URL=anthropic_fake.base_url,
        OPENAI_API_KEY="o",
        OPENAI_BASE_URL=openai_fake.base_url,
    )
    anthropic_fake.fail_mid_stream(2)

    with pytest.raises(StreamInterrupted) as raised:
        failover()

    assert raised.value.partial_text == "This reply "
    assert openai_fake.requests == []


@pytest.mark.parametrize("kind", ["anthropic", "openai", "bedrock"])
def test_a_scripted_reply_can_use_the_last_tool_result_it_was_sent(
    kind: str, anthropic_fake: FakeAnthropic, openai_fake: FakeOpenAI, bedrock_fake: FakeBedrock
) -> None:
    fake, provider = {
        "anthropic": (anthropic_fake, lambda: anthropic_provider(anthropic_fake)),
        "openai": (openai_fake, lambda: openai_provider(openai_fake)),
        "bedrock": (bedrock_fake, lambda: bedrock_provider(bedrock_fake)),
    }[kind]
    fake.reply("The tool said: {tool_result}")
    fake.reply("Still: {tool_result}")
    later = ModelRequest(
        model="claude-haiku-4-5",
        tools=(WEATHER,),
        messages=(
            *CONVERSATION.messages,
            Message("assistant", "", tool_calls=(ToolCall("call_2", "get_weather", {"city": "Oslo"}),)),
            Message("user", "", tool_results=(ToolResult("call_2", "4°C and cloudy"),)),
        ),
    )
    assert text_of(collect(provider(), later)) == "The tool said: 4°C and cloudy"
    no_tools = ModelRequest(model="claude-haiku-4-5", messages=(Message("user", "hi"),))
    assert text_of(collect(provider(), no_tools)) == "Still: [no tool result]"
