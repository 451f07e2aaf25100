"""Ids an import gives what it stores: real ULIDs, keeping the item's time, the same for the same item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.ids import derived_id, id_time_ms, is_id

MOMENT = datetime(2024, 5, 1, 12, 30, 15, 123_000, tzinfo=UTC)


def test_a_derived_id_is_a_ulid_of_the_items_time() -> None:
    value = derived_id(MOMENT, "user", "conversation", "source-1")
    assert is_id(value)
    assert id_time_ms(value) == int(MOMENT.timestamp() * 1000)


def test_the_same_item_gets_the_same_id_and_another_item_another() -> None:
    first = derived_id(MOMENT, "user", "conversation", "source-1")
    assert derived_id(MOMENT, "user", "conversation", "source-1") == first
    assert derived_id(MOMENT, "other user", "conversation", "source-1") != first
    assert derived_id(MOMENT, "user", "conversation", "source-2") != first


def test_ids_sort_by_the_items_time() -> None:
    later = MOMENT + timedelta(milliseconds=1)
    assert derived_id(MOMENT, "b") < derived_id(later, "a")


def test_a_time_before_1970_still_gives_an_id() -> None:
    assert is_id(derived_id(datetime(1960, 1, 1, tzinfo=UTC), "x"))
