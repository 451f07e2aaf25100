"""Chat limits hold under concurrency: they rest on conditional counter updates, not on timing."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from functions.chat import jobs, limits
from shared.errors import RateLimited
from shared.settings import get_settings
from tests.integration.jobs_pages import delete_all

NOW = 1_800_000_000.0  # inside one window of any length that divides it


@pytest.fixture
def chat_limits(monkeypatch: pytest.MonkeyPatch, aws: None) -> Iterator[None]:
    monkeypatch.setenv("CHAT_REQUESTS_PER_WINDOW", "50")
    monkeypatch.setenv("CHAT_TOKENS_PER_WINDOW", "10000")
    monkeypatch.setenv("CHAT_COST_PER_WINDOW_USD", "1.00")
    monkeypatch.setenv("STAGE_DAILY_COST_CEILING_USD", "5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("chat_limits")
def test_a_hundred_concurrent_requests_against_a_limit_of_fifty_admit_exactly_fifty() -> None:
    def attempt(_: int) -> str:
        try:
            limits.admit("user-1", now=NOW)
        except RateLimited as refusal:
            return refusal.limit
        return "admitted"

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(100)))
    assert outcomes.count("admitted") == 50
    assert outcomes.count("requests_per_window") == 50
    # Another user's window is their own.
    limits.admit("user-2", now=NOW)


@pytest.mark.usefixtures("chat_limits")
def test_spent_tokens_or_cost_close_the_window_until_it_ends() -> None:
    admission = limits.admit("user-1", now=NOW)
    limits.settle(admission, tokens=10_000, cost_usd=Decimal("0.01"))
    with pytest.raises(RateLimited) as refusal:
        limits.admit("user-1", now=NOW + 1)
    assert refusal.value.limit == "tokens_per_window"
    assert refusal.value.retry_after_seconds == admission.window_end - int(NOW) - 1
    limits.admit("user-1", now=admission.window_end)  # a new window

    costly = limits.admit("user-3", now=NOW)
    limits.settle(costly, tokens=10, cost_usd=Decimal("1.00"))
    with pytest.raises(RateLimited) as refusal:
        limits.admit("user-3", now=NOW)
    assert refusal.value.limit == "cost_per_window"


@pytest.mark.usefixtures("chat_limits")
def test_the_stage_cost_ceiling_stops_everyone_until_tomorrow() -> None:
    for number in range(5):
        limits.settle(limits.admit(f"spender-{number}", now=NOW), tokens=1, cost_usd=Decimal("1"))
    with pytest.raises(RateLimited) as refusal:
        limits.admit("newcomer", now=NOW)
    assert refusal.value.limit == "stage_daily_cost"
    assert refusal.value.retry_after_seconds == 16 * 3600  # NOW is 08:00 UTC: until midnight
    limits.admit("newcomer", now=NOW + 86400)


@pytest.mark.usefixtures("chat_limits")
def test_remaining_reports_what_is_left_in_the_window() -> None:
    admission = limits.admit("user-1", now=NOW)
    limits.settle(admission, tokens=1234, cost_usd=Decimal("0.25"))
    assert limits.remaining("user-1", now=NOW) | {"resetsAt": None} == {
        "windowSeconds": 3600,
        "resetsAt": None,
        "requests": 49,
        "tokens": 8766,
        "costUsd": "0.75",
    }


@pytest.mark.usefixtures("chat_limits")
def test_what_other_containers_spend_reaches_the_ceiling_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.chat import store

    limits.admit("reader", now=NOW)  # this container reads the stage's spend: nothing yet
    today = datetime.fromtimestamp(NOW, UTC).date()
    store.spend("elsewhere", int(NOW), today, 1, Decimal("5"))  # another container settles a costly reply
    limits.admit("soon-after", now=NOW)  # not seen yet...

    monkeypatch.setattr(limits, "STAGE_SPEND_FRESH_SECONDS", 0.0)
    with pytest.raises(RateLimited) as refusal:  # ...until the figure is read again
        limits.admit("a-bit-later", now=NOW)
    assert refusal.value.limit == "stage_daily_cost"


@pytest.mark.usefixtures("chat_limits")
def test_deleting_a_users_data_takes_their_limit_windows_and_only_theirs() -> None:
    from functions.chat import store

    for user_id in ("leaver", "stayer"):
        for window in range(30):  # more than one BatchWriteItem of keys
            admission = limits.admit(user_id, now=NOW - window * get_settings().chat_window_seconds)
            limits.settle(admission, tokens=10, cost_usd=Decimal("0.01"))

    assert delete_all(jobs.delete_page, "leaver", limit=12) == (30, 3)
    assert store.window_counts("leaver", admission.window_start).requests == 0
    assert store.window_counts("stayer", admission.window_start).requests == 1
    assert jobs.delete_page("leaver", None, 12).deleted == 0


@pytest.mark.usefixtures("chat_limits")
def test_several_requests_are_counted_all_or_none() -> None:
    from functions.chat import store

    window_start = limits.admit("user-1", requests=48, now=NOW).window_start
    with pytest.raises(RateLimited) as refusal:
        limits.admit("user-1", requests=3, now=NOW)  # two left: none of the three is counted
    assert refusal.value.limit == "requests_per_window"
    assert store.window_counts("user-1", window_start).requests == 48
    limits.admit("user-1", requests=2, now=NOW)
    assert store.window_counts("user-1", window_start).requests == 50
    with pytest.raises(RateLimited):
        limits.admit("user-1", now=NOW)


@pytest.mark.usefixtures("chat_limits")
def test_more_requests_than_a_whole_window_holds_are_refused_without_counting() -> None:
    from functions.chat import store

    with pytest.raises(RateLimited) as refusal:
        limits.admit("user-1", requests=51, now=NOW)
    assert refusal.value.limit == "requests_per_window"
    assert store.window_counts("user-1", limits.admit("user-1", now=NOW).window_start).requests == 1


@pytest.mark.usefixtures("chat_limits")
def test_concurrent_multi_request_admissions_never_pass_the_limit_together() -> None:
    from functions.chat import store

    def attempt(_: int) -> int:
        try:
            limits.admit("user-1", requests=6, now=NOW)
        except RateLimited:
            return 0
        return 6

    with ThreadPoolExecutor(max_workers=20) as pool:
        counted = sum(pool.map(attempt, range(40)))
    # 50 hold eight admissions of six; the two left over cannot take a ninth.
    assert counted == 48
    window_start = int(NOW) - int(NOW) % get_settings().chat_window_seconds
    assert store.window_counts("user-1", window_start).requests == 48
    limits.admit("user-1", requests=2, now=NOW)
