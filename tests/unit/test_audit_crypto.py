"""The audit log's pure parts: sealing personal fields per user, what counts as personal, the stage view's days."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidTag

from functions.audit import crypto
from functions.audit.service import days_between


def test_fields_sealed_for_an_event_open_with_its_owners_key_only() -> None:
    key = crypto.new_key()
    envelope = crypto.seal_fields(key, {"ip": "203.0.113.1"}, event_id="E1", part="actor", owner="U1")

    assert crypto.open_fields(key, envelope, event_id="E1") == {"ip": "203.0.113.1"}
    assert "203.0.113.1" not in str(envelope)
    with pytest.raises(InvalidTag):
        crypto.open_fields(crypto.new_key(), envelope, event_id="E1")


@pytest.mark.parametrize("change", [{"event_id": "E2"}, {"part": "details"}, {"owner": "U2"}])
def test_an_envelope_moved_to_another_event_part_or_owner_does_not_open(change: dict[str, str]) -> None:
    key = crypto.new_key()
    envelope = crypto.seal_fields(key, {"ip": "203.0.113.1"}, event_id="E1", part="actor", owner="U1")
    event_id = change.pop("event_id", "E1")

    with pytest.raises(InvalidTag):
        crypto.open_fields(key, {**envelope, **change}, event_id=event_id)


@pytest.mark.parametrize("name", ["email", "emailHash", "name", "inviteeName", "phone", "contactName", "ip"])
def test_details_naming_a_person_are_personal(name: str) -> None:
    assert crypto.PERSONAL_DETAIL.search(name)


@pytest.mark.parametrize("name", ["roles", "permissions", "error", "jobId", "status", "scope", "kind"])
def test_details_about_things_are_not(name: str) -> None:
    assert not crypto.PERSONAL_DETAIL.search(name)


def test_the_stage_view_reads_the_days_its_bounds_cover_newest_first() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)

    assert days_between("2026-11-29T10:00:00.000Z", "2026-12-01T01:00:00.000Z", now=now) == [
        "2026-12-01", "2026-11-30", "2026-11-29",
    ]  # fmt: skip
    # Unbounded: from the retention's start (365 days and one) to tomorrow.
    days = days_between("", "9999-12-31T23:59:59.999Z", now=now)
    assert (days[0], days[-1], len(days)) == ("2026-12-02", "2025-11-30", 368)
    assert days_between("2026-12-05T00:00:00.000Z", "2026-12-09T00:00:00.000Z", now=now) == []


def test_a_key_cache_remembers_a_shredded_user_and_forgets_the_least_recent() -> None:
    cache = crypto.KeyCache(size=2)
    cache.put("A", b"a")
    cache.put("B", None)
    cache.get("A")
    cache.put("C", b"c")

    assert cache.get("B") == (False, None)
    assert cache.get("A") == (True, b"a")
    assert cache.get("C") == (True, b"c")
