"""The Anthropic Messages translation: requests to neutral terms (and refusals as Anthropic's 400), a reply's
events to stream events and messages the `anthropic` SDK's own types accept (its stream helper assembling the same
message as the buffered one), and Stratus errors as Anthropic's errors."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message as SdkMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from functions.chat.compat import anthropic_api
from functions.chat.compat.neutral import ReplyOutcome
from shared.errors import (
    BadRequest,
    DomainError,
    Forbidden,
    ProviderFailed,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from shared.llm.types import Message, ToolCall, ToolResult, ToolSpec, UseTool
from tests.fakes.replies import MESSAGE_ID, reply_events

STREAM_EVENT: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER_TOOL = {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}


def stream_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translator = anthropic_api.MessageEvents()
    return [out for event in events for out in translator.take(event)]


def buffered(events: list[dict[str, Any]]) -> dict[str, Any]:
    outcome = ReplyOutcome()
    for event in events:
        outcome.take(event)
    return anthropic_api.message(outcome)


def assembled(stream: list[dict[str, Any]]) -> dict[str, Any]:
    """The message the SDK's stream helper (`messages.stream(...).get_final_message()`) assembles."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in stream:
        snapshot = accumulate_event(
            event=STREAM_EVENT.validate_python(event), current_snapshot=snapshot, json_bufs=buffers
        )
    assert snapshot is not None
    return SdkMessage.model_validate(snapshot.model_dump()).model_dump()


def refusal(body: dict[str, Any]) -> BadRequest:
    with pytest.raises(BadRequest) as raised:
        anthropic_api.parse_request(body)
    return raised.value


# Requests --------------------------------------------------------------------------------------------------


def test_a_tool_round_trip_request_becomes_neutral_messages_system_and_options() -> None:
    request = anthropic_api.parse_request(
        {
            "model": "gpt-5",
            "max_tokens": 400,
            "system": [
                {"type": "text", "text": "Be terse."},
                {"type": "text", "text": "Metric units.", "cache_control": {"type": "ephemeral"}},
            ],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [{"type": "text", "text": "18°C"}],
                        },
                        {"type": "text", "text": "Warm?"},
                    ],
                },
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "stop_sequences": ["END", "###"],
            "temperature": 0.5,
            "stream": True,
            "metadata": {"user_id": "someone"},
        }
    )

    assert request.model_and_provider() == ("gpt-5", None)
    assert request.system == "Be terse.\n\nMetric units."
    assert request.messages == (
        Message("user", "Weather in Paris?"),
        Message("assistant", "Checking.", tool_calls=(ToolCall("toolu_1", "get_weather", {"city": "Paris"}),)),
        Message("user", "Warm?", tool_results=(ToolResult("toolu_1", "18°C"),)),
    )
    assert request.tools == (ToolSpec("get_weather", "Weather", WEATHER_SCHEMA),)
    assert (request.tool_choice, request.stop_sequences) == (UseTool("get_weather"), ("END", "###"))
    assert (request.max_tokens, request.temperature, request.stream) == (400, 0.5, True)


@pytest.mark.parametrize(
    ("choice", "neutral"), [({"type": "any"}, "required"), ({"type": "none"}, "none"), ({"type": "auto"}, "auto")]
)
def test_tool_choice_in_neutral_terms(choice: dict[str, Any], neutral: str) -> None:
    request = anthropic_api.parse_request(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": choice,
        }
    )

    assert request.tool_choice == neutral


@pytest.mark.parametrize(
    "change",
    [
        {"max_tokens": None},
        {
            "messages": [
                {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}
            ]
        },
        {"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Prefill"}]},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        {"tool_choice": {"type": "any"}},
        {"temperature": 1.5},
    ],
)
def test_unsupported_or_malformed_requests_are_anthropics_invalid_request_error(change: dict[str, Any]) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **change}
    if body["max_tokens"] is None:
        del body["max_tokens"]

    status, error, _ = anthropic_api.error_response(refusal(body))

    assert status == 400
    assert ErrorResponse.model_validate(error).error.type == "invalid_request_error"


