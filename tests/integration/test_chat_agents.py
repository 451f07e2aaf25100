"""Chatting with an agent through the API, on the fake agents service and a fake model provider: the prompt it
sends (the agent's instructions and the retrieved chunks), the `citations` event before the content on every
path (SSE, buffered, resumed, WebSocket), the stored reply's citations, the agent's model and settings, the
conversation that keeps its agent, the refusals that come before any generation, and trying an agent."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.chat import limits
from functions.realtime import worker
from shared.ids import new_id
from shared.settings import get_settings
from tests.fakes.agents import ChatAgent, FakeAgents, RetrievedChunk, an_agent, chunk, installed
from tests.fakes.anthropic_server import FakeAnthropic
from tests.integration.conftest import User, error_code, register
from tests.integration.test_chat import events_of, in_one_window, stored_reply, text_of
from tests.integration.test_realtime import (  # noqa: F401 - the realtime tests' fixtures
    StubManagementApi,
    connect_as,
    invocations,
    lambda_context,
    management,
    send,
)
from tests.sse import sse_events

STREAM = "/api/v1/ai/chat/stream"
INSTRUCTIONS = "You are the Acme support agent. Answer only about Acme products."
REFUND = "Refunds are accepted within 30 days of purchase, with the receipt."
SHIPPING = "Orders ship within two working days from the Lyon warehouse."


@pytest.fixture
def agents() -> Iterator[FakeAgents]:
    with installed(FakeAgents()) as fake:
        yield fake


@pytest.fixture
def anthropic(anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]) -> FakeAnthropic:
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    return anthropic_fake


@pytest.fixture
def admin(api: TestClient) -> User:
    """The stage's first account: an admin, so it holds `agents.manage`."""
    return register(api, "admin@example.com")


@pytest.fixture
def user(api: TestClient, admin: User) -> User:
    """A member: chats with agents, cannot manage them."""
    return register(api, "member@example.com")


def sources() -> list[RetrievedChunk]:
    document = new_id()
    return [
        chunk(document, 3, REFUND, file_name="policies.pdf", page=4, score=0.91),
        chunk(new_id(), 0, SHIPPING, file_name="shipping.md", page=None, score=0.72),
    ]


def support_agent(agents: FakeAgents, **settings: Any) -> ChatAgent:
    agent = an_agent(id=new_id(), name="Support", instructions=INSTRUCTIONS, **settings)
    return agents.add(agent, sources())


def expected_citations(agents: FakeAgents, agent: ChatAgent) -> list[dict[str, Any]]:
    return [
        {"documentId": c.citation.document_id, "title": c.citation.file_name, "chunkId": c.citation.chunk_id,
         "page": c.citation.page, "score": c.citation.score, "snippet": c.citation.snippet}
        for c in agents.chunks[agent.id]
    ]  # fmt: skip


def system_sent(anthropic: FakeAnthropic) -> str:
    body = anthropic.last_request.body
    assert body is not None
    system = body["system"]
    return system if isinstance(system, str) else "".join(block["text"] for block in system)


def requests_left(api: TestClient, user: User) -> int:
    return int(api.get("/api/v1/users/dashboard", headers=user.auth).json()["limitsLeft"]["requests"])


def test_a_reply_as_an_agent_is_grounded_in_its_sources_and_cites_them_before_the_content(
    api: TestClient, user: User, agents: FakeAgents, anthropic: FakeAnthropic
) -> None:
    agent = support_agent(agents)
    api.put("/api/v1/users/settings", headers=user.auth, json={"systemPrompt": "Always answer in English."})
    anthropic.reply("You can get a refund within 30 days [1].")

    events = events_of(api, user, {"message": "How do refunds work?", "agentId": agent.id})

    assert [e["type"] for e in events][:3] == ["start", "citations", "content"]
    assert events[1] == {"type": "citations", "items": expected_citations(agents, agent)}
    system = system_sent(anthropic)
    assert system.startswith(INSTRUCTIONS)
    assert system.index(INSTRUCTIONS) < system.index("Always answer in English.") < system.index(REFUND)
    assert "[1] policies.pdf, page 4\n" + REFUND in system
    assert "[2] shipping.md\n" + SHIPPING in system
    assert "cite each source you use by its number" in system
    assert "do not contain the answer" in system
    assert ("retrieve", "How do refunds work?", agent.id) in agents.calls

    conversation_id = events[0]["conversationId"]
    reply = stored_reply(api, user, conversation_id)
    assert reply["content"] == text_of(events)
    assert reply["metadata"]["citations"] == expected_citations(agents, agent)
    conversation = api.get(f"/api/v1/conversations/{conversation_id}", headers=user.auth).json()
    assert conversation["agentId"] == agent.id


