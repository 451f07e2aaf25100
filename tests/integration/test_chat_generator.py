"""The reply generator itself: a client that goes away stops its reply (what was produced is kept, marked
incomplete), and a tool runner plugged in answers the model's tool calls in a loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from functions.chat import reply
from functions.chat.models import ChatRequest
from functions.conversations import service as conversations
from functions.identity import service as identity
from shared.auth.verify import verify_credential
from shared.llm.types import ToolCall, ToolResult
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.tool_runner import ScriptedToolRunner


@pytest.mark.anyio
@pytest.mark.usefixtures("aws")
async def test_closing_the_stream_mid_reply_keeps_the_partial_reply(
    anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]
) -> None:
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    anthropic_fake.reply("one two three four five six seven eight", chunk_delay=0.2)
    principal = verify_credential(
        identity.register("leaver@example.com", "correct horse battery", None).body.access_token
    )

    prepared = await reply.prepare(principal, ChatRequest(message="count slowly"))
    events = reply.stream(prepared)
    received = []
    async for event in events:
        received.append(event)
        if sum(1 for e in received if e["type"] == "content") == 2:
            break
    await events.aclose()  # what Starlette does when the client disconnects

    history = conversations.list_messages(principal, prepared.conversation_id, limit=10, cursor=None).items
    assert [m.role for m in history] == ["user", "assistant"]
    kept = history[-1]
    assert kept.content == "one two "
    assert kept.metadata is not None
    assert kept.metadata["incomplete"] is True
    assert kept.metadata["stopReason"] == "client_disconnected"


@pytest.mark.anyio
@pytest.mark.usefixtures("aws")
async def test_a_tool_runner_answers_tool_calls_and_the_model_continues(
    anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]
) -> None:
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    anthropic_fake.tool_call("get_weather", {"city": "Oslo"}, id="call_7", text="Let me check. ")
    anthropic_fake.reply("It is 4 degrees in Oslo.")
    principal = verify_credential(
        identity.register("tools@example.com", "correct horse battery", None).body.access_token
    )
    asked: list[ToolCall] = []

    async def run_tools(calls: Sequence[ToolCall]) -> list[ToolResult]:
        asked.extend(calls)
        return [ToolResult(call.id, "4 degrees, cloudy") for call in calls]

    request = ChatRequest.model_validate(
        {"message": "Weather in Oslo?", "tools": [{"name": "get_weather", "description": "Current weather"}]}
    )
    prepared = await reply.prepare(principal, request, tool_runner=ScriptedToolRunner(run_tools))
    events = [event async for event in reply.stream(prepared)]

    assert [e["type"] for e in events if e["type"] not in ("content",)] == [
        "start",
        "tool_use",
        "tool_result",
        "usage",
        "end",
    ]
    assert asked == [ToolCall("call_7", "get_weather", {"city": "Oslo"})]
    assert "".join(e["delta"] for e in events if e["type"] == "content") == "Let me check. It is 4 degrees in Oslo."
    second_call = anthropic_fake.last_request.body
    assert second_call is not None
    assert "4 degrees, cloudy" in str(second_call["messages"])
    assert events[-1]["stopReason"] == "end_turn"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.usefixtures("aws")
async def test_the_users_message_is_kept_when_its_reply_never_streams(
    anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]
) -> None:
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    principal = verify_credential(
        identity.register("gone@example.com", "correct horse battery", None).body.access_token
    )

    prepared = await reply.prepare(principal, ChatRequest(message="anyone there?"))
    async with reply.streaming(prepared):
        pass  # a consumer gone before reading a single event

    history = conversations.list_messages(principal, prepared.conversation_id, limit=10, cursor=None).items
    assert [(m.role, m.content) for m in history] == [("user", "anyone there?")]
    assert anthropic_fake.requests == []
