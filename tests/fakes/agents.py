"""A stand-in for the agents context's chat-facing service (`functions.agents.service`): its dataclasses and the
two calls chat makes, over agents and chunks a test declares. It records every call with a sequence
number shared with the other reads of a reply, so a test can tell what started before what finished."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from functions.agents.service import ChatAgent, Citation, RetrievedChunk
from shared.auth.principal import Principal
from shared.errors import Conflict, NotFound


def an_agent(id: str, name: str, instructions: str, **settings: Any) -> ChatAgent:
    """An agent as the real service hands chat one, with the defaults of a new agent unless `settings` say."""
    defaults: dict[str, Any] = {
        "model": None, "provider": None, "temperature": None, "max_tokens": None, "mcp_servers": (),
        "knowledge_enabled": True, "top_k": 5, "min_score": None,
    }  # fmt: skip
    return ChatAgent(id=id, name=name, instructions=instructions, **(defaults | settings))


def chunk(
    document_id: str, ordinal: int, text: str, *, file_name: str, page: int | None, score: float
) -> RetrievedChunk:
    """A retrieved chunk as the real service builds it: its key, and its first 240 characters as the snippet."""
    citation = Citation(document_id, file_name, f"{document_id}:{ordinal:05d}", page, score, text[:240])
    return RetrievedChunk(citation, text)


@dataclass
class FakeAgents:
    """The agents a test declares (`add`), the chunks each retrieves, and what chat asked for, in order."""

    agents: dict[str, ChatAgent] = field(default_factory=dict)
    inactive: set[str] = field(default_factory=set)
    chunks: dict[str, list[RetrievedChunk]] = field(default_factory=dict)
    # ("agent_for_chat" | "retrieve", agent id or query, user id), in call order.
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    # "<what>:start" and "<what>:end" marks in the order they happened: the agent's own, and any a test adds
    # around the other reads of a reply (`mark`).
    timeline: list[str] = field(default_factory=list)
    # Set once chat has started loading an agent.
    agent_requested: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, agent: ChatAgent, chunks: list[RetrievedChunk] | None = None, *, active: bool = True) -> ChatAgent:
        self.agents[agent.id] = agent
        self.chunks[agent.id] = list(chunks or [])
        if not active:
            self.inactive.add(agent.id)
        return agent

    def mark(self, what: str) -> None:
        with self._lock:
            self.timeline.append(what)

    def agent_for_chat(self, principal: Principal, agent_id: str) -> ChatAgent:
        principal.require("ai.chat")
        self.mark("agent:start")
        self.agent_requested.set()
        self.calls.append(("agent_for_chat", agent_id, principal.user_id))
        try:
            agent = self.agents.get(agent_id)
            if agent is None:
                raise NotFound("Agent not found", code="not_found")
            if agent_id in self.inactive:
                raise Conflict("This agent is inactive", code="agent_inactive")
            return agent
        finally:
            self.mark("agent:end")

    def retrieve(self, agent: ChatAgent, query: str, *, top_k: int | None = None) -> list[RetrievedChunk]:
        self.calls.append(("retrieve", query, agent.id))
        if not agent.knowledge_enabled:
            return []
        return self.chunks.get(agent.id, [])[: top_k or agent.top_k]

    def module(self) -> types.ModuleType:
        """This fake as the module `functions.agents.service`."""
        module = types.ModuleType("functions.agents.service")
        for name, value in (("ChatAgent", ChatAgent), ("Citation", Citation), ("RetrievedChunk", RetrievedChunk),
                            ("agent_for_chat", self.agent_for_chat), ("retrieve", self.retrieve)):  # fmt: skip
            setattr(module, name, value)
        return module


@contextmanager
def installed(fake: FakeAgents) -> Iterator[FakeAgents]:
    """`fake` imported as `functions.agents.service` until the block ends."""
    import functions.agents as package

    real = sys.modules["functions.agents.service"]
    module = fake.module()
    sys.modules["functions.agents.service"] = module
    package.service = module  # type: ignore[attr-defined] # what `from functions.agents import service` reads
    try:
        yield fake
    finally:
        sys.modules["functions.agents.service"] = real
        package.service = real  # type: ignore[attr-defined]