def test_the_buffered_reply_and_a_resumed_stream_carry_the_citations(
    api: TestClient, user: User, agents: FakeAgents, anthropic: FakeAnthropic
) -> None:
    agent = support_agent(agents)
    anthropic.reply("Within 30 days [1].")
    buffered = api.post("/api/v1/ai/chat", headers=user.auth, json={"message": "Refunds?", "agentId": agent.id})
    assert buffered.status_code == 200, buffered.text
    assert buffered.json()["citations"] == expected_citations(agents, agent)
    assert buffered.json()["message"]["content"] == "Within 30 days [1]."

    anthropic.reply("Two working days [2].")
    streamed = events_of(api, user, {"message": "Shipping?", "agentId": agent.id})
    message_id = streamed[0]["messageId"]
    with api.stream("GET", f"{STREAM}/{message_id}", headers=user.auth, params={"after": 1}) as resumed:
        assert resumed.status_code == 200
        replayed = sse_events(resumed.iter_lines())
    assert replayed[0] == (f"{message_id}:2", {"type": "citations", "items": expected_citations(agents, agent)})
    assert [data for _, data in replayed] == streamed[1:]


def test_an_agent_without_knowledge_or_without_a_match_sends_no_citations(
    api: TestClient, user: User, agents: FakeAgents, anthropic: FakeAnthropic
) -> None:
    plain = agents.add(an_agent(id=new_id(), name="Plain", instructions=INSTRUCTIONS, knowledge_enabled=False))
    unmatched = agents.add(an_agent(id=new_id(), name="Empty", instructions=INSTRUCTIONS), [])

    anthropic.reply("Hello.")
    events = events_of(api, user, {"message": "Hi", "agentId": plain.id})
    assert "citations" not in [e["type"] for e in events]
    assert system_sent(anthropic) == INSTRUCTIONS
    assert ("retrieve", "Hi", plain.id) not in agents.calls

    anthropic.reply("The knowledge base does not say.")
    events = events_of(api, user, {"message": "Opening hours?", "agentId": unmatched.id})
    assert "citations" not in [e["type"] for e in events]
    assert "No source in the knowledge base matched" in system_sent(anthropic)
    assert "citations" not in (stored_reply(api, user, events[0]["conversationId"])["metadata"] or {})


