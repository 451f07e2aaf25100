"""What a memory request may hold: the constraints every route and the bulk import share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from functions.memories.models import BulkImportRequest, MemoryCreate, MemoryUpdate

_FUTURE = (datetime.now(UTC) + timedelta(days=1)).isoformat()
_PAST = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()


def test_a_memory_needs_only_content_and_gets_the_documented_defaults() -> None:
    memory = MemoryCreate.model_validate({"content": "  Prefers tea  "})
    assert (memory.content, memory.category, memory.priority, memory.active, memory.expires_at) == (
        "Prefers tea", "general", 5, True, None,
    )  # fmt: skip


def test_camel_case_fields_are_read() -> None:
    memory = MemoryCreate.model_validate(
        {"content": "x", "category": "instruction", "priority": 10, "expiresAt": _FUTURE}
    )
    assert memory.expires_at is not None
    assert memory.expires_at > datetime.now(UTC)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "x", "category": "mood"}, "category"),
        ({"content": "x", "priority": 0}, "priority"),
        ({"content": "x", "priority": 11}, "priority"),
        ({"content": "x", "priority": "high"}, "priority"),
        ({"content": ""}, "content"),
        ({"content": " \n\t "}, "content"),
        ({"content": "x" * 10_001}, "content"),
        ({}, "content"),
        ({"content": "x", "expiresAt": _PAST}, "expiresAt"),
        ({"content": "x", "expiresAt": "2099-01-01T00:00:00"}, "expiresAt"),
        ({"content": "x", "expiresAt": "next week"}, "expiresAt"),
        ({"content": "x", "userId": "someone-else"}, "userId"),
    ],
)
def test_invalid_memories_are_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refusal:
        MemoryCreate.model_validate(body)
    assert [problem["loc"][0] for problem in refusal.value.errors()] == [field]


def test_content_of_exactly_the_maximum_length_is_accepted() -> None:
    assert len(MemoryCreate.model_validate({"content": "x" * 10_000}).content) == 10_000


def test_an_update_keeps_what_it_leaves_out_and_may_clear_only_the_expiry() -> None:
    update = MemoryUpdate.model_validate({"priority": 2, "expiresAt": None})
    assert update.model_dump(exclude_unset=True) == {"priority": 2, "expires_at": None}
    for field in ("content", "category", "priority", "active"):
        with pytest.raises(ValidationError, match=f"{field} cannot be null"):
            MemoryUpdate.model_validate({field: None})
    with pytest.raises(ValidationError):
        MemoryUpdate.model_validate({"expiresAt": _PAST})


def test_bulk_import_takes_one_to_500_items_of_any_shape() -> None:
    assert (
        len(BulkImportRequest.model_validate({"memories": [{"content": "x"}, "not an object"] * 250}).memories) == 500
    )
    for count in (0, 501):
        with pytest.raises(ValidationError):
            BulkImportRequest.model_validate({"memories": [{"content": "x"}] * count})
