"""A grounded reply's system prompt: the agent's instructions first, then the user's prompt and memories, then
the sources that fit the budget, numbered with their file and page, and the citations of exactly those."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from functions.chat import grounding
from functions.chat.grounding import Grounding, assemble_system_prompt, source_budget, within_budget
from shared.llm.providers import estimate_tokens
from tests.fakes.agents import RetrievedChunk, an_agent, chunk

ROOT = Path(__file__).resolve().parents[2]
AGENT = an_agent(id="01J0000000000000000000000A", name="Support", instructions="You are Acme's support agent.")


def chunk_of(tokens: int, ordinal: int, *, page: int | None = None) -> RetrievedChunk:
    return chunk("01J0000000000000000000000D", ordinal, f"chunk {ordinal} " + "x" * (tokens * 4),
                 file_name="manual.pdf", page=page, score=1 - ordinal / 10)  # fmt: skip


def test_the_instructions_lead_then_the_users_prompt_and_memories_then_the_numbered_sources() -> None:
    sources = [chunk_of(10, 0, page=3), chunk_of(10, 1)]
    prompt = assemble_system_prompt(AGENT.instructions, ["Be terse.", "", None, "Memories: metric"], sources,
                                    knowledge=True)  # fmt: skip
    parts = prompt.split("\n\n")
    assert parts[:3] == ["You are Acme's support agent.", "Be terse.", "Memories: metric"]
    assert parts[3] == grounding.SOURCES_HEADING
    assert parts[4] == f"[1] manual.pdf, page 3\n{sources[0].text}"
    assert parts[5] == f"[2] manual.pdf\n{sources[1].text}"


def test_an_agent_without_a_matching_source_is_told_to_say_so_and_one_without_knowledge_is_not() -> None:
    assert assemble_system_prompt("Help.", [], [], knowledge=True) == f"Help.\n\n{grounding.NO_SOURCES}"
    assert assemble_system_prompt("Help.", ["Be terse."], [], knowledge=False) == "Help.\n\nBe terse."


def test_sources_fit_the_budget_whole_and_best_first_and_a_shorter_one_may_follow_a_skipped_one() -> None:
    best, too_long, short = chunk_of(60, 0), chunk_of(80, 1), chunk_of(20, 2)
    kept = within_budget([best, too_long, short], 100)
    assert kept == [best, short]
    assert sum(estimate_tokens(c.text) for c in kept) <= 100
    assert within_budget([too_long], 50) == []


def test_the_budget_is_four_thousand_tokens_or_a_quarter_of_a_small_context_window() -> None:
    assert source_budget(200_000) == 4_000
    assert source_budget(8_000) == 2_000


def test_the_citations_name_exactly_the_sources_the_prompt_carries() -> None:
    retrieved = tuple(chunk_of(900, ordinal, page=ordinal + 1) for ordinal in range(8))
    found = Grounding(AGENT, retrieved)
    citations = found.citations(200_000)
    prompt = found.system_prompt(200_000, "Be terse.")
    assert 0 < len(citations) < len(retrieved)
    assert [c["chunkId"] for c in citations] == [c.citation.chunk_id for c in retrieved[: len(citations)]]
    assert f"[{len(citations)}] manual.pdf, page {len(citations)}" in prompt
    assert f"[{len(citations) + 1}]" not in prompt
    assert citations[0] == {
        "documentId": "01J0000000000000000000000D", "title": "manual.pdf",
        "chunkId": "01J0000000000000000000000D:00000", "page": 1, "score": 1.0, "snippet": retrieved[0].text[:240],
    }  # fmt: skip


def test_plain_chat_does_not_load_the_agents_context() -> None:
    code = (
        "import sys, functions.chat.api, functions.chat.reply, functions.realtime.worker; "
        "print(sorted(name for name in sys.modules if name.startswith('functions.agents')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
