"""Failover between providers: who serves after a failure, what stops it, and the cool-down of failing providers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from shared.llm.failover import AttemptStarted, Cooldowns, StreamInterrupted, stream_with_failover
from shared.llm.types import (
    Finished,
    Message,
    ModelRequest,
    Provider,
    ProviderError,
    ProviderEvent,
    TextDelta,
    UsageReport,
)

REQUEST = ModelRequest(model="requested", messages=(Message("user", "hello"),))


class ScriptedProvider:
    """Streams "<name> says hi" unless a failure is queued: `fail` before content, `fail_after` after one delta."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[tuple[ProviderError, bool]] = []
        self.models: list[str] = []

    def fail(self, *, retryable: bool = True, status: int | None = 529, retry_after: float | None = None) -> None:
        error = ProviderError("boom", provider=self.name, retryable=retryable, status=status, retry_after=retry_after)
        self.failures.append((error, False))

    def fail_after_content(self) -> None:
        self.failures.append((ProviderError("dropped", provider=self.name, retryable=True), True))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        self.models.append(request.model)
        if self.failures:
            error, after_content = self.failures.pop(0)
            if after_content:
                yield TextDelta(f"{self.name} partial")
            raise error
        yield TextDelta(f"{self.name} says hi")
        yield UsageReport(3, 4)
        yield Finished("end_turn")

    async def check(self) -> None:
        return None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(
    attempts: Sequence[tuple[Provider, str]], cooldowns: Cooldowns | None = None, sleeps: list[float] | None = None
) -> list[ProviderEvent | AttemptStarted]:
    async def sleep(seconds: float) -> None:
        (sleeps if sleeps is not None else []).append(seconds)

    async def collect() -> list[ProviderEvent | AttemptStarted]:
        stream = stream_with_failover(
            REQUEST, attempts, cooldowns=cooldowns or Cooldowns(), max_retry_wait=2.0, sleep=sleep
        )
        return [event async for event in stream]

    return asyncio.run(collect())


def served_by(events: list[ProviderEvent | AttemptStarted]) -> str:
    return [event for event in events if isinstance(event, AttemptStarted)][-1].provider


