"""One reply streamed from the first provider of an ordered chain that can serve it.

A retryable failure before any content moves on to the next attempt; after content has streamed it cannot (the
user has seen half a reply) and surfaces as `StreamInterrupted`. A provider that keeps failing is skipped for a
cool-down period so a request does not pay its timeout every time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from shared.llm.types import ModelRequest, Provider, ProviderError, ProviderEvent, TextDelta, ToolUseRequested

DEFAULT_FAILURES_BEFORE_COOLDOWN = 3
DEFAULT_COOLDOWN_SECONDS = 30.0


@dataclass(frozen=True)
class AttemptStarted:
    """Yielded as each attempt begins: the last one before content names who served the reply."""

    provider: str
    model: str


class StreamInterrupted(ProviderError):
    """The provider failed after part of the reply had streamed; `partial_text` is what the user already saw."""

    def __init__(self, cause: ProviderError, *, model: str, partial_text: str) -> None:
        super().__init__(
            f"reply interrupted: {cause}",
            provider=cause.provider,
            retryable=cause.retryable,
            status=cause.status,
            retry_after=cause.retry_after,
        )
        self.cause = cause
        self.model = model
        self.partial_text = partial_text


class Clock(Protocol):
    def __call__(self) -> float: ...


class Cooldowns:
    """Consecutive retryable failures per provider; `failures` in a row cool a provider for `seconds`.
    Per container: each Lambda learns on its own, which is enough to stop paying a dead provider's timeout."""

    def __init__(
        self,
        *,
        failures: int = DEFAULT_FAILURES_BEFORE_COOLDOWN,
        seconds: float = DEFAULT_COOLDOWN_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.failures = failures
        self.seconds = seconds
        self._clock = clock
        self._consecutive: dict[str, int] = {}
        self._cooling_until: dict[str, float] = {}
        self._held_until: dict[str, float] = {}  # what providers' own Retry-After asked for
        self._lock = threading.Lock()

    def is_cooling(self, provider: str) -> bool:
        with self._lock:
            now = self._clock()
            return any(now < until.get(provider, now) for until in (self._cooling_until, self._held_until))

    def held_for(self, provider: str) -> float:
        """Seconds left of what the provider's `Retry-After` asked for (0 when nothing)."""
        with self._lock:
            return max(0.0, self._held_until.get(provider, 0.0) - self._clock())

    def record_failure(self, provider: str, *, retry_after: float | None = None) -> None:
        """Count a retryable failure; a `Retry-After` keeps later requests off the provider as long as it asked."""
        if retry_after:
            self.hold(provider, retry_after)
        with self._lock:
            count = self._consecutive.get(provider, 0) + 1
            self._consecutive[provider] = count
            if count >= self.failures:
                self._cooling_until[provider] = self._clock() + self.seconds
                # Once the period is over the provider gets a fresh count: one more failure does not re-cool it.
                self._consecutive[provider] = 0

    def hold(self, provider: str, seconds: float) -> None:
        """Skip `provider` for `seconds`: what its own `Retry-After` asked for."""
        with self._lock:
            until = self._clock() + seconds
            self._held_until[provider] = max(until, self._held_until.get(provider, until))

    def record_success(self, provider: str) -> None:
        with self._lock:
            self._consecutive.pop(provider, None)
            self._cooling_until.pop(provider, None)
            self._held_until.pop(provider, None)


_cooldowns: Cooldowns | None = None
_cooldowns_lock = threading.Lock()


def shared_cooldowns() -> Cooldowns:
    """The container's cool-down state, tuned by PROVIDER_COOLDOWN_FAILURES / PROVIDER_COOLDOWN_SECONDS."""
    global _cooldowns  # noqa: PLW0603 (one state per container, built on first use)
    with _cooldowns_lock:
        if _cooldowns is None:
            from shared.llm.config import get_llm_config

            config = get_llm_config()
            _cooldowns = Cooldowns(failures=config.cooldown_failures, seconds=config.cooldown_seconds)
        return _cooldowns


def forget_cooldowns() -> None:
    global _cooldowns  # noqa: PLW0603
    with _cooldowns_lock:
        _cooldowns = None


async def stream_with_failover(
    request: ModelRequest,
    attempts: Sequence[tuple[Provider, str]],
    *,
    cooldowns: Cooldowns | None = None,
    max_retry_wait: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncGenerator[ProviderEvent | AttemptStarted, None]:
    """Stream `request` from the first of `attempts` (provider, model id) that serves it.

    Yields `AttemptStarted` as each attempt begins, then that provider's events. Raises the non-retryable
    `ProviderError` at once, `StreamInterrupted` when a provider fails after content, and the last error when
    every attempt failed.
    """
    if not attempts:
        raise ValueError("no provider to try")
    if cooldowns is None:
        cooldowns = shared_cooldowns()
    if max_retry_wait is None:
        from shared.llm.config import get_llm_config

        max_retry_wait = get_llm_config().max_retry_wait
    plan = [attempt for attempt in attempts if not cooldowns.is_cooling(attempt[0].name)]
    if not plan:
        plan = await _when_all_cool(attempts, cooldowns, max_retry_wait, sleep)
    last_error: ProviderError | None = None
    for provider, model in plan:
        yield AttemptStarted(provider.name, model)
        partial: list[str] = []
        content_sent = False
        try:
            async for event in provider.stream(replace(request, model=model)):
                if isinstance(event, TextDelta):
                    partial.append(event.text)
                    content_sent = True
                elif isinstance(event, ToolUseRequested):
                    content_sent = True
                yield event
        except ProviderError as error:
            if error.retryable:
                cooldowns.record_failure(provider.name, retry_after=error.retry_after)
            if content_sent:
                raise StreamInterrupted(error, model=model, partial_text="".join(partial)) from error
            if not error.retryable:
                raise
            last_error = error
            _log_failover(provider.name, model, error)
            continue
        cooldowns.record_success(provider.name)
        return
    assert last_error is not None
    raise last_error


async def _when_all_cool(
    attempts: Sequence[tuple[Provider, str]],
    cooldowns: Cooldowns,
    max_retry_wait: float,
    sleep: Callable[[float], Awaitable[None]],
) -> list[tuple[Provider, str]]:
    """Whom to ask when every provider is cooling. Those cooled only by our own failure count are tried anyway:
    better than failing without a call. A provider that asked to be left alone (`Retry-After`) is not asked
    sooner: its wait is waited out when short, else the request fails at once, saying how long to wait."""
    unheld = [attempt for attempt in attempts if cooldowns.held_for(attempt[0].name) <= 0]
    if unheld:
        return unheld
    soonest = min(attempts, key=lambda attempt: cooldowns.held_for(attempt[0].name))
    wait = cooldowns.held_for(soonest[0].name)
    if wait > max_retry_wait:
        raise ProviderError(
            f"every provider asked to be retried later; the soonest, {soonest[0].name}, in {wait:.0f} s",
            provider=soonest[0].name,
            retryable=True,
            retry_after=wait,
        )
    await sleep(wait)
    return [soonest]


def _log_failover(provider: str, model: str, error: ProviderError) -> None:
    from shared.observability import logger

    logger.warning(
        "provider attempt failed",
        extra={"provider": provider, "model": model, "status": error.status, "error": str(error)},
    )
