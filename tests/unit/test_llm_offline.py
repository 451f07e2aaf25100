"""The offline model: deterministic, labelled, quoting the user, metered like a real one."""

from __future__ import annotations

import asyncio
import math

from shared.llm.providers.offline import OfflineProvider
from shared.llm.types import Finished, Message, ModelRequest, ProviderEvent, TextDelta, UsageReport


def run(request: ModelRequest) -> list[ProviderEvent]:
    async def collect() -> list[ProviderEvent]:
        return [event async for event in OfflineProvider().stream(request)]

    return asyncio.run(collect())


REQUEST = ModelRequest(
    model="stratus-offline",
    messages=(Message("user", "First question"), Message("assistant", "An answer"), Message("user", "What is 2+2?")),
    system="You are helpful.",
)


def test_offline_reply_is_deterministic_and_says_what_it_is() -> None:
    first, second = run(REQUEST), run(REQUEST)

    assert first == second
    text = "".join(event.text for event in first if isinstance(event, TextDelta))
    assert "offline model" in text
    assert "no AI provider is configured" in text
    assert '"What is 2+2?"' in text


def test_offline_streams_word_by_word_then_usage_then_finished() -> None:
    events = run(REQUEST)

    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert len(deltas) > 10
    assert all(len(delta.text.split()) == 1 for delta in deltas)
    assert isinstance(events[-2], UsageReport)
    assert events[-1] == Finished("end_turn")
    text = "".join(delta.text for delta in deltas)
    prompt = "You are helpful.\nFirst question\nAn answer\nWhat is 2+2?"
    assert events[-2] == UsageReport(math.ceil(len(prompt) / 4), math.ceil(len(text) / 4))


def test_offline_serves_any_model_id_and_truncates_long_quotes() -> None:
    events = run(ModelRequest(model="gpt-5", messages=(Message("user", "word " * 100),)))

    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    assert "(you asked for gpt-5)" in text
    assert "…" in text


def test_offline_respects_max_tokens() -> None:
    events = run(ModelRequest(model="stratus-offline", messages=(Message("user", "hi"),), max_tokens=5))

    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    assert math.ceil(len(text) / 4) <= 5
    assert events[-1] == Finished("max_tokens")


def test_offline_stops_before_the_first_stop_sequence_it_would_say() -> None:
    events = run(ModelRequest(model="stratus-offline", messages=REQUEST.messages, stop_sequences=("zzz", "provider")))

    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    assert text == "This is the Stratus offline model: no AI "
    assert events[-1] == Finished("stop_sequence", "provider")


def test_offline_ignores_stop_sequences_it_would_not_say() -> None:
    assert run(ModelRequest(model="stratus-offline", messages=REQUEST.messages, stop_sequences=("zzz",))) == run(
        ModelRequest(model="stratus-offline", messages=REQUEST.messages)
    )
