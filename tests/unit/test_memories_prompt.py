"""What memories go into a prompt within a token budget, and how the prompt section reads."""

from __future__ import annotations

from datetime import UTC, datetime

from functions.memories.models import Category, MemoryPublic
from functions.memories.service import (
    MEMORY_OVERHEAD_TOKENS,
    PROMPT_SECTION_HEADER,
    estimate_tokens,
    format_memories_for_prompt,
    select_within_budget,
)

_CREATED = datetime(2030, 1, 1, tzinfo=UTC)


def _memory(content: str, category: Category = "fact", priority: int = 5) -> MemoryPublic:
    return MemoryPublic(
        id=content[:26], content=content, category=category, priority=priority, active=True, archived=False,
        expires_at=None, created_at=_CREATED, updated_at=_CREATED,
    )  # fmt: skip


def test_tokens_are_a_quarter_of_the_characters_rounded_up_plus_the_line_overhead() -> None:
    assert estimate_tokens("abcd") == 1 + MEMORY_OVERHEAD_TOKENS
    assert estimate_tokens("abcde") == 2 + MEMORY_OVERHEAD_TOKENS
    assert estimate_tokens("x" * 4000) == 1000 + MEMORY_OVERHEAD_TOKENS


def test_memories_are_taken_in_order_while_they_fit_the_budget_exactly() -> None:
    memories = [_memory("a" * 40), _memory("b" * 40), _memory("c" * 40)]
    each = 10 + MEMORY_OVERHEAD_TOKENS
    assert select_within_budget(memories, 2 * each) == memories[:2]
    assert select_within_budget(memories, 2 * each - 1) == memories[:1]
    assert select_within_budget(memories, 3 * each) == memories


def test_selection_stops_at_the_first_memory_that_does_not_fit_rather_than_skipping_to_a_smaller_one() -> None:
    important, long, short = _memory("a" * 40, priority=9), _memory("b" * 4000, priority=8), _memory("c", priority=1)
    assert select_within_budget([important, long, short], 100) == [important]


def test_no_budget_means_no_memories() -> None:
    assert select_within_budget([_memory("a")], 0) == []
    assert select_within_budget([], 1000) == []


def test_prompt_section_lists_memories_in_order_with_their_category() -> None:
    section = format_memories_for_prompt(
        [_memory("Answer in French", "instruction"), _memory("Lives in Lyon\nsince 2020", "fact")]
    )
    assert section == (
        f"{PROMPT_SECTION_HEADER}\n- (instruction) Answer in French\n- (fact) Lives in Lyon\n  since 2020"
    )


def test_no_memories_make_no_prompt_section() -> None:
    assert format_memories_for_prompt([]) == ""