def text(events: list[ProviderEvent | AttemptStarted]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def test_first_provider_serves_when_healthy() -> None:
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")

    events = run([(primary, "model-a"), (secondary, "model-b")])

    assert events[0] == AttemptStarted("primary", "model-a")
    assert text(events) == "primary says hi"
    assert primary.models == ["model-a"]
    assert secondary.models == []


@pytest.mark.parametrize("status", [529, 500, 429, None])
def test_retryable_failure_before_content_moves_to_the_next_provider(status: int | None) -> None:
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")
    primary.fail(status=status)

    events = run([(primary, "model-a"), (secondary, "model-b")])

    assert [event for event in events if isinstance(event, AttemptStarted)] == [
        AttemptStarted("primary", "model-a"),
        AttemptStarted("secondary", "model-b"),
    ]
    assert served_by(events) == "secondary"
    assert text(events) == "secondary says hi"
    assert secondary.models == ["model-b"]
    assert events[-1] == Finished("end_turn")


def test_non_retryable_failure_is_raised_without_failover() -> None:
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")
    primary.fail(retryable=False, status=401)

    with pytest.raises(ProviderError) as raised:
        run([(primary, "model-a"), (secondary, "model-b")])

    assert raised.value.status == 401
    assert secondary.models == []


def test_failure_after_content_is_stream_interrupted_with_the_partial_reply() -> None:
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")
    primary.fail_after_content()
    seen: list[ProviderEvent | AttemptStarted] = []

    async def collect() -> None:
        async for event in stream_with_failover(REQUEST, [(primary, "a"), (secondary, "b")], cooldowns=Cooldowns()):
            seen.append(event)

    with pytest.raises(StreamInterrupted) as raised:
        asyncio.run(collect())

    assert text(seen) == "primary partial"
    assert raised.value.partial_text == "primary partial"
    assert raised.value.provider == "primary"
    assert isinstance(raised.value, ProviderError)
    assert secondary.models == []


def test_when_every_attempt_fails_the_last_error_is_raised() -> None:
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")
    primary.fail(status=529)
    secondary.fail(status=503)

    with pytest.raises(ProviderError) as raised:
        run([(primary, "a"), (secondary, "b")])

    assert (raised.value.provider, raised.value.status, raised.value.retryable) == ("secondary", 503, True)


def test_when_every_provider_asked_to_wait_a_short_wait_is_waited_out() -> None:
    cooldowns = Cooldowns(clock=FakeClock())
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")
    cooldowns.hold("primary", 5)
    cooldowns.hold("secondary", 1.5)
    sleeps: list[float] = []

    events = run([(primary, "a"), (secondary, "b")], cooldowns, sleeps=sleeps)

    assert sleeps == [1.5]  # the soonest, within PROVIDER_MAX_RETRY_WAIT_SECONDS (2 here)
    assert served_by(events) == "secondary"
    assert primary.models == []


def test_when_every_provider_asked_to_wait_long_the_request_fails_without_a_call() -> None:
    cooldowns = Cooldowns(clock=FakeClock())
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")
    cooldowns.hold("primary", 30)
    cooldowns.hold("secondary", 45)
    sleeps: list[float] = []

    with pytest.raises(ProviderError) as raised:
        run([(primary, "a"), (secondary, "b")], cooldowns, sleeps=sleeps)

    assert (raised.value.provider, raised.value.retryable, raised.value.retry_after) == ("primary", True, 30)
    assert (primary.models, secondary.models, sleeps) == ([], [], [])


def test_a_provider_failing_repeatedly_cools_down_and_is_skipped() -> None:
    clock = FakeClock()
    cooldowns = Cooldowns(failures=3, seconds=30, clock=clock)
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")
    for _ in range(3):
        primary.fail()
        assert served_by(run([(primary, "a"), (secondary, "b")], cooldowns)) == "secondary"

    assert cooldowns.is_cooling("primary")
    events = run([(primary, "a"), (secondary, "b")], cooldowns)
    assert AttemptStarted("primary", "a") not in events
    assert served_by(events) == "secondary"
    assert primary.models == ["a", "a", "a"]

    clock.now += 31
    assert not cooldowns.is_cooling("primary")
    assert served_by(run([(primary, "a"), (secondary, "b")], cooldowns)) == "primary"


def test_success_resets_the_failure_count() -> None:
    cooldowns = Cooldowns(failures=3, seconds=30, clock=FakeClock())
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")
    for _ in range(2):
        primary.fail()
        run([(primary, "a"), (secondary, "b")], cooldowns)
    run([(primary, "a"), (secondary, "b")], cooldowns)  # primary succeeds
    for _ in range(2):
        primary.fail()
        run([(primary, "a"), (secondary, "b")], cooldowns)

    assert not cooldowns.is_cooling("primary")


def test_non_retryable_failures_do_not_cool_a_provider() -> None:
    cooldowns = Cooldowns(failures=1, seconds=30, clock=FakeClock())
    primary = ScriptedProvider("primary")
    primary.fail(retryable=False, status=400)

    with pytest.raises(ProviderError):
        run([(primary, "a")], cooldowns)

    assert not cooldowns.is_cooling("primary")


def test_when_every_provider_is_cooling_they_are_tried_anyway() -> None:
    cooldowns = Cooldowns(failures=1, seconds=30, clock=FakeClock())
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")
    cooldowns.record_failure("primary")
    cooldowns.record_failure("secondary")

    events = run([(primary, "a"), (secondary, "b")], cooldowns)

    assert served_by(events) == "primary"
    assert not cooldowns.is_cooling("primary")


def test_a_provider_asking_to_retry_later_is_left_alone_that_long() -> None:
    clock = FakeClock()
    cooldowns = Cooldowns(failures=3, seconds=30, clock=clock)
    primary, secondary = ScriptedProvider("primary"), ScriptedProvider("secondary")
    primary.fail(status=429, retry_after=20)
    assert served_by(run([(primary, "a"), (secondary, "b")], cooldowns)) == "secondary"

    clock.now += 19
    events = run([(primary, "a"), (secondary, "b")], cooldowns)
    assert AttemptStarted("primary", "a") not in events
    clock.now += 2
    assert served_by(run([(primary, "a"), (secondary, "b")], cooldowns)) == "primary"
