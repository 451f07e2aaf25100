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
DEFAULT_MAX_RETRY_WAIT_SECONDS = 2.0


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
        self._lock = threading.Lock()

    def is_cooling(self, provider: str) -> bool:
        with self._lock:
            until = self._cooling_until.get(provider)
            return until is not None and self._clock() < until

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
            self._cooling_until[provider] = max(until, self._cooling_until.get(provider, until))

    def record_success(self, provider: str) -> None:
        with self._lock:
            self._consecutive.pop(provider, None)
            self._cooling_until.pop(provider, None)


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
    warm = [attempt for attempt in attempts if not cooldowns.is_cooling(attempt[0].name)]
    # When every provider is cooling, trying one is better than failing without a call.
    plan = warm or list(attempts)
    last_error: ProviderError | None = None
    for position, (provider, model) in enumerate(plan):
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
            upcoming = plan[position + 1] if position + 1 < len(plan) else None
            # Retry-After speaks for the provider that sent it: worth waiting out only before asking it again.
            if (
                upcoming is not None
                and upcoming[0].name == provider.name
                and error.retry_after is not None
                and error.retry_after <= max_retry_wait
            ):
                await sleep(error.retry_after)
            continue
        cooldowns.record_success(provider.name)
        return
    assert last_error is not None
    raise last_error


def _log_failover(provider: str, model: str, error: ProviderError) -> None:
    from shared.observability import logger

    logger.warning(
        "provider attempt failed",
        extra={"provider": provider, "model": model, "status": error.status, "error": str(error)},
    )
