"""The one publisher of what happens in the contexts: audit events (`shared.audit`), the events webhooks deliver
(API.md, Outbound webhooks) and the internal ones analytics counts (a reply finished, a connection opened).

`publish` costs the request an append to an in-memory outbox: a sender thread of the container sends the outbox to
the stage's events queue (SQS, `SendMessageBatch`) while the request goes on. Nothing is lost to a container frozen
after its response: an HTTP function's invocation ends with `end_of_invocation`, and the post-invocation extension
(`shared.post_invocation`) empties the outbox after the response has gone, before Lambda may freeze the
environment; the workers, jobs steps and a streamed reply's end, whose callers wait for no response, `flush` before
they return. The events function (`functions.events`) reads the queue and hands each event to its consumers: the
audit writer, the analytics counters, the webhooks fan-out, each idempotent by event id (SQS delivers at least
once).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from shared.ids import new_id

log = logging.getLogger("stratus.events")

EventKind = Literal["domain", "audit"]
# The queue's URL reaches a function that publishes as this variable (infra.catalog.EVENTS_QUEUE).
QUEUE_URL_VARIABLE = "EVENTS_QUEUE_URL"
# SQS's batch limit, and a batch's size limit with room for the request's own framing.
_BATCH_MESSAGES = 10
_BATCH_BYTES = 240_000
_SEND_ATTEMPTS = 4
# How long the sender lets events gather before it sends them unasked: a request's own events then go in one batch
# at its end (`flush`, or the post-invocation extension after the response), and a streamed reply's first token
# never shares the CPU with a send its start published.
LINGER_SECONDS = 0.25


def utc_now() -> str:
    """ISO 8601 to the millisecond, in UTC with `Z`: the form every event's `at` takes."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    """One thing that happened. `type` is a webhook event type (`conversation.created`), an internal one
    (`reply.completed`) or, for `kind="audit"`, the audit action (`user.login`); `user_id` is whose it is (whose
    webhooks it reaches, whose log it is in); `data` is JSON."""

    type: str
    data: Mapping[str, Any]
    user_id: str | None = None
    kind: EventKind = "domain"
    id: str = field(default_factory=new_id)
    at: str = field(default_factory=utc_now)

    def to_message(self) -> str:
        return json.dumps(
            {"id": self.id, "kind": self.kind, "type": self.type, "at": self.at, "userId": self.user_id,
             "data": dict(self.data)},
            separators=(",", ":"),
            default=str,
        )  # fmt: skip

    @classmethod
    def from_message(cls, body: str) -> Event:
        message = json.loads(body)
        return cls(
            type=message["type"],
            data=message.get("data") or {},
            user_id=message.get("userId"),
            kind="audit" if message.get("kind") == "audit" else "domain",
            id=message["id"],
            at=message["at"],
        )


class Outbox:
    """Events waiting to be sent, and the thread that sends them (started on the first event)."""

    def __init__(self) -> None:
        self._waiting: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._unsent = 0
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        # Set while someone waits in `flush`, until nothing is unsent: the sender lingers no more.
        self._hurry = threading.Event()

    def put(self, event: Event) -> None:
        with self._lock:
            self._unsent += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="events-outbox", daemon=True)
                self._thread.start()
        self._waiting.put(event)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event put so far is sent (or given up on); False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._unsent:
                self._hurry.set()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    @property
    def unsent(self) -> int:
        return self._unsent

    def _run(self) -> None:
        while True:
            batch = [self._waiting.get()]
            self._hurry.wait(LINGER_SECONDS)
            size = len(batch[0].to_message())
            while len(batch) < _BATCH_MESSAGES:
                try:
                    event = self._waiting.get_nowait()
                except queue.Empty:
                    break
                batch.append(event)
                size += len(event.to_message())
                if size > _BATCH_BYTES:
                    break
            try:
                _send(batch)
            except Exception:  # the thread must outlive any failure; what was lost is logged by id
                log.exception("events not sent", extra={"eventIds": [event.id for event in batch]})
            finally:
                with self._lock:
                    self._unsent -= len(batch)
                    if not self._unsent:
                        self._hurry.clear()
                    self._lock.notify_all()


def _send(batch: Sequence[Event]) -> None:
    """SendMessageBatch, retrying the entries SQS failed (throttling, a blip) a few times with backoff."""
    from shared.aws import client

    url = os.environ.get(QUEUE_URL_VARIABLE)
    if not url:
        raise RuntimeError(f"{QUEUE_URL_VARIABLE} is not set: the function was deployed without the events queue")
    pending = {str(index): event for index, event in enumerate(batch)}
    for attempt in range(_SEND_ATTEMPTS):
        answer = client("sqs").send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": entry_id, "MessageBody": event.to_message()} for entry_id, event in pending.items()],
        )
        pending = {failed["Id"]: pending[failed["Id"]] for failed in answer.get("Failed") or ()}
        if not pending:
            return
        time.sleep(0.05 * 2**attempt)
    raise RuntimeError(f"SQS refused {len(pending)} events: {sorted(event.id for event in pending.values())}")


_outbox = Outbox()


def publish(
    type: str, data: Mapping[str, Any], *, user_id: str | None, kind: EventKind = "domain", event_id: str | None = None
) -> Event:
    """Publish an event; it reaches the queue before the invocation ends (`flush`). `event_id` names it where a
    retried step must publish the same event again (its consumers then count it once)."""
    event = Event(type=type, data=data, user_id=user_id, kind=kind, **({"id": event_id} if event_id else {}))
    _outbox.put(event)
    return event


def flush(timeout: float = 10.0) -> bool:
    """Wait until everything published is on the queue: call before an invocation returns."""
    if not _outbox.unsent:
        return True
    return _outbox.flush(timeout)


def send_after_responses() -> bool:
    """In Lambda, empty the outbox after each response instead of before it (call at init: a handler module's
    import). True if the post-invocation extension is registered."""
    from shared import post_invocation

    return post_invocation.register(_outbox.flush)


def end_of_invocation() -> None:
    """The handler is returning its response. With the post-invocation extension, the outbox is emptied after the
    response has gone; locally nothing freezes and the sender thread goes on by itself; anywhere else (the
    extension failed to register), it is emptied now."""
    from shared import post_invocation

    if post_invocation.active():
        post_invocation.invocation_ended()
    elif os.environ.get("LOCAL_MODE", "").lower() != "true":
        flush()
