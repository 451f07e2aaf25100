"""Chat's rate limits: per user, requests, tokens and cost in a window; per stage, a daily cost ceiling.

A request is admitted by one conditional counter update, so under any concurrency no more requests than the
limit get through. Tokens and cost are known only once a reply ends: they are added then, and a window whose
tokens or cost are spent admits nothing more until it ends.

The stage's spend is one item every chat request would read (a hot key). A container reads it at most every
`STAGE_SPEND_FRESH_SECONDS` and adds what it spends itself as it goes, so what other containers spend shows
within that time: the ceiling is a daily safety net, already passed by the replies under way when it is reached.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from shared.concurrency import together
from shared.errors import RateLimited
from shared.lazy import LazyModule
from shared.settings import get_settings

if TYPE_CHECKING:
    from functions.chat import store
else:
    store = LazyModule("functions.chat.store")

STAGE_SPEND_FRESH_SECONDS = 5.0


@dataclass(frozen=True)
class Admission:
    """A request counted in its user's window: what it used is added to the same window when it ends."""

    user_id: str
    window_start: int
    window_end: int
    day: date


def admit(user_id: str, *, requests: int = 1, now: float | None = None) -> Admission:
    """Count `requests` model requests (a playground comparison counts one per model) as one admission, all or
    none: `RateLimited` naming the limit that is full, and when to retry, if fewer than `requests` remain."""
    settings = get_settings()
    moment = time.time() if now is None else now
    window_start = int(moment) - int(moment) % settings.chat_window_seconds
    window_end = window_start + settings.chat_window_seconds
    day = datetime.fromtimestamp(moment, UTC).date()

    def count() -> None:
        store.count_requests(
            user_id,
            window_start,
            window_end,
            requests=requests,
            max_requests=settings.chat_requests_per_window,
            max_tokens=settings.chat_tokens_per_window,
            max_cost=settings.chat_cost_per_window_usd,
        )

    try:
        stage_spent = _stage_spend.known(day)
        if stage_spent is None:
            # The stage's total and the user's counter are independent round trips: make them at the same time.
            stage_spent, _ = together(lambda: store.stage_cost(day), count)
            _stage_spend.remember(day, stage_spent)
        else:
            count()
    except store.LimitRefusedError as refusal:
        limit = _limit_name(refusal.counts, requests)
        raise RateLimited(
            f"You have reached your {limit} limit for now",
            retry_after_seconds=int(window_end - moment),
            limit=limit,
        ) from None
    if stage_spent >= settings.stage_daily_cost_ceiling_usd:
        tomorrow = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        raise RateLimited(
            "This service has reached its spending limit for today",
            retry_after_seconds=int(tomorrow.timestamp() - moment),
            limit="stage_daily_cost",
        )
    return Admission(user_id, window_start, window_end, day)


def settle(admission: Admission, *, tokens: int, cost_usd: Decimal) -> None:
    """Add what an admitted request used to its window and to the stage's day."""
    store.spend(admission.user_id, admission.window_start, admission.day, tokens, cost_usd)
    _stage_spend.add(admission.day, cost_usd)


def release(admission: Admission) -> None:
    """Give back an admission's request: one refused (an unknown or inactive agent) after it was counted,
    alongside the reads that refused it, is not counted against the user."""
    store.uncount_requests(admission.user_id, admission.window_start, 1)


def remaining(user_id: str, *, now: float | None = None) -> dict[str, object]:
    """What the user may still use in the current window (for the dashboard)."""
    settings = get_settings()
    moment = time.time() if now is None else now
    window_start = int(moment) - int(moment) % settings.chat_window_seconds
    counts = store.window_counts(user_id, window_start)
    return {
        "windowSeconds": settings.chat_window_seconds,
        "resetsAt": datetime.fromtimestamp(window_start + settings.chat_window_seconds, UTC).isoformat(),
        "requests": max(0, settings.chat_requests_per_window - counts.requests),
        "tokens": max(0, settings.chat_tokens_per_window - counts.tokens),
        "costUsd": str(max(Decimal(0), settings.chat_cost_per_window_usd - counts.cost_usd)),
    }


def _limit_name(counts: store.WindowCounts, requests: int) -> str:
    settings = get_settings()
    if counts.requests + requests > settings.chat_requests_per_window:
        return "requests_per_window"
    if counts.tokens >= settings.chat_tokens_per_window:
        return "tokens_per_window"
    return "cost_per_window"


class _StageSpend:
    """The stage's spend today as this container knows it: read at most every `STAGE_SPEND_FRESH_SECONDS`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._day: date | None = None
        self._spent = Decimal(0)
        self._read_at = 0.0

    def known(self, day: date) -> Decimal | None:
        with self._lock:
            fresh = time.monotonic() - self._read_at < STAGE_SPEND_FRESH_SECONDS
            return self._spent if self._day == day and fresh else None

    def remember(self, day: date, spent: Decimal) -> None:
        with self._lock:
            self._day, self._spent, self._read_at = day, spent, time.monotonic()

    def add(self, day: date, cost: Decimal) -> None:
        with self._lock:
            if self._day == day:
                self._spent += cost

    def forget(self) -> None:
        with self._lock:
            self._day = None


_stage_spend = _StageSpend()


def forget_stage_spend() -> None:
    """Drop the stage's spend this container knows (tests and local mode start AWS afresh)."""
    _stage_spend.forget()