def test_an_unknown_or_inactive_agent_is_refused_before_any_generation_and_not_counted(
    api: TestClient, user: User, agents: FakeAgents, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_one_window(monkeypatch)
    inactive = agents.add(an_agent(id=new_id(), name="Retired", instructions="-"), active=False)
    before = requests_left(api, user)

    unknown = api.post(STREAM, headers=user.auth, json={"message": "hi", "agentId": new_id()})
    assert unknown.status_code == 404
    assert error_code(unknown) == "not_found"
    refused = api.post("/api/v1/ai/chat", headers=user.auth, json={"message": "hi", "agentId": inactive.id})
    assert refused.status_code == 409
    assert error_code(refused) == "agent_inactive"
    malformed = api.post(STREAM, headers=user.auth, json={"message": "hi", "agentId": "not-an-id"})
    assert malformed.status_code == 422

    assert anthropic.requests == []
    assert requests_left(api, user) == before
    assert api.get("/api/v1/conversations", headers=user.auth).json()["items"] == []


def test_the_agents_model_and_settings_apply_unless_the_request_names_its_own(
    api: TestClient, user: User, agents: FakeAgents, anthropic: FakeAnthropic
) -> None:
    agent = support_agent(agents, model="claude-haiku-4-5", temperature=0.2, max_tokens=512)
    anthropic.reply("Answer.")
    events = events_of(api, user, {"message": "Refunds?", "agentId": agent.id})
    sent = anthropic.last_request.body
    assert sent is not None
    assert (events[0]["model"], sent["model"], sent["temperature"], sent["max_tokens"]) == (
        "claude-haiku-4-5", "claude-haiku-4-5", 0.2, 512,
    )  # fmt: skip

    anthropic.reply("Answer.")
    body = {"message": "Refunds?", "agentId": agent.id, "model": "claude-opus-4-5", "temperature": 0.9,
            "maxTokens": 100}  # fmt: skip
    events_of(api, user, body)
    sent = anthropic.last_request.body
    assert sent is not None
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("claude-opus-4-5", 0.9, 100)


def test_a_conversation_keeps_its_agent_and_refuses_another(
    api: TestClient, user: User, agents: FakeAgents, anthropic: FakeAnthropic
) -> None:
    agent = support_agent(agents)
    other = agents.add(an_agent(id=new_id(), name="Sales", instructions="Sell."))
    anthropic.reply("First.")
    first = events_of(api, user, {"message": "Refunds?", "agentId": agent.id})
    conversation_id = first[0]["conversationId"]

    anthropic.reply("Second.")
    second = events_of(api, user, {"message": "And shipping?", "conversationId": conversation_id})
    assert [e["type"] for e in second][:2] == ["start", "citations"]
    assert system_sent(anthropic).startswith(INSTRUCTIONS)
    assert ("retrieve", "And shipping?", agent.id) in agents.calls

    mismatch = api.post(STREAM, headers=user.auth,
                        json={"message": "x", "conversationId": conversation_id, "agentId": other.id})  # fmt: skip
    assert mismatch.status_code == 409
    assert error_code(mismatch) == "agent_mismatch"

    anthropic.reply("Plain.")
    plain = events_of(api, user, {"message": "No agent here"})
    later = {"message": "x", "conversationId": plain[0]["conversationId"], "agentId": agent.id}
    named_later = api.post(STREAM, headers=user.auth, json=later)
    assert named_later.status_code == 409
    assert error_code(named_later) == "agent_mismatch"
    messages = api.get(f"/api/v1/conversations/{conversation_id}/messages", headers=user.auth).json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


def test_the_agents_mcp_servers_supply_the_tools_instead_of_the_users(
    api: TestClient, user: User, agents: FakeAgents, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.chat import tools

    asked: list[tuple[str, ...]] = []

    def servers_for(_principal: Any, server_ids: Any) -> list[Any]:
        asked.append(tuple(server_ids))
        return []

    monkeypatch.setattr(tools, "servers_for", servers_for)
    mine, stage_server = new_id(), new_id()
    api.put("/api/v1/users/settings", headers=user.auth, json={"enabledMcpServers": [mine]})
    agent = support_agent(agents, mcp_servers=(stage_server,))
    anthropic.reply("Answer.")
    events_of(api, user, {"message": "Refunds?", "agentId": agent.id})
    assert asked == [(stage_server,)]

    anthropic.reply("Answer.")
    events_of(api, user, {"message": "Plain chat"})
    assert asked[-1] == (mine,)


def test_grounding_starts_alongside_the_other_reads_not_after_them(
    api: TestClient, user: User, agents: FakeAgents, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = support_agent(agents)
    admit = limits.admit

    def admit_once_the_agent_is_asked_for(user_id: str, **options: Any) -> limits.Admission:
        agents.mark("admission:start")
        # Concurrent reads: the agent is asked for while the admission is still under way. (Were it read after
        # the admission, this wait would run out first, and the order below would show it.)
        agents.agent_requested.wait(5)
        try:
            return admit(user_id, **options)
        finally:
            agents.mark("admission:end")

    monkeypatch.setattr(limits, "admit", admit_once_the_agent_is_asked_for)
    anthropic.reply("Answer.")
    events_of(api, user, {"message": "Refunds?", "agentId": agent.id})
    timeline = agents.timeline
    assert timeline.index("admission:start") < timeline.index("agent:start") < timeline.index("admission:end")


def test_chat_send_with_an_agent_streams_its_citations_over_the_websocket(
    user: User,
    agents: FakeAgents,
    anthropic: FakeAnthropic,
    management: StubManagementApi,  # noqa: F811 - the realtime tests' fixture
    invocations: list[dict[str, Any]],  # noqa: F811
) -> None:
    agent = support_agent(agents)
    anthropic.reply("Within 30 days [1].")
    connect_as(user, "c-member")
    send("c-member", {"action": "chat:send", "message": "Refunds?", "agentId": agent.id})
    (payload,) = invocations
    assert payload["request"]["agentId"] == agent.id

    result = worker.lambda_handler(json.loads(json.dumps(payload)), lambda_context())
    assert result["status"] == "sent"
    events = [frame["data"] for frame in management.frames("c-member", "chat:response")]
    assert [e["type"] for e in events][:3] == ["start", "citations", "content"]
    assert events[1]["items"] == expected_citations(agents, agent)
    assert system_sent(anthropic).startswith(INSTRUCTIONS)

    send("c-member", {"action": "chat:send", "message": "Refunds?", "agentId": "nope"})
    assert management.frames("c-member", "chat:error")[-1]["data"]["code"] == "invalid_frame"


def test_trying_an_agent_answers_with_citations_and_stores_no_conversation(
    api: TestClient, admin: User, user: User, agents: FakeAgents, anthropic: FakeAnthropic
) -> None:
    agent = support_agent(agents, model="claude-haiku-4-5")
    anthropic.reply("Within 30 days [1].", input_tokens=120, output_tokens=8)

    tried = api.post(f"/api/v1/agents/{agent.id}/test", headers=admin.auth, json={"message": "Refunds?"})

    assert tried.status_code == 200, tried.text
    body = tried.json()
    assert body["answer"] == "Within 30 days [1]."
    assert body["citations"] == expected_citations(agents, agent)
    assert (body["usage"]["inputTokens"], body["usage"]["outputTokens"]) == (120, 8)
    assert anthropic.last_request.body is not None
    assert anthropic.last_request.body["model"] == "claude-haiku-4-5"
    assert REFUND in system_sent(anthropic)
    assert api.get("/api/v1/conversations", headers=admin.auth).json()["items"] == []
    stats = api.get("/api/v1/users/usage-stats", headers=admin.auth, params={"days": 7}).json()
    assert (stats["totals"]["requests"], stats["totals"]["inputTokens"]) == (1, 120)

    forbidden = api.post(f"/api/v1/agents/{agent.id}/test", headers=user.auth, json={"message": "Refunds?"})
    assert forbidden.status_code == 403
    missing = api.post(f"/api/v1/agents/{new_id()}/test", headers=admin.auth, json={"message": "Refunds?"})
    assert missing.status_code == 404
    assert len(anthropic.requests) == 1


def test_trying_an_inactive_agent_is_refused_without_counting_against_the_limits(
    api: TestClient, admin: User, agents: FakeAgents, anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_one_window(monkeypatch)
    inactive = agents.add(an_agent(id=new_id(), name="Retired", instructions="-"), active=False)
    before = requests_left(api, admin)
    refused = api.post(f"/api/v1/agents/{inactive.id}/test", headers=admin.auth, json={"message": "hi"})
    assert refused.status_code == 409
    assert error_code(refused) == "agent_inactive"
    assert requests_left(api, admin) == before == get_settings().chat_requests_per_window
    assert anthropic.requests == []
