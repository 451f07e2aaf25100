"""A reply's events, numbered and kept in the chat table for 10 minutes after its end, so that any container can
resume it (a client that lost its connection), follow it (a second reader) or cancel it.

A stream's id is a ULID: a chat reply's `messageId`, an enhancement's `sessionId`. Its SSE ids are
`<streamId>:<seq>`, seq counting the reply's events from 1 without gaps.

Items (pk / sk):
  REPLY#<streamId> / RECORD                  userId, kind (chat, enhance), status (running, ended),
                                             cancelRequested, lastSeq, startedAt, endedAt, deadline, ttl
  REPLY#<streamId> / EVENTS#<lastSeq:08d>    first, last, events (JSON array of [seq, event]), ttl

The events are written in small batches by a background flusher (every 100 ms, sooner only when 256 KB are
pending, far below an item's 400 KB), never on the path of the first token; the first flush writes RECORD and the
first batch in one transaction, and every later one a batch with RECORD's new `lastSeq` (and, at the end, its
status). A reader follows until it has every event up to `lastSeq` of an ended record. RECORD sorts after every
EVENTS item, so one Query from a seq on returns the missing events and then the record.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from shared.aws import client
from shared.concurrency import complete_despite_cancellation
from shared.errors import NotFound, ValidationFailed
from shared.observability import logger
from shared.tables import CHAT

Event = dict[str, Any]

# A running reply is followed for at most this long after it started (a reply never runs longer).
RUNNING_SECONDS = 900
# How long the log is kept after its end (or after its deadline, for one that never ended).
KEPT_SECONDS = 600
FLUSH_EVERY = 0.1
# A batch is written when it is this big without waiting for the 100 ms (an item holds 400 KB at most). No count
# of events flushes sooner: a fast reply would then write several times a second, on a thread sharing the GIL
# with the stream (measured: 0.2 ms a chunk more), for a reader who waits at most 100 ms anyway.
FLUSH_BYTES = 256 * 1024
# The record is written this long after the reply starts even if no event came yet (a model slow to answer can
# still be cancelled or waited for).
RECORD_AT_LATEST = 0.25
CANCEL_POLL = 0.3
FOLLOW_POLL = 0.1
# How long a reader waits for a record not yet flushed (a client that has just received `start`).
OPEN_WAIT = 1.0
OPEN_POLL = 0.05


def _now() -> float:
    return time.time()


def _table() -> str:
    return CHAT.name_from_env()


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _record_key(stream_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"REPLY#{stream_id}"}, "sk": {"S": "RECORD"}}


@dataclass(frozen=True)
class ReplyRecord:
    stream_id: str
    user_id: str
    kind: str
    status: str
    cancel_requested: bool
    last_seq: int
    started_at: int
    ended_at: int | None
    deadline: int
    ttl: int

    @property
    def running(self) -> bool:
        return self.status == "running"


def _record_from(stream_id: str, item: dict[str, Any]) -> ReplyRecord:
    return ReplyRecord(
        stream_id=stream_id,
        user_id=item["userId"]["S"],
        kind=item["kind"]["S"],
        status=item["status"]["S"],
        cancel_requested=item.get("cancelRequested", {}).get("BOOL", False),
        last_seq=int(item["lastSeq"]["N"]),
        started_at=int(item["startedAt"]["N"]),
        ended_at=int(item["endedAt"]["N"]) if "endedAt" in item else None,
        deadline=int(item["deadline"]["N"]),
        ttl=int(item["ttl"]["N"]),
    )


# SSE ids ---------------------------------------------------------------------------------------------------


def event_id(stream_id: str, seq: int) -> str:
    """The SSE id of a stream's event."""
    return f"{stream_id}:{seq}"


