"""The OpenAI Chat Completions translation: requests to neutral terms (and refusals as OpenAI's 400), a reply's
events to chunks and completions the `openai` SDK's own types accept, and Stratus errors as OpenAI's errors."""

from __future__ import annotations

from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.shared import ErrorObject

from functions.chat.compat import openai_api
from functions.chat.compat.neutral import ReplyOutcome
from shared.errors import (
    BadRequest,
    DomainError,
    Forbidden,
    NotFound,
    ProviderFailed,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from shared.llm.types import Message, ToolCall, ToolResult, ToolSpec, UseTool
from tests.fakes.replies import MESSAGE_ID, reply_events

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_SCHEMA},
}


def chunks_of(events: list[dict[str, Any]], include_usage: bool = False) -> list[dict[str, Any]]:
    translator = openai_api.CompletionChunks(include_usage=include_usage, created=1_700_000_000)
    return [chunk for event in events for chunk in translator.take(event)]


def buffered(events: list[dict[str, Any]]) -> dict[str, Any]:
    outcome = ReplyOutcome()
    for event in events:
        outcome.take(event)
    return openai_api.completion(outcome, created=1_700_000_000)


def accumulated(chunks: list[dict[str, Any]]) -> ChatCompletion:
    """The completion the SDK's own stream helper assembles from the chunks."""
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for chunk in chunks:
        list(state.handle_chunk(ChatCompletionChunk.model_validate(chunk)))
    return state.get_final_completion()


def refusal(body: dict[str, Any]) -> BadRequest:
    with pytest.raises(BadRequest) as raised:
        openai_api.parse_request(body)
    return raised.value


# Requests --------------------------------------------------------------------------------------------------


def test_a_tool_round_trip_request_becomes_neutral_messages_system_and_options() -> None:
    request = openai_api.parse_request(
        {
            "model": "anthropic/claude-sonnet-4-6",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
                {"role": "user", "content": "Weather in Paris and Oslo?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "4°C"}]},
                {"role": "user", "content": "Which is warmer?"},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "stop": "END",
            "temperature": 0.2,
            "max_tokens": 50,
            "max_completion_tokens": 300,
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "someone",
            "seed": 7,
        }
    )

    assert request.model_and_provider() == ("claude-sonnet-4-6", "anthropic")
    assert request.system == "Be terse.\n\nUse metric units."
    assert request.messages == (
        Message("user", "Weather in Paris and Oslo?"),
        Message(
            "assistant",
            "",
            tool_calls=(
                ToolCall("call_1", "get_weather", {"city": "Paris"}),
                ToolCall("call_2", "get_weather", {"city": "Oslo"}),
            ),
        ),
        Message("user", "Which is warmer?", tool_results=(ToolResult("call_1", "18°C"), ToolResult("call_2", "4°C"))),
    )
    assert request.tools == (ToolSpec("get_weather", "Weather", WEATHER_SCHEMA),)
    assert request.tool_choice == UseTool("get_weather")
    # max_completion_tokens is the newer name and wins over max_tokens.
    assert (request.max_tokens, request.temperature, request.stop_sequences) == (300, 0.2, ("END",))
    assert (request.stream, request.include_usage) == (True, True)


@pytest.mark.parametrize(
    ("model", "asked"),
    [("stratus-auto", (None, None)), ("gpt-5", ("gpt-5", None)), ("openai/gpt-5-mini", ("gpt-5-mini", "openai"))],
)
def test_model_names_are_catalog_ids_provider_slash_model_or_the_callers_default(
    model: str, asked: tuple[str | None, str | None]
) -> None:
    request = openai_api.parse_request({"model": model, "messages": [{"role": "user", "content": "hi"}]})

    assert request.model_and_provider() == asked
    assert (request.max_tokens, request.tool_choice, request.stream) == (None, "auto", False)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"temperature": 3}, "temperature"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
        ({"messages": []}, "messages"),
        ({"model": ""}, "model"),
    ],
)
def test_unsupported_or_malformed_options_are_a_bad_request_naming_the_field(
    change: dict[str, Any], param: str
) -> None:
    error = refusal({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}], **change})

    status, body, _ = openai_api.error_response(error)
    assert status == 400
    assert ErrorObject.model_validate(body["error"]).param == param
    assert body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "wizard", "content": "hi"}], "messages[0]"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}],
            "messages[0]",
        ),
        ([{"role": "user"}], "messages[0]"),
        ([{"role": "assistant", "content": "I start."}, {"role": "user", "content": "hi"}], "messages"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Prefill"}], "messages"),
        (
            [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_9", "content": "?"}],
            "messages[1]",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "x"},
            ],
            "messages[1]",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "user", "content": "never mind"},
            ],
            "messages[2]",
        ),
    ],
)
def test_a_malformed_message_list_is_a_bad_request_naming_the_message(messages: list[Any], param: str) -> None:
    error = refusal({"model": "gpt-5", "messages": messages})

    assert openai_api.error_response(error)[1]["error"]["param"] == param


# Replies ---------------------------------------------------------------------------------------------------


