"""Grounding a reply in an agent: its instructions, and the chunks of its documents that best match the message.

The one place chat imports the agents context (`functions.agents.service`), and only when a request names an
agent (or continues a conversation that has one): plain chat never loads it. `ground` loads the agent and
retrieves in a worker thread, alongside the reply's other reads; `system_prompt` then assembles the prompt for
the model the reply will use, keeping the best sources that fit its budget, and `citations` names those sources
as the reply's `citations` event and its stored metadata keep them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from shared.auth.principal import Principal
from shared.llm.providers import estimate_tokens

if TYPE_CHECKING:
    from functions.agents.service import ChatAgent, RetrievedChunk


# Tokens of sources a prompt may carry: at most this many, and at most this share of the model's context window.
SOURCE_TOKENS = 4_000
SOURCE_SHARE = 0.25

SOURCES_HEADING = (
    "Sources from the knowledge base, best match first. Answer from them when they are relevant and cite each "
    "source you use by its number in brackets, like [1]. When they do not contain the answer, say so plainly "
    "instead of guessing."
)
NO_SOURCES = (
    "No source in the knowledge base matched this message. If answering needs it, say that the knowledge base "
    "does not contain the answer instead of guessing."
)


@dataclass(frozen=True)
class Grounding:
    """The agent a reply speaks as, and what its knowledge retrieved for the message, best first."""

    agent: ChatAgent
    retrieved: tuple[RetrievedChunk, ...]

    def sources(self, context_window: int) -> list[RetrievedChunk]:
        """The retrieved chunks the prompt carries for a model with this context window: whole chunks, best first,
        within `source_budget`."""
        return within_budget(self.retrieved, source_budget(context_window))

    def system_prompt(self, context_window: int, *parts: str | None) -> str:
        """The agent's instructions, then `parts` (the conversation's or user's system prompt, the memories), then
        the numbered sources."""
        return assemble_system_prompt(
            self.agent.instructions, parts, self.sources(context_window), knowledge=self.agent.knowledge_enabled
        )

    def citations(self, context_window: int) -> list[dict[str, Any]]:
        """The sources the prompt carries, as the `citations` event and the stored reply name them."""
        return [citation_of(chunk) for chunk in self.sources(context_window)]


async def ground(principal: Principal, agent_id: str, message: str) -> Grounding:
    """The agent (404 `not_found` unknown, 409 `agent_inactive`), then its chunks for `message`, in a worker
    thread."""
    return await anyio.to_thread.run_sync(grounding_for, principal, agent_id, message)


def grounding_for(principal: Principal, agent_id: str, message: str) -> Grounding:
    """`ground`, blocking: for callers already on a worker thread."""
    # Loaded on first use only: plain chat never pays for the agents context at cold start.
    from functions.agents import service as agents

    agent = agents.agent_for_chat(principal, agent_id)
    retrieved = agents.retrieve(agent, message) if agent.knowledge_enabled else []
    return Grounding(agent, tuple(retrieved))


def source_budget(context_window: int) -> int:
    return max(0, min(SOURCE_TOKENS, int(context_window * SOURCE_SHARE)))


def within_budget(chunks: Sequence[RetrievedChunk], budget_tokens: int) -> list[RetrievedChunk]:
    """Whole chunks in their order (best first) while they fit; one too long for what is left is skipped, and a
    shorter one after it may still fit."""
    kept: list[RetrievedChunk] = []
    spent = 0
    for chunk in chunks:
        cost = estimate_tokens(_source_text(len(kept) + 1, chunk))
        if spent + cost > budget_tokens:
            continue
        kept.append(chunk)
        spent += cost
    return kept


def assemble_system_prompt(
    instructions: str, parts: Sequence[str | None], sources: Sequence[RetrievedChunk], *, knowledge: bool
) -> str:
    numbered = "\n\n".join(_source_text(number, chunk) for number, chunk in enumerate(sources, start=1))
    grounding = f"{SOURCES_HEADING}\n\n{numbered}" if sources else (NO_SOURCES if knowledge else "")
    return "\n\n".join(part.strip() for part in (instructions, *parts, grounding) if part and part.strip())


def citation_of(chunk: RetrievedChunk) -> dict[str, Any]:
    citation = chunk.citation
    return {
        "documentId": citation.document_id,
        "title": citation.file_name,
        "chunkId": citation.chunk_id,
        "page": citation.page,
        "score": citation.score,
        "snippet": citation.snippet,
    }


def _source_text(number: int, chunk: RetrievedChunk) -> str:
    page = f", page {chunk.citation.page}" if chunk.citation.page is not None else ""
    return f"[{number}] {chunk.citation.file_name}{page}\n{chunk.text.strip()}"
