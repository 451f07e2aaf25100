"""What each event adds to the analytics counters (functions.analytics.counts), without storage."""

from __future__ import annotations

from decimal import Decimal

from functions.analytics.counts import dollars, increments, is_activity, pico_dollars
from shared.events import Event


def test_a_reply_counts_in_the_stage_its_model_agent_channel_and_the_length_it_reached() -> None:
    event = Event(
        type="reply.completed",
        user_id="u",
        data={"provider": "openai", "model": "gpt-4o-mini", "inputTokens": 10, "outputTokens": 5, "cost": "0.25",
              "latencyMs": 800, "timeToFirstTokenMs": None, "agentId": "a", "channel": "telegram", "citations": 2,
              "failed": True, "messageCount": 8},
    )  # fmt: skip

    counted = increments(event)

    assert counted.figures["STAGE"] == {
        "replies": 1, "failures": 1, "inputTokens": 10, "outputTokens": 5, "costPicoUsd": 250_000_000_000,
        "latencyMsSum": 800, "latencyCount": 1,
    }  # fmt: skip
    assert counted.names["MODEL#openai#gpt-4o-mini"] == {"provider": "openai", "model": "gpt-4o-mini"}
    assert counted.figures["AGENT#a"] == {"replies": 1, "citations": 2, "failures": 1}
    assert counted.figures["CHANNEL#telegram"] == {"failed": 1}
    assert [dimension for dimension in counted.figures if dimension.startswith("LENGTH#")] == ["LENGTH#8"]


def test_unknown_types_count_nothing_and_aggregates_make_no_one_active() -> None:
    assert increments(Event(type="memory.created", data={}, user_id="u")).empty
    assert is_activity(Event(type="memory.created", data={}, user_id="u"))
    requests = Event(type="requests.counted", data={"requests": 3, "errors": 1}, user_id=None)
    assert increments(requests).figures == {"STAGE": {"requests": 3, "errors": 1}}
    assert not is_activity(requests)
    assert not is_activity(Event(type="connection.closed", data={}, user_id="u"))
    assert not is_activity(Event(type="user.login", data={"outcome": "failure"}, user_id="u", kind="audit"))
    assert is_activity(Event(type="user.login", data={"outcome": "success"}, user_id="u", kind="audit"))


def test_bad_figures_count_as_nothing_rather_than_failing_the_batch() -> None:
    event = Event(type="reply.completed", user_id="u", data={"inputTokens": -4, "outputTokens": "9", "cost": "NaN"})
    counted = increments(event)
    assert counted.figures["STAGE"] == {"replies": 1}


def test_cost_is_counted_in_exact_pico_dollars() -> None:
    assert pico_dollars(Decimal("0.000000001")) == 1000
    assert dollars(pico_dollars(Decimal("0.000123")) * 3) == "0.000369"
    assert dollars(0) == "0"