# Replies ---------------------------------------------------------------------------------------------------


def test_every_streamed_event_is_one_the_sdk_parses_in_anthropics_order() -> None:
    stream = stream_of(reply_events("It is ", "warm.", tool_calls=(("toolu_a", "get_weather", {"city": "Oslo"}),)))

    for event in stream:
        STREAM_EVENT.validate_python(event)
    assert [event["type"] for event in stream] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [event.get("index") for event in stream[1:8]] == [0, 0, 0, 0, 1, 1, 1]
    assert stream[6]["delta"] == {"type": "input_json_delta", "partial_json": '{"city": "Oslo"}'}
    assert stream[0]["message"]["id"] == f"msg_{MESSAGE_ID}"


@pytest.mark.parametrize(
    "events",
    [
        reply_events("Hello ", "there.", input_tokens=31, output_tokens=4),
        reply_events(
            "Let me look.",
            tool_calls=(("toolu_a", "get_weather", {"city": "Oslo"}), ("toolu_b", "get_weather", {"city": "Rome"})),
        ),
        reply_events(tool_calls=(("toolu_a", "get_weather", {"city": "Oslo"}),)),
        reply_events("Stopped ", stop_reason="stop_sequence", stop_sequence="END"),
        reply_events("Cut", stop_reason="max_tokens"),
    ],
    ids=["text", "text-and-tools", "tool-only", "stop-sequence", "max-tokens"],
)
def test_the_sdk_stream_helper_assembles_the_buffered_message(events: list[dict[str, Any]]) -> None:
    whole = SdkMessage.model_validate(buffered(events)).model_dump()

    assert assembled(stream_of(events)) == whole


def test_the_buffered_message_carries_stop_reason_sequence_and_usage() -> None:
    message = SdkMessage.model_validate(
        buffered(
            reply_events("Stopped ", stop_reason="stop_sequence", stop_sequence="END", input_tokens=9, output_tokens=2)
        )
    )

    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 2)
    assert message.model == "claude-sonnet-4-6"


@pytest.mark.parametrize(
    ("stop_reason", "anthropic_reason"),
    [("cancelled", "end_turn"), ("max_tool_rounds", "end_turn"), ("guardrail_intervened", "refusal")],
)
def test_stratus_stop_reasons_become_ones_anthropics_clients_know(stop_reason: str, anthropic_reason: str) -> None:
    events = reply_events("x", stop_reason=stop_reason)

    assert buffered(events)["stop_reason"] == anthropic_reason
    assert stream_of(events)[-2]["delta"]["stop_reason"] == anthropic_reason


def test_a_provider_failure_mid_stream_ends_with_an_error_event() -> None:
    events = reply_events("Half a ", failure="The model provider failed mid-reply; the partial reply was kept")

    stream = stream_of(events)

    assert stream[-1] == {"type": "error", "error": {"type": "api_error", "message": events[-2]["message"]}}
    assert "message_stop" not in [event["type"] for event in stream]
    with pytest.raises(ProviderFailed):
        buffered(events)


# Errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (Unauthorized("Invalid credentials"), 401, "authentication_error"),
        (Forbidden("Missing permission ai.chat"), 403, "permission_error"),
        (ValidationFailed("unknown model 'claude-9'", code="model_unavailable"), 404, "not_found_error"),
        (
            RateLimited("Request limit reached", retry_after_seconds=3, limit="requests_per_minute"),
            429,
            "rate_limit_error",
        ),
        (ProviderFailed("The model provider failed"), 502, "api_error"),
    ],
)
def test_stratus_errors_take_anthropics_status_and_error_type(error: DomainError, status: int, kind: str) -> None:
    answered, body, headers = anthropic_api.error_response(error)

    parsed = ErrorResponse.model_validate(body)
    assert (answered, parsed.error.type, parsed.error.message) == (status, kind, error.message)
    assert headers == ({"Retry-After": "3"} if status == 429 else {})
