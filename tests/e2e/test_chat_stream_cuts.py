"""Streams cut by the client over real HTTP, at points from before `start` to right before `end` (what
`curl -sN ... | head -c N` does): a cut never shortens the reply. Each time the conversation exists with the
user's message and the whole reply, complete, its usage counted once: the reply runs to its end on the server
and can be resumed (`GET /ai/chat/stream/{messageId}`).

Two models: a fake Anthropic API in this process that sends a word every 0.4 s (a stack of this module's
own talks to it), so a cut lands where it is meant to, before the first word, between words or after the end; and
the offline model of the session's stack, whose words come back to back, so a cut finds the server wherever it is.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LocalStack, model_environment, running_stack
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.scripted import Reply

pytestmark = pytest.mark.e2e

WORDS = "one two three four five six seven eight"
WORD_DELAY_SECONDS = 0.4
# How long the server may take to store what a cut stream produced (it stores it before its request ends, but a
# client that cut the stream cannot see that end); a bound, so a lost write fails instead of hanging the test.
SETTLE_SECONDS = 15.0


@pytest.fixture(scope="module")
def slow_model() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        fake.default = Reply(WORDS, chunk_delay=WORD_DELAY_SECONDS)
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, slow_model: FakeAnthropic) -> Iterator[LocalStack]:
    log_path = tmp_path_factory.mktemp("cut-stack") / "local.log"
    with running_stack(log_path, model_environment(slow_model.base_url)) as stack:
        # One whole reply first: the provider's SDK is imported by the first reply of a process, which may take
        # longer than a cut's wait for its conversation on a busy machine.
        with httpx.Client(base_url=stack.base_url, timeout=60) as http:
            read_then_cut(http, register(http), Cut(None))
        yield stack


@pytest.fixture
def slow_client(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=10) as http:
        yield http


def events_in(body: bytes) -> list[dict[str, Any]]:
    """The whole events in what the client received (a cut can end inside one)."""
    whole = body.decode(errors="replace").split("\n\n")[:-1]
    data = [line for event in whole for line in event.split("\n") if line.startswith("data: ")]
    return [json.loads(line.removeprefix("data: ")) for line in data]


def through_events(count: int, extra_bytes: int = 0) -> Callable[[bytes], int | None]:
    """A cut after the first `count` events and `extra_bytes` of the next."""

    def cut_at(body: bytes) -> int | None:
        ends = [index + 2 for index in range(len(body)) if body.startswith(b"\n\n", index)]
        if len(ends) < count or len(body) < ends[count - 1] + extra_bytes:
            return None
        return ends[count - 1] + extra_bytes

    return cut_at


def through_kind(kind: str) -> Callable[[bytes], int | None]:
    """A cut right after the first event of `kind`."""

    def cut_at(body: bytes) -> int | None:
        for count, event in enumerate(events_in(body), start=1):
            if event["type"] == kind:
                return through_events(count)(body)
        return None

    return cut_at


@dataclass(frozen=True)
class Cut:
    """Where the client stops reading (`at`: the byte count to keep, once it can tell; None reads it all)."""

    at: Callable[[bytes], int | None] | None


def after_bytes(count: int) -> Callable[[bytes], int | None]:
    return lambda body: count if len(body) >= count else None


SLOW_CUTS = {
    "before start (headers only)": Cut(after_bytes(0)),
    "inside start": Cut(after_bytes(20)),
    "right after start": Cut(through_events(1)),
    "after the first word": Cut(through_events(2)),
    "inside the third word": Cut(through_events(3, extra_bytes=12)),
    "after the sixth word": Cut(through_events(7)),
    "right before end": Cut(through_kind("usage")),
    "not cut": Cut(None),
}

# Cuts of the offline model's stream (the local stack's model when no provider is configured, as `make dev`
# runs), by where they fall in a whole stream of it: its events come back to back, so a cut lands wherever the
# server is, waiting for the client or sending to it.
OFFLINE_CUTS: dict[str, Callable[[bytes], Cut]] = {
    "before start (headers only)": lambda whole: Cut(after_bytes(0)),
    "inside start": lambda whole: Cut(after_bytes(20)),
    "right after start": lambda whole: Cut(through_events(1)),
    **{
        f"{percent}% through the content": lambda whole, percent=percent: Cut(after_bytes(len(whole) * percent // 100))
        for percent in (25, 50, 75)
    },
    "right before end": lambda whole: Cut(through_kind("usage")),
}
# Each offline cut is made this many times: where the server is when it notices varies from one to the next.
OFFLINE_REPEATS = 3


def read_then_cut(http: httpx.Client, auth: dict[str, str], cut: Cut) -> bytes:
    """POST a chat and read its stream up to the cut, then close the connection; the bytes kept."""
    body = b""
    with http.stream("POST", "/api/v1/ai/chat/stream", headers=auth, json={"message": "count to eight"}) as response:
        assert response.status_code == 200
        if cut.at is not None and cut.at(body) == 0:
            return body
        for chunk in response.iter_raw():
            body += chunk
            keep = cut.at(body) if cut.at is not None else None
            if keep is not None:
                return body[:keep]  # leaving the block closes the connection mid-stream
    return body


def settled(http: httpx.Client, auth: dict[str, str], wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The user's one conversation once `wanted` holds for it (its messages, and the user's usage)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        listed = http.get("/api/v1/conversations", headers=auth).json()["items"]
        state = {"conversations": listed, "messages": [], "usage": None}
        if len(listed) == 1:
            messages = http.get(f"/api/v1/conversations/{listed[0]['id']}/messages", headers=auth).json()["items"]
            usage = http.get("/api/v1/users/usage-stats", headers=auth, params={"days": 1}).json()["totals"]
            state = {"conversations": listed, "messages": messages, "usage": usage}
            if wanted(state):
                return state
        time.sleep(0.05)
    pytest.fail(f"the conversation never settled: {state}")


def register(http: httpx.Client) -> dict[str, str]:
    email = f"cut-{uuid.uuid4().hex[:8]}@example.com"
    token = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"}).json()
    return {"authorization": f"Bearer {token['accessToken']}"}


def cut_and_check(http: httpx.Client, cut: Cut, whole_reply: str) -> None:
    """A new user's stream, cut; then their conversation holds the message and the whole reply, counted once."""
    auth = register(http)
    body = read_then_cut(http, auth, cut)
    received = events_in(body)
    received_text = "".join(event["delta"] for event in received if event["type"] == "content")

    def has_reply_and_usage(state: dict[str, Any]) -> bool:
        return len(state["messages"]) == 2 and state["usage"]["requests"] == 1

    state = settled(http, auth, has_reply_and_usage)

    conversation = state["conversations"][0]
    if received:  # the id the client was given is the conversation's
        assert received[0]["type"] == "start"
        assert received[0]["conversationId"] == conversation["id"]
        assert http.get(f"/api/v1/conversations/{conversation['id']}", headers=auth).status_code == 200
    messages = state["messages"]
    assert (messages[0]["role"], messages[0]["content"]) == ("user", "count to eight")
    kept = messages[1]
    assert kept["role"] == "assistant"
    assert kept["content"].startswith(received_text)  # at least what the client saw, in order
    assert kept["content"] == whole_reply
    assert kept["metadata"]["incomplete"] is False
    assert kept["metadata"]["stopReason"] == "end_turn"
    assert kept["metadata"]["inputTokens"] > 0
    assert state["usage"]["outputTokens"] == kept["metadata"]["outputTokens"] > 0


@pytest.mark.parametrize("cut_name", list(SLOW_CUTS))
def test_a_cut_stream_keeps_the_conversation_the_message_and_the_reply_so_far(
    slow_client: httpx.Client, cut_name: str
) -> None:
    cut_and_check(slow_client, SLOW_CUTS[cut_name], WORDS)


@pytest.fixture(scope="module")
def offline_whole(base_url: str) -> tuple[bytes, str]:
    """A whole stream of the offline model's reply, and the reply."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        body = read_then_cut(http, register(http), Cut(None))
    return body, "".join(event["delta"] for event in events_in(body) if event["type"] == "content")


@pytest.mark.parametrize("cut_name", list(OFFLINE_CUTS))
def test_a_cut_offline_stream_keeps_the_conversation_the_message_and_the_reply_so_far(
    http: httpx.Client, offline_whole: tuple[bytes, str], cut_name: str
) -> None:
    whole_body, whole_reply = offline_whole
    for _ in range(OFFLINE_REPEATS):
        cut_and_check(http, OFFLINE_CUTS[cut_name](whole_body), whole_reply)