def parse_after(stream_id: str, last_event_id: str | None, after: int | None) -> int:
    """The seq to resume after: from a `Last-Event-ID` of this stream (it wins: a browser's `EventSource` sends it
    on reconnecting), else `?after=`, else 0 (from the first event). An id of another stream, or not an id, is a
    422."""
    if last_event_id is not None:
        stream, _, seq = last_event_id.strip().rpartition(":")
        if stream != stream_id or not seq.isdigit():
            raise ValidationFailed("Last-Event-ID is not an event of this stream", code="invalid_event_id")
        return int(seq)
    if after is not None:
        if after < 0:
            raise ValidationFailed("after must be 0 or more", code="invalid_event_id")
        return after
    return 0


# Storage ---------------------------------------------------------------------------------------------------


def _get_record(stream_id: str) -> ReplyRecord | None:
    item = client("dynamodb").get_item(TableName=_table(), Key=_record_key(stream_id), ConsistentRead=True).get("Item")
    return _record_from(stream_id, item) if item else None


def _readable(record: ReplyRecord | None, user_id: str) -> bool:
    return record is not None and record.user_id == user_id and record.ttl > _now()


async def _wait_for_record(stream_id: str, user_id: str) -> ReplyRecord:
    """The user's record of `stream_id`, waiting up to `OPEN_WAIT` for one not yet written; NotFound otherwise (no
    such stream, expired, or another user's)."""
    give_up = time.monotonic() + OPEN_WAIT
    while True:
        record = await anyio.to_thread.run_sync(_get_record, stream_id)
        if record is not None:
            if not _readable(record, user_id):
                break
            return record
        if time.monotonic() >= give_up:
            break
        await anyio.sleep(OPEN_POLL)
    raise NotFound("No such stream", code="not_found")