def test_a_streamed_text_reply_is_role_then_deltas_then_finish_then_usage_all_valid_chunks() -> None:
    events = reply_events("It is ", "warmer in ", "Paris.", input_tokens=40, output_tokens=6)

    chunks = chunks_of(events, include_usage=True)

    parsed = [ChatCompletionChunk.model_validate(chunk) for chunk in chunks]
    assert parsed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in parsed if c.choices) == "It is warmer in Paris."
    assert [c.choices[0].finish_reason for c in parsed if c.choices][-1] == "stop"
    assert parsed[-1].choices == []
    assert parsed[-1].usage is not None
    assert (parsed[-1].usage.prompt_tokens, parsed[-1].usage.completion_tokens, parsed[-1].usage.total_tokens) == (
        40,
        6,
        46,
    )
    assert {c.id for c in parsed} == {f"chatcmpl-{MESSAGE_ID}"}
    assert {c.model for c in parsed} == {"claude-sonnet-4-6"}


def test_without_include_usage_no_usage_chunk_is_sent() -> None:
    chunks = chunks_of(reply_events("Hi."))

    assert all(chunk["choices"] for chunk in chunks)
    assert "usage" not in chunks[-1]


def test_the_sdk_assembles_the_stream_into_the_buffered_completion() -> None:
    events = reply_events(
        "Checking both.",
        tool_calls=(("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_weather", {"city": "Oslo"})),
    )

    final = accumulated(chunks_of(events, include_usage=True))
    whole = ChatCompletion.model_validate(buffered(events))

    assert final.choices[0].finish_reason == whole.choices[0].finish_reason == "tool_calls"
    assert final.choices[0].message.content == whole.choices[0].message.content == "Checking both."
    streamed_calls = [(c.id, c.function.name, c.function.arguments) for c in final.choices[0].message.tool_calls or []]  # type: ignore[union-attr]
    buffered_calls = [(c.id, c.function.name, c.function.arguments) for c in whole.choices[0].message.tool_calls or []]  # type: ignore[union-attr]
    assert (
        streamed_calls
        == buffered_calls
        == [
            ("call_a", "get_weather", '{"city": "Paris"}'),
            ("call_b", "get_weather", '{"city": "Oslo"}'),
        ]
    )
    assert final.usage == whole.usage
    assert (final.id, final.model) == (whole.id, whole.model)


def test_tool_call_deltas_carry_index_id_name_and_arguments() -> None:
    events = reply_events(tool_calls=(("call_a", "f", {}), ("call_b", "g", {"x": 1})))

    calls = [
        chunk["choices"][0]["delta"]["tool_calls"][0]
        for chunk in chunks_of(events)
        if "tool_calls" in chunk["choices"][0]["delta"]
    ]

    assert [(c["index"], c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (0, "call_a", "f", "{}"),
        (1, "call_b", "g", '{"x": 1}'),
    ]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("cancelled", "stop"),
        ("guardrail_intervened", "content_filter"),
    ],
)
def test_stop_reasons_become_finish_reasons(stop_reason: str, finish: str) -> None:
    events = reply_events("Cut", stop_reason=stop_reason)

    assert ChatCompletionChunk.model_validate(chunks_of(events)[-1]).choices[0].finish_reason == finish
    assert ChatCompletion.model_validate(buffered(events)).choices[0].finish_reason == finish


def test_a_provider_failure_mid_stream_ends_the_chunks_with_an_error_object() -> None:
    events = reply_events("Half a ", failure="The model provider failed mid-reply; the partial reply was kept")

    chunks = chunks_of(events, include_usage=True)

    assert [chunk["choices"][0]["delta"].get("content") for chunk in chunks[:-1]] == ["", "Half a "]
    error = ErrorObject.model_validate(chunks[-1]["error"])
    assert (error.type, error.code) == ("api_error", "provider_error")
    with pytest.raises(ProviderFailed):
        buffered(events)


# Errors and models -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "kind", "code"),
    [
        (Unauthorized("Invalid credentials"), 401, "authentication_error", "invalid_api_key"),
        (Forbidden("Missing permission ai.chat"), 403, "permission_error", "forbidden"),
        (
            ValidationFailed("unknown model 'gpt-9'", code="model_unavailable"),
            404,
            "invalid_request_error",
            "model_not_found",
        ),
        (NotFound("Conversation not found"), 404, "invalid_request_error", "not_found"),
        (ValidationFailed("bad field"), 400, "invalid_request_error", "validation_error"),
        (ProviderFailed("The model provider failed"), 502, "api_error", "provider_error"),
    ],
)
def test_stratus_errors_take_openais_status_and_error_shape(
    error: DomainError, status: int, kind: str, code: str
) -> None:
    answered, body, headers = openai_api.error_response(error)

    parsed = ErrorObject.model_validate(body["error"])
    assert (answered, parsed.type, parsed.code, parsed.message) == (status, kind, code, error.message)
    assert headers == {}


def test_a_limit_is_a_429_rate_limit_error_with_retry_after() -> None:
    status, body, headers = openai_api.error_response(
        RateLimited("Request limit reached", retry_after_seconds=12, limit="requests_per_minute")
    )

    assert (status, body["error"]["type"], body["error"]["code"]) == (429, "rate_limit_error", "rate_limit_exceeded")
    assert headers == {"Retry-After": "12"}


def test_the_model_list_is_openais_list_with_the_callers_default_first() -> None:
    listed = openai_api.model_list([("claude-sonnet-4-6", "anthropic"), ("gpt-5", "openai")])

    assert listed["object"] == "list"
    models = [Model.model_validate(model) for model in listed["data"]]
    assert [(m.id, m.owned_by) for m in models] == [
        ("stratus-auto", "stratus"),
        ("claude-sonnet-4-6", "anthropic"),
        ("gpt-5", "openai"),
    ]
