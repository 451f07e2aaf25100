"""A reply's event log on moto: numbered without gaps, written in batches, followed from any point and live until
its end, cancelled through its record from elsewhere, private to its user, and gone once expired; and the reply
that belongs to no conversation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from functions.chat import eventlog, limits, reply
from functions.chat.models import ChatRequest
from functions.conversations import service as conversations
from functions.identity import service as identity
from functions.usage import service as usage
from shared.auth.principal import Principal
from shared.auth.verify import verify_credential
from shared.aws import client
from shared.errors import NotFound, ValidationFailed
from shared.llm.types import Message
from shared.tables import CHAT
from tests.fakes.anthropic_server import FakeAnthropic

Event = dict[str, Any]
WORDS = " ".join(f"word{n}" for n in range(1, 151))
# A bound on waiting, so that a broken log fails the test instead of hanging it.
WAIT_SECONDS = 10


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def model(anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]) -> FakeAnthropic:
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    return anthropic_fake


def someone(aws: None, email: str) -> Principal:
    return verify_credential(identity.register(email, "correct horse battery", None).body.access_token)


@pytest.fixture
def principal(aws: None) -> Principal:
    return someone(aws, "log@example.com")


async def consume(prepared: reply.PreparedReply) -> list[tuple[int, Event]]:
    async with reply.recorded(prepared) as events:
        return [numbered async for numbered in events]


async def follow_all(stream_id: str, user_id: str, after: int = 0) -> list[tuple[int, Event]]:
    with anyio.fail_after(WAIT_SECONDS):
        record = await eventlog.open_stream(stream_id, user_id)
        return [numbered async for numbered in eventlog.follow(record, after)]


def log_items(stream_id: str) -> list[dict[str, Any]]:
    return client("dynamodb").query(
        TableName=CHAT.name_from_env(),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"REPLY#{stream_id}"}},
    )["Items"]


@pytest.mark.anyio
async def test_events_are_numbered_without_gaps_and_logged_in_batches(
    model: FakeAnthropic, principal: Principal
) -> None:
    model.reply(WORDS, chunk_size=2)  # hundreds of deltas: more than one batch
    prepared = await reply.prepare(principal, ChatRequest(message="count"))

    seen = await consume(prepared)

    assert [seq for seq, _ in seen] == list(range(1, len(seen) + 1))
    assert seen[-1][1] == {"type": "end", "stopReason": "end_turn"}
    items = log_items(prepared.message_id)
    record = next(item for item in items if item["sk"]["S"] == "RECORD")
    batches = sorted((int(i["first"]["N"]), int(i["last"]["N"])) for i in items if i["sk"]["S"] != "RECORD")
    assert len(batches) > 1
    assert [first for first, _ in batches] == [1] + [last + 1 for _, last in batches[:-1]]
    assert batches[-1][1] == len(seen) == int(record["lastSeq"]["N"])
    assert record["status"]["S"] == "ended"
    assert record["userId"]["S"] == principal.user_id
    assert await follow_all(prepared.message_id, principal.user_id) == seen


@pytest.mark.anyio
async def test_a_follower_gets_the_events_after_any_seq(model: FakeAnthropic, principal: Principal) -> None:
    model.reply("one two three four five six")
    prepared = await reply.prepare(principal, ChatRequest(message="count"))
    seen = await consume(prepared)

    for after in (0, 1, 4, len(seen) - 1, len(seen)):
        assert await follow_all(prepared.message_id, principal.user_id, after) == seen[after:]


@pytest.mark.anyio
async def test_a_second_reader_follows_a_running_reply_live_to_its_end(
    model: FakeAnthropic, principal: Principal
) -> None:
    model.reply("one two three four five six seven eight", chunk_delay=0.1)
    prepared = await reply.prepare(principal, ChatRequest(message="count slowly"))
    followed: list[tuple[int, Event]] = []

    async def second_reader() -> None:
        followed.extend(await follow_all(prepared.message_id, principal.user_id))

    async with anyio.create_task_group() as readers:
        readers.start_soon(second_reader)  # before the reply has started: it waits for the record
        seen = await consume(prepared)

    assert followed == seen
    assert followed[-1][1]["type"] == "end"


@pytest.mark.anyio
async def test_a_cancel_requested_elsewhere_closes_the_model_stream_and_keeps_the_partial_reply(
    model: FakeAnthropic, principal: Principal
) -> None:
    model.reply("one two three four five six seven eight", chunk_delay=0.3)
    prepared = await reply.prepare(principal, ChatRequest(message="count slowly"))
    seen: list[tuple[int, Event]] = []
    asked: list[bool] = []

    with anyio.fail_after(WAIT_SECONDS):
        async with reply.recorded(prepared) as events:
            async for seq, event in events:
                seen.append((seq, event))
                if event["type"] == "content" and not asked:
                    asked.append(await eventlog.request_cancel(prepared.message_id, principal.user_id))

    assert asked == [True]
    assert model.streams_closed_early == 1
    kinds = [event["type"] for _, event in seen]
    assert kinds[-2:] == ["usage", "end"]
    assert seen[-1][1]["stopReason"] == "cancelled"
    produced = "".join(event["delta"] for _, event in seen if event["type"] == "content")
    assert 0 < len(produced) < len("one two three four five six seven eight")
    assert prepared.conversation_id is not None
    history = conversations.list_messages(principal, prepared.conversation_id, limit=10, cursor=None).items
    assert [m.role for m in history] == ["user", "assistant"]
    assert history[-1].content == produced
    assert history[-1].metadata is not None
    assert history[-1].metadata["stopReason"] == "cancelled"
    assert history[-1].metadata["incomplete"] is True
    assert await eventlog.request_cancel(prepared.message_id, principal.user_id) is False


@pytest.mark.anyio
async def test_a_consumer_cancelled_mid_reply_still_leaves_an_ended_log(
    model: FakeAnthropic, principal: Principal
) -> None:
    model.reply("one two three four five six seven eight", chunk_delay=0.2)
    prepared = await reply.prepare(principal, ChatRequest(message="count slowly"))
    seen: list[tuple[int, Event]] = []

    async def consumer() -> None:
        async with reply.recorded(prepared) as events:
            async for numbered in events:
                seen.append(numbered)

    with anyio.move_on_after(0.7):
        await consumer()

    assert seen
    logged = await follow_all(prepared.message_id, principal.user_id)
    assert logged == seen
    record = next(item for item in log_items(prepared.message_id) if item["sk"]["S"] == "RECORD")
    assert record["status"]["S"] == "ended"


@pytest.mark.anyio
async def test_another_users_or_an_unknown_stream_is_not_found(aws: None, model: FakeAnthropic) -> None:
    owner, stranger = someone(aws, "owner@example.com"), someone(aws, "stranger@example.com")
    model.reply("private words")
    prepared = await reply.prepare(owner, ChatRequest(message="hello"))
    await consume(prepared)

    with pytest.raises(NotFound):
        await eventlog.open_stream(prepared.message_id, stranger.user_id)
    with pytest.raises(NotFound):
        await eventlog.request_cancel(prepared.message_id, stranger.user_id)
    with pytest.raises(NotFound):
        await eventlog.open_stream("01J00000000000000000000000", owner.user_id)


@pytest.mark.anyio
async def test_a_log_is_gone_once_expired(
    model: FakeAnthropic, principal: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    model.reply("short lived")
    prepared = await reply.prepare(principal, ChatRequest(message="hello"))
    await consume(prepared)
    assert await follow_all(prepared.message_id, principal.user_id)

    later = eventlog._now() + eventlog.KEPT_SECONDS + 1
    monkeypatch.setattr(eventlog, "_now", lambda: later)
    with pytest.raises(NotFound):
        await eventlog.open_stream(prepared.message_id, principal.user_id)


def test_resuming_after_a_last_event_id_or_after() -> None:
    stream = "01JABCDEFGHJKMNPQRSTVWXYZ0"
    assert eventlog.parse_after(stream, None, None) == 0
    assert eventlog.parse_after(stream, eventlog.event_id(stream, 12), None) == 12
    assert eventlog.parse_after(stream, eventlog.event_id(stream, 12), 3) == 12
    assert eventlog.parse_after(stream, None, 7) == 7
    for garbage in ("01JOTHERSTREAM0000000000000:3", f"{stream}:x", f"{stream}:-1", "nonsense"):
        with pytest.raises(ValidationFailed):
            eventlog.parse_after(stream, garbage, None)
    with pytest.raises(ValidationFailed):
        eventlog.parse_after(stream, None, -1)


@pytest.mark.anyio
async def test_a_stateless_reply_stores_no_conversation_and_records_its_usage_under_its_source(
    model: FakeAnthropic, principal: Principal
) -> None:
    model.reply("Better words.")
    attempts = reply.chain_for(None, None)
    admission = await anyio.to_thread.run_sync(lambda: limits.admit(principal.user_id))
    prepared = reply.stateless_reply(
        principal, admission, attempts, messages=[Message("user", "improve this")], source="enhance"
    )

    async with reply.streaming(prepared) as events:
        seen = [event async for event in events]

    assert seen[0]["type"] == "start"
    assert seen[0]["conversationId"] is None
    assert seen[0]["messageId"] == prepared.message_id
    assert "".join(e["delta"] for e in seen if e["type"] == "content") == "Better words."
    assert seen[-1] == {"type": "end", "stopReason": "end_turn"}
    assert conversations.conversation_stats(principal).conversations == 0
    records = client("dynamodb").query(
        TableName=CHAT.name_from_env(),
        KeyConditionExpression="pk = :pk AND begins_with(sk, :usage)",
        ExpressionAttributeValues={":pk": {"S": f"USER#{principal.user_id}"}, ":usage": {"S": "USAGE#"}},
    )["Items"]
    assert [(r["source"]["S"], r["messageId"]["S"], "conversationId" in r) for r in records] == [
        ("enhance", prepared.message_id, False)
    ]
    assert usage.usage_stats(principal.user_id, 1).totals.requests == 1


def test_a_model_this_stage_cannot_serve_is_refused(aws: None) -> None:
    with pytest.raises(ValidationFailed) as refused:
        reply.chain_for("no-such-model-anywhere", "no-such-provider")
    assert refused.value.error_code == "model_unavailable"


@pytest.mark.anyio
async def test_cancelling_before_the_model_answers_ends_the_reply_at_once(
    model: FakeAnthropic, principal: Principal
) -> None:
    model.hang(30)
    prepared = await reply.prepare(principal, ChatRequest(message="hello?"))

    async def cancel_soon() -> None:
        await asyncio.sleep(0.3)
        prepared.cancel.set()

    with anyio.fail_after(WAIT_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(cancel_soon)
            seen = await consume(prepared)

    assert [event["type"] for _, event in seen] == ["start", "usage", "end"]
    assert seen[-1][1]["stopReason"] == "cancelled"
