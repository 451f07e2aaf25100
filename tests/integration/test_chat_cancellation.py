"""A reply's consumer cancelled at each stage of the reply generator (a client gone, as Starlette or the WebSocket
worker sees it): once the cancelled consumer has ended, the conversation holds the user's message and the reply
produced so far, marked incomplete, and its usage is counted once; nothing is left to a later moment."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from functions.chat import limits, reply
from functions.chat.models import ChatRequest
from functions.conversations import service as conversations
from functions.identity import service as identity
from functions.usage import service as usage
from shared.auth.principal import Principal
from shared.auth.verify import verify_credential
from shared.llm.providers import estimate_tokens
from shared.llm.types import ToolCall, ToolResult
from shared.settings import get_settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.tool_runner import ScriptedToolRunner

WORDS = "one two three four five six seven eight"
# A bound on waiting for a stage, so that a broken generator fails the test instead of hanging it. Generous: the
# first reply of a test process imports the provider's SDK on the event loop's thread (seconds on a busy machine).
WAIT_SECONDS = 60
Event = dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def principal(aws: None) -> Principal:
    return verify_credential(identity.register("cut@example.com", "correct horse battery", None).body.access_token)


@pytest.fixture
def slow_model(anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]) -> FakeAnthropic:
    """A model that sends a word every 0.2 s: a consumer cancelled between words is cancelled mid-reply."""
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    anthropic_fake.reply(WORDS, chunk_delay=0.2)
    return anthropic_fake


@dataclass(frozen=True)
class Stage:
    """Where the consumer is when it is cancelled: `reached` says, from the events so far, that it is there; then
    it either waits (busy sending: the generator is held at a `yield`) or reads on (the generator is waiting for
    the model)."""

    reached: Callable[[list[Event]], bool]
    reads_on: bool
    stored: str | None  # the reply stored, None for none
    incomplete: bool = True


def contents(events: list[Event]) -> int:
    return sum(1 for event in events if event["type"] == "content")


def last_kind(events: list[Event]) -> str | None:
    return events[-1]["type"] if events else None


STAGES = {
    "before the model's first word": Stage(lambda events: True, reads_on=True, stored=None),
    "holding the start event": Stage(lambda events: [e["type"] for e in events] == ["start"], False, "one "),
    "holding the third word": Stage(lambda events: contents(events) == 3, False, "one two three "),
    "waiting for the fourth word": Stage(lambda events: contents(events) == 3, True, "one two three "),
    "holding the usage event": Stage(lambda events: last_kind(events) == "usage", False, WORDS, incomplete=False),
}


class Consumer:
    """A consumer of a reply in a task of its own, cancelled the `how` way: `task.cancel()`, or the cancel scope it
    runs in (what Starlette's response does when the client disconnects)."""

    def __init__(self, consume: Callable[[], Awaitable[None]], how: str) -> None:
        self.how = how
        self.scope = anyio.CancelScope()
        self.task = asyncio.ensure_future(self._run(consume))

    async def _run(self, consume: Callable[[], Awaitable[None]]) -> None:
        with self.scope:
            await consume()

    async def cancel_once(self, reached: anyio.Event) -> None:
        """Cancel the consumer once `reached` is set (failing with what broke the consumer, if it ends first)."""
        waiting = asyncio.ensure_future(reached.wait())
        try:
            with anyio.fail_after(WAIT_SECONDS):
                await asyncio.wait([waiting, self.task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if self.task.done():
            self.task.result()
            raise AssertionError("the consumer ended before it was cancelled")
        self.cancel()

    def cancel(self) -> None:
        if self.how == "task.cancel()":
            self.task.cancel()
        else:
            self.scope.cancel()

    async def ended(self) -> None:
        """Wait for the consumer to end, as it ends when cancelled."""
        if self.how == "task.cancel()":
            with pytest.raises(asyncio.CancelledError):
                await self.task
        else:
            await self.task  # a cancel scope ends its block quietly


def spent_tokens(principal: Principal) -> int:
    return get_settings().chat_tokens_per_window - int(str(limits.remaining(principal.user_id)["tokens"]))


def usage_records(principal: Principal) -> int:
    return usage.usage_stats(principal.user_id, 1).totals.requests


def history(principal: Principal, conversation_id: str) -> list[Any]:
    return conversations.list_messages(principal, conversation_id, limit=10, cursor=None).items


HOW = ["task.cancel()", "its cancel scope"]


@pytest.mark.anyio
@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("stage_name", list(STAGES))
@pytest.mark.usefixtures("slow_model")
async def test_a_consumer_cancelled_at_any_stage_leaves_the_message_and_the_reply_so_far(
    principal: Principal, stage_name: str, how: str
) -> None:
    stage = STAGES[stage_name]
    prepared = await reply.prepare(principal, ChatRequest(message="count slowly"))
    received: list[Event] = []

    reached = anyio.Event()

    async def consume() -> None:
        async with reply.streaming(prepared) as events:
            if stage.reached(received):
                reached.set()
            async for event in events:
                received.append(event)
                if stage.reached(received):
                    reached.set()
                    if not stage.reads_on:
                        await anyio.sleep_forever()

    consumer = Consumer(consume, how)
    await consumer.cancel_once(reached)
    await consumer.ended()

    # Read at once: the cancelled consumer ended only after the writes did.
    messages = history(principal, prepared.conversation_id)
    assert (messages[0].role, messages[0].content) == ("user", "count slowly")
    if stage.stored is None:
        assert len(messages) == 1
        assert spent_tokens(principal) == 0  # the model produced nothing: nothing counts
    else:
        assert [m.role for m in messages] == ["user", "assistant"]
        kept = messages[1]
        assert kept.id == prepared.message_id
        assert kept.content == stage.stored
        assert kept.metadata is not None
        assert kept.metadata["incomplete"] is stage.incomplete
        assert kept.metadata["stopReason"] == ("client_disconnected" if stage.incomplete else "end_turn")
        # A reply cut off before the model reported its usage counts an estimate of what it produced.
        expected_output = estimate_tokens(stage.stored) if stage.incomplete else -(-len(WORDS) // 4)
        assert kept.metadata["outputTokens"] == expected_output
        assert spent_tokens(principal) == kept.metadata["inputTokens"] + expected_output > expected_output
    assert usage_records(principal) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("how", HOW)
@pytest.mark.usefixtures("aws")
async def test_a_consumer_cancelled_while_a_tool_runs_keeps_the_text_before_the_call(
    principal: Principal, anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None], how: str
) -> None:
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    anthropic_fake.tool_call("get_weather", {"city": "Oslo"}, text="Let me check. ", input_tokens=20, output_tokens=12)
    running = anyio.Event()

    async def run_tools(calls: Sequence[ToolCall]) -> list[ToolResult]:
        running.set()
        await anyio.sleep_forever()
        raise AssertionError("never reached")

    request = ChatRequest.model_validate(
        {"message": "Weather in Oslo?", "tools": [{"name": "get_weather", "description": "Current weather"}]}
    )
    prepared = await reply.prepare(principal, request, tool_runner=ScriptedToolRunner(run_tools))

    async def consume() -> None:
        async with reply.streaming(prepared) as events:
            async for _ in events:
                pass

    consumer = Consumer(consume, how)
    await consumer.cancel_once(running)
    await consumer.ended()

    messages = history(principal, prepared.conversation_id)
    assert [(m.role, m.content) for m in messages] == [("user", "Weather in Oslo?"), ("assistant", "Let me check. ")]
    assert messages[1].metadata is not None
    assert messages[1].metadata["incomplete"] is True
    # The model's round reported its usage before the tool ran: that is what counts.
    assert (messages[1].metadata["inputTokens"], messages[1].metadata["outputTokens"]) == (20, 12)
    assert spent_tokens(principal) == 32
    assert len(anthropic_fake.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("how", HOW)
async def test_a_consumer_cancelled_during_the_writes_ends_only_after_them_and_stores_once(
    principal: Principal, anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:  # fmt: skip
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    anthropic_fake.reply(WORDS)
    writing, release = threading.Event(), threading.Event()
    record_reply = usage.record_reply

    def slow_record_reply(*args: Any) -> None:
        writing.set()
        assert release.wait(WAIT_SECONDS), "the test never released the write"
        record_reply(*args)

    monkeypatch.setattr(usage, "record_reply", slow_record_reply)
    prepared = await reply.prepare(principal, ChatRequest(message="count"))

    async def consume() -> None:
        async with reply.streaming(prepared) as events:
            async for _ in events:
                pass

    consumer = Consumer(consume, how)
    assert await anyio.to_thread.run_sync(writing.wait, WAIT_SECONDS), "the reply was never stored"
    consumer.cancel()
    for _ in range(20):  # turns of the loop: a consumer that did not wait for its write would have ended by now
        await asyncio.sleep(0)
    assert not consumer.task.done()
    release.set()
    await consumer.ended()

    messages = history(principal, prepared.conversation_id)
    assert [(m.role, m.content) for m in messages] == [("user", "count"), ("assistant", WORDS)]
    assert messages[1].metadata is not None
    assert messages[1].metadata["incomplete"] is False  # the reply had ended: the cut came after it
    assert usage_records(principal) == 1  # stored once, not once more by the cancellation
