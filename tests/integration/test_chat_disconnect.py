"""A client that goes away stops its reply, and what was produced until then is kept, marked incomplete."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from functions.chat import reply
from functions.chat.models import ChatRequest
from functions.conversations import service as conversations
from functions.identity import service as identity
from shared.auth.verify import verify_credential
from tests.fakes.anthropic_server import FakeAnthropic


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

    history = conversations.recent_history(principal, prepared.conversation_id, 10)
    assert [m.role for m in history] == ["user", "assistant"]
    kept = history[-1]
    assert kept.content == "one two "
    assert kept.metadata is not None
    assert kept.metadata["incomplete"] is True
    assert kept.metadata["stopReason"] == "client_disconnected"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