def _read_after(stream_id: str, after: int) -> tuple[list[tuple[int, Event]], ReplyRecord | None]:
    """The logged events after seq `after`, and the record as it was when they were read (None: gone)."""
    dynamodb = client("dynamodb")
    arguments: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND sk > :from",
        "ExpressionAttributeValues": {":pk": {"S": f"REPLY#{stream_id}"}, ":from": {"S": f"EVENTS#{after:08d}"}},
        "ConsistentRead": True,
    }
    events: list[tuple[int, Event]] = []
    record: ReplyRecord | None = None
    while True:
        page = dynamodb.query(**arguments)
        for item in page["Items"]:
            if item["sk"]["S"] == "RECORD":
                record = _record_from(stream_id, item)
            else:
                events.extend((seq, event) for seq, event in json.loads(item["events"]["S"]) if seq > after)
        if "LastEvaluatedKey" not in page:
            return events, record
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _request_cancel(stream_id: str, user_id: str) -> bool | None:
    """Set cancelRequested on the user's running record: True; False when it has ended; None when there is no
    record of the user's (yet)."""
    dynamodb = client("dynamodb")
    try:
        dynamodb.update_item(
            TableName=_table(),
            Key=_record_key(stream_id),
            UpdateExpression="SET cancelRequested = :yes",
            ConditionExpression="attribute_exists(pk) AND userId = :user AND #status = :running AND #ttl > :now",
            ExpressionAttributeNames={"#status": "status", "#ttl": "ttl"},
            ExpressionAttributeValues={
                ":yes": {"BOOL": True},
                ":user": {"S": user_id},
                ":running": {"S": "running"},
                ":now": _n(int(_now())),
            },
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        record = _get_record(stream_id)
        return False if _readable(record, user_id) else None
    return True


# Reading ---------------------------------------------------------------------------------------------------


async def open_stream(stream_id: str, user_id: str) -> ReplyRecord:
    """The user's stream `stream_id` (NotFound: no such stream, expired, or another user's). A record not yet
    flushed (the reply has just started) is waited for, up to about a second."""
    return await _wait_for_record(stream_id, user_id)


async def follow(record: ReplyRecord, after: int) -> AsyncGenerator[tuple[int, Event], None]:
    """The stream's events after seq `after`, then its new events as they are logged (polling), until its `end`
    event, or until the record has ended (every event yielded), expired, or passed its deadline."""
    seen = after
    while True:
        events, current = await anyio.to_thread.run_sync(_read_after, record.stream_id, seen)
        for seq, event in events:
            if seq != seen + 1:  # a batch still being written: read again from the gap
                break
            seen = seq
            yield seq, event
            if event.get("type") == "end":
                return
        if current is None or current.ttl <= _now():
            return
        if not current.running and seen >= current.last_seq:
            return
        if current.running and _now() > current.deadline:
            return
        await anyio.sleep(FOLLOW_POLL)


async def request_cancel(stream_id: str, user_id: str) -> bool:
    """Ask the user's stream to stop, whichever container runs it: True if it was still running (it ends within
    about a second, as `cancelled`), False if it had already ended. NotFound: no such stream, expired, or another
    user's (a record not yet flushed is waited for, up to about a second)."""
    return await anyio.to_thread.run_sync(request_cancel_blocking, stream_id, user_id)


def request_cancel_blocking(stream_id: str, user_id: str) -> bool:
    """`request_cancel`, for synchronous callers (the WebSocket handler)."""
    give_up = time.monotonic() + OPEN_WAIT
    while True:
        outcome = _request_cancel(stream_id, user_id)
        if outcome is not None:
            return outcome
        if time.monotonic() >= give_up or _get_record(stream_id) is not None:
            raise NotFound("No such stream", code="not_found")
        time.sleep(OPEN_POLL)


# Writing ---------------------------------------------------------------------------------------------------


@dataclass
class ReplyLog:
    """The log one running reply writes: `numbered` passes its events on, numbered, and queues them; `running`
    keeps the flusher and the cancel watcher going for the block, and flushes the rest and ends the record when
    the block is left."""

    stream_id: str
    user_id: str
    kind: str
    started_at: int = field(default_factory=lambda: int(_now()))
    last_seq: int = 0
    _pending: list[str] = field(default_factory=list)
    _pending_first: int = 1
    _pending_bytes: int = 0
    _record_written: bool = False
    # Whether the model's first token (or the reply's end) has been passed on: no write starts before it.
    _first_token_out: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when a batch is full (`FLUSH_BYTES`): it is flushed without waiting for the 100 ms.
    _full: asyncio.Event = field(default_factory=asyncio.Event)
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def deadline(self) -> int:
        return self.started_at + RUNNING_SECONDS

    async def numbered(self, events: AsyncIterator[Event]) -> AsyncGenerator[tuple[int, Event], None]:
        async for event in events:
            seq = self.last_seq + 1
            self.last_seq = seq
            encoded = f"[{seq},{json.dumps(event, default=str, separators=(',', ':'))}]"
            self._pending.append(encoded)
            self._pending_bytes += len(encoded)
            yield seq, event
            # The consumer has passed the event on and asks for the next: a write may start now. The first waits
            # for the first token to be out (a `start` alone does not wake it), so it never shares the CPU with it.
            self._first_token_out = self._first_token_out or event.get("type") not in ("start", "tool_approval")
            if self._first_token_out and self._pending:
                self._wake.set()
                if self._pending_bytes >= FLUSH_BYTES:
                    self._full.set()

    @asynccontextmanager
    async def running(self, cancel: anyio.Event) -> AsyncIterator[None]:
        flusher = asyncio.ensure_future(self._flush_while_running())
        watcher = asyncio.ensure_future(self._watch_for_cancel(cancel))
        try:
            yield
        finally:
            for task in (flusher, watcher):
                task.cancel()
            await complete_despite_cancellation(self._end(flusher, watcher))

    async def _end(self, *background: asyncio.Future[None]) -> None:
        await asyncio.wait(background)
        try:
            await self._flush(ended=True)
        except Exception:
            logger.exception("reply log could not be ended", extra={"streamId": self.stream_id})

    async def _flush_while_running(self) -> None:
        # The first flush waits for the first token to be out, or writes what it has (the record, `start`) when
        # the model is slow to answer, so that the reply can be found, followed and cancelled meanwhile.
        with anyio.move_on_after(RECORD_AT_LATEST):
            await self._wake.wait()
        while True:
            flushed_at = time.monotonic()
            self._wake.clear()
            self._full.clear()
            try:
                await self._flush(ended=False)
            except Exception:  # a failed write is retried with the next batch; the reply goes on
                logger.exception("reply log flush failed", extra={"streamId": self.stream_id})
            await self._wake.wait()
            with anyio.move_on_after(max(0.0, flushed_at + FLUSH_EVERY - time.monotonic())):
                await self._full.wait()

    async def _flush(self, *, ended: bool) -> None:
        async with self._write_lock:
            if self._record_written and not self._pending and not ended:
                return
            batch, first = self._pending, self._pending_first
            self._pending, self._pending_first, self._pending_bytes = [], self.last_seq + 1, 0
            # A write under way ends, and is accounted for, even if the flusher is cancelled meanwhile.
            await complete_despite_cancellation(self._write_batch(batch, first, ended))

    async def _write_batch(self, batch: list[str], first: int, ended: bool) -> None:
        try:
            await anyio.to_thread.run_sync(self._write, batch, first, first + len(batch) - 1, ended)
        except BaseException:  # kept for the next flush
            self._pending, self._pending_first = batch + self._pending, first
            self._pending_bytes = sum(len(encoded) for encoded in self._pending)
            raise
        self._record_written = True

    def _write(self, batch: list[str], first: int, last: int, ended: bool) -> None:
        now = int(_now())
        ttl = now + KEPT_SECONDS if ended else self.deadline + KEPT_SECONDS
        status = "ended" if ended else "running"
        writes: list[dict[str, Any]] = []
        if batch:
            writes.append(
                {
                    "Put": {
                        "TableName": _table(),
                        "Item": {
                            "pk": {"S": f"REPLY#{self.stream_id}"},
                            "sk": {"S": f"EVENTS#{last:08d}"},
                            "first": _n(first),
                            "last": _n(last),
                            "events": {"S": "[" + ",".join(batch) + "]"},
                            "ttl": _n(ttl),
                        },
                    }
                }
            )
        if not self._record_written:
            record = {
                **_record_key(self.stream_id),
                "userId": {"S": self.user_id},
                "kind": {"S": self.kind},
                "status": {"S": status},
                "cancelRequested": {"BOOL": False},
                "lastSeq": _n(last),
                "startedAt": _n(self.started_at),
                "deadline": _n(self.deadline),
                "ttl": _n(ttl),
            }
            if ended:
                record["endedAt"] = _n(now)
            writes.append({"Put": {"TableName": _table(), "Item": record}})
        else:
            update = "SET lastSeq = :last, #status = :status, #ttl = :ttl"
            values: dict[str, Any] = {":last": _n(last), ":status": {"S": status}, ":ttl": _n(ttl)}
            if ended:
                update += ", endedAt = :now"
                values[":now"] = _n(now)
            writes.append(
                {
                    "Update": {
                        "TableName": _table(),
                        "Key": _record_key(self.stream_id),
                        "UpdateExpression": update,
                        "ExpressionAttributeNames": {"#status": "status", "#ttl": "ttl"},
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        client("dynamodb").transact_write_items(TransactItems=writes)

    async def _watch_for_cancel(self, cancel: anyio.Event) -> None:
        while not cancel.is_set():
            await anyio.sleep(CANCEL_POLL)
            if not self._record_written:
                continue
            try:
                record = await anyio.to_thread.run_sync(_get_record, self.stream_id)
            except Exception:
                logger.exception("reply log cancel check failed", extra={"streamId": self.stream_id})
                continue
            if record is not None and record.cancel_requested:
                cancel.set()
