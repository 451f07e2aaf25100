"""Streams that survive the client: what the event log costs before the first token, and how soon a dropped
client that reconnects gets its first missed event.

Run inside the bench's local stack (its handlers in this process), so the log can be switched off in-process
(`ReplyLog.running` does nothing: events are numbered, nothing is written or watched) for the delta.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

STREAM_RUNS = 30
RESUME_RUNS = 20
DROP_AFTER = 5


def report_streams(base_url: str) -> None:
    import httpx

    from tests.bench.__main__ import percentiles

    with httpx.Client(base_url=base_url, timeout=60) as http:
        auth = _registered(http, "streams@example.com")
        logged = _first_tokens(http, auth)
        with _event_log_off():
            unlogged = _first_tokens(http, auth)
        logged_again = _first_tokens(http, auth)  # the other half of an A/B/A, against drift of the shared machine
        resumed_running, resumed_ended = _resume_latencies(http, auth)
    with_log = sorted(logged + logged_again)
    delta = statistics.median(with_log) - statistics.median(unlogged)
    print(f"\nStreams: the event log and resuming ({STREAM_RUNS * 2}+{STREAM_RUNS} replies, fake Anthropic)")
    print(f"  {'first token, event log on':<40} {percentiles(with_log)}")
    print(f"  {'first token, event log off (in-process)':<40} {percentiles(unlogged)}")
    print(f"  {'added by the event log (p50 difference)':<40} {delta:.2f} ms   (goal <= 2 ms)")
    print(f"  {'resume, reply just dropped':<40} {percentiles(resumed_running)}   (GET with Last-Event-ID ->"
          " first missed event; includes waiting for the next flush)")  # fmt: skip
    print(f"  {'resume, reply ended':<40} {percentiles(resumed_ended)}")


def _registered(http: Any, email: str) -> dict[str, str]:
    token = http.post("/api/v1/auth/register", json={"email": email, "password": "bench password 123"}).json()
    return {"authorization": f"Bearer {token['accessToken']}"}


def _events(response: Any) -> Iterator[tuple[str | None, dict[str, Any]]]:
    event_id = None
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            yield event_id, json.loads(line[6:])
            event_id = None


def _first_tokens(http: Any, auth: dict[str, str]) -> list[float]:
    """Time to the first content event of replies in one conversation (the first three warm up, unmeasured)."""
    first: list[float] = []
    conversation = None
    for run in range(STREAM_RUNS + 3):
        body = {"message": f"run {run}"} | ({"conversationId": conversation} if conversation else {})
        started = time.perf_counter()
        first_at = None
        with http.stream("POST", "/api/v1/ai/chat/stream", headers=auth, json=body) as response:
            for _, event in _events(response):
                if event["type"] == "start":
                    conversation = event["conversationId"]
                elif event["type"] == "content" and first_at is None:
                    first_at = time.perf_counter()
        if first_at is None:
            raise SystemExit("bench: a reply streamed no content")
        if run >= 3:
            first.append((first_at - started) * 1000)
    return first


def _resume_latencies(http: Any, auth: dict[str, str]) -> tuple[list[float], list[float]]:
    """Drop a reply after a few events and resume it at once with Last-Event-ID (the rest may still be on its
    way to the log), then resume it again once it has ended: time from the GET to the first missed event."""
    just_dropped: list[float] = []
    ended: list[float] = []
    for _ in range(RESUME_RUNS):
        last_id = None
        with http.stream("POST", "/api/v1/ai/chat/stream", headers=auth, json={"message": "resume me"}) as response:
            for count, (event_id, _) in enumerate(_events(response), start=1):
                last_id = event_id
                if count == DROP_AFTER:
                    break
        assert last_id is not None
        message_id = last_id.rpartition(":")[0]
        just_dropped.append(_first_missed_ms(http, auth, message_id, last_id))
        ended.append(_first_missed_ms(http, auth, message_id, last_id))
    return just_dropped, ended


def _first_missed_ms(http: Any, auth: dict[str, str], message_id: str, last_id: str) -> float:
    started = time.perf_counter()
    headers = {**auth, "last-event-id": last_id}
    with http.stream("GET", f"/api/v1/ai/chat/stream/{message_id}", headers=headers) as response:
        for _ in _events(response):
            at = time.perf_counter()
            for _ in _events(response):  # read it to its end: the next resume finds the reply ended
                pass
            return (at - started) * 1000
    raise SystemExit("bench: a resumed reply sent nothing")


@contextmanager
def _event_log_off() -> Iterator[None]:
    """Replies numbered as usual, but neither logged nor watched for a cancel: what the log itself costs."""
    from functions.chat import eventlog

    class UnloggedReplyLog(eventlog.ReplyLog):
        @asynccontextmanager
        async def running(self, cancel: Any) -> AsyncIterator[None]:
            yield

    original = eventlog.ReplyLog
    eventlog.ReplyLog = UnloggedReplyLog  # type: ignore[misc]
    try:
        yield
    finally:
        eventlog.ReplyLog = original  # type: ignore[misc]
