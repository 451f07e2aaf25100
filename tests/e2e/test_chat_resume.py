"""Streams that survive the client, over real HTTP and WebSocket on two local gateways sharing one moto (two
"containers" of one stage): a dropped SSE connection resumed with Last-Event-ID on the same or the other
gateway, a reply that nobody listens to finishing and being stored, the stop button pressed from another
connection, and the WebSocket's chat:resume and chat:cancel.

The model is a fake Anthropic API in this process that sends a word every 0.15 s, so a drop or a cancel lands
mid-reply, and so that the fake can tell when its stream was closed before its end.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import LocalStack, free_port, model_environment, running_stack
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.scripted import Reply
from tests.sse import sse_events

pytestmark = pytest.mark.e2e

WORDS = " ".join(f"w{n}" for n in range(1, 25))
WORD_DELAY_SECONDS = 0.15
# Bounds on waiting, so that a lost reply fails the test instead of hanging it.
SETTLE_SECONDS = 20.0
Event = tuple[int, dict[str, Any]]


@pytest.fixture(scope="module")
def slow_model() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        fake.default = Reply(WORDS, chunk_delay=WORD_DELAY_SECONDS)
        yield fake


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory, slow_model: FakeAnthropic) -> Iterator[dict[str, LocalStack]]:
    """Two gateways of one stage: the first starts (and provisions) moto on a known port, the second attaches."""
    logs = tmp_path_factory.mktemp("containers")
    moto_port = free_port()
    environment = model_environment(slow_model.base_url)
    with running_stack(logs / "first.log", environment, ["--moto-port", str(moto_port)]) as first:
        attach = ["--attach-aws", f"http://127.0.0.1:{moto_port}"]
        with running_stack(logs / "second.log", environment, attach) as second:
            yield {"same": first, "other": second}


@pytest.fixture
def first(containers: dict[str, LocalStack]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=containers["same"].base_url, timeout=30) as http:
        yield http


def register(http: httpx.Client) -> dict[str, str]:
    email = f"resume-{uuid.uuid4().hex[:8]}@example.com"
    token = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"}).json()
    return {"authorization": f"Bearer {token['accessToken']}"}


def read_events(lines: Iterator[str], stop_after: int | None = None) -> list[Event]:
    """The SSE events of a response's `lines`, each as (seq from its id, data), up to the first `stop_after` (the
    rest can be read on from `lines`)."""
    events = sse_events(lines, stop_after)
    assert all(event_id is not None for event_id, _ in events), "an event without an id"
    return [(int(str(event_id).rpartition(":")[2]), data) for event_id, data in events]


def start_then_drop(http: httpx.Client, auth: dict[str, str], count: int) -> list[Event]:
    """POST a chat, read its first `count` events, then close the connection."""
    with http.stream("POST", "/api/v1/ai/chat/stream", headers=auth, json={"message": "count"}) as response:
        assert response.status_code == 200
        return read_events(response.iter_lines(), stop_after=count)


def resume(http: httpx.Client, auth: dict[str, str], message_id: str, **how: Any) -> tuple[int, list[Event]]:
    headers = {**auth, **({"last-event-id": how["last_event_id"]} if "last_event_id" in how else {})}
    params = {"after": how["after"]} if "after" in how else {}
    with http.stream("GET", f"/api/v1/ai/chat/stream/{message_id}", headers=headers, params=params) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, []
        return 200, read_events(response.iter_lines())


def stored_reply(http: httpx.Client, auth: dict[str, str]) -> dict[str, Any]:
    """The assistant message of the user's one conversation, once it is stored."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        listed = http.get("/api/v1/conversations", headers=auth).json()["items"]
        if listed:
            messages = http.get(f"/api/v1/conversations/{listed[0]['id']}/messages", headers=auth).json()["items"]
            if len(messages) == 2:
                return dict(messages[1])
        time.sleep(0.05)
    pytest.fail("the reply was never stored")


def text_of(events: list[Event]) -> str:
    return "".join(event["delta"] for _, event in events if event["type"] == "content")


@pytest.mark.parametrize("where", ["same", "other"])
def test_a_dropped_stream_resumes_with_last_event_id_without_gap_or_repeat(
    first: httpx.Client, containers: dict[str, LocalStack], where: str
) -> None:
    auth = register(first)
    received = start_then_drop(first, auth, count=4)
    message_id = received[0][1]["messageId"]

    with httpx.Client(base_url=containers[where].base_url, timeout=30) as there:
        status, rest = resume(there, auth, message_id, last_event_id=f"{message_id}:{received[-1][0]}")
        assert status == 200
        whole = received + rest
        assert [seq for seq, _ in whole] == list(range(1, len(whole) + 1))
        assert whole[-1][1] == {"type": "end", "stopReason": "end_turn"}
        # What a client that never dropped saw: the whole log, from the first event.
        assert resume(there, auth, message_id, after=0) == (200, whole)

    kept = stored_reply(first, auth)
    assert kept["id"] == message_id
    assert kept["content"] == text_of(whole) == WORDS
    assert kept["metadata"]["incomplete"] is False


def test_a_reply_nobody_listens_to_finishes_and_is_stored(first: httpx.Client) -> None:
    auth = register(first)
    (start,) = start_then_drop(first, auth, count=1)

    kept = stored_reply(first, auth)
    assert kept["id"] == start[1]["messageId"]
    assert kept["content"] == WORDS
    assert kept["metadata"]["stopReason"] == "end_turn"


def test_the_stop_button_from_another_container_ends_the_reply_and_keeps_its_partial_text(
    first: httpx.Client, containers: dict[str, LocalStack], slow_model: FakeAnthropic
) -> None:
    auth = register(first)
    slow_model.stream_closed_early.clear()
    with httpx.Client(base_url=containers["other"].base_url, timeout=30) as other:
        with first.stream("POST", "/api/v1/ai/chat/stream", headers=auth, json={"message": "count"}) as response:
            lines = response.iter_lines()
            events = read_events(lines, stop_after=3)
            message_id = events[0][1]["messageId"]
            cancelled = other.post(f"/api/v1/ai/chat/{message_id}/cancel", headers=auth)
            assert (cancelled.status_code, cancelled.json()) == (202, {"messageId": message_id, "cancelled": True})
            events += read_events(lines)

        assert events[-1][1] == {"type": "end", "stopReason": "cancelled"}
        assert slow_model.stream_closed_early.wait(SETTLE_SECONDS)
        kept = stored_reply(first, auth)
        assert kept["content"] == text_of(events)
        assert 0 < len(kept["content"]) < len(WORDS)
        assert kept["metadata"]["stopReason"] == "cancelled"
        assert kept["metadata"]["incomplete"] is True
        again = other.post(f"/api/v1/ai/chat/{message_id}/cancel", headers=auth)
        assert (again.status_code, again.json()) == (200, {"messageId": message_id, "cancelled": False})


def test_someone_elses_or_an_unknown_reply_is_not_found(first: httpx.Client) -> None:
    owner, stranger = register(first), register(first)
    (start,) = start_then_drop(first, owner, count=1)
    message_id = start[1]["messageId"]

    assert resume(first, stranger, message_id)[0] == 404
    assert first.post(f"/api/v1/ai/chat/{message_id}/cancel", headers=stranger).status_code == 404
    assert resume(first, owner, "01J00000000000000000000000")[0] == 404
    assert resume(first, owner, message_id, last_event_id="01JSOMEOTHERSTREAM00000000:3")[0] == 422
    assert resume(first, owner, message_id, after=-1)[0] == 422
    assert first.get(f"/api/v1/ai/chat/stream/{message_id}").status_code == 401


def _socket(base_url: str, auth: dict[str, str]) -> ClientConnection:
    token = auth["authorization"].removeprefix("Bearer ")
    return connect(base_url.replace("http://", "ws://") + f"/ws?token={token}", open_timeout=10)


def _frames_until(ws: ClientConnection, done: Any, limit: int = 500) -> list[dict[str, Any]]:
    frames = []
    for _ in range(limit):
        frame = json.loads(ws.recv(timeout=15))
        frames.append(frame)
        if done(frame):
            return frames
    raise AssertionError(f"never done: {frames}")


def _is_end(frame: dict[str, Any]) -> bool:
    return frame["event"] == "chat:response" and frame["data"]["type"] == "end"


def test_websocket_resume_from_a_new_connection_and_cancel(
    first: httpx.Client, containers: dict[str, LocalStack]
) -> None:
    auth = register(first)
    base_url = containers["same"].base_url
    with _socket(base_url, auth) as ws:
        ws.send(json.dumps({"action": "chat:send", "message": "count"}))
        early = _frames_until(ws, lambda f: f["event"] == "chat:response" and f["data"]["type"] == "content")
    message_id = early[0]["data"]["messageId"]
    received = [f["data"]["seq"] for f in early if f["event"] == "chat:response"]

    with _socket(base_url, auth) as ws:  # the first connection is gone; the reply went on
        ws.send(json.dumps({"action": "chat:resume", "messageId": message_id, "after": received[-1]}))
        rest = [f["data"] for f in _frames_until(ws, _is_end) if f["event"] == "chat:response"]
        assert [frame["seq"] for frame in rest] == list(range(received[-1] + 1, received[-1] + 1 + len(rest)))
        assert {frame["messageId"] for frame in rest} == {message_id}
        assert stored_reply(first, auth)["content"] == WORDS

        ws.send(json.dumps({"action": "chat:send", "message": "count again"}))
        started = _frames_until(ws, lambda f: f["event"] == "chat:response" and f["data"]["type"] == "content")
        second_id = started[-1]["data"]["messageId"]
        with _socket(base_url, auth) as other:
            other.send(json.dumps({"action": "chat:cancel", "messageId": second_id}))
            answer = _frames_until(other, lambda f: f["event"] in ("chat:cancelled", "chat:error"))[-1]
            assert answer == {"event": "chat:cancelled", "data": {"messageId": second_id, "cancelled": True}}
            other.send(json.dumps({"action": "chat:cancel", "messageId": "01J00000000000000000000000"}))
            refused = _frames_until(other, lambda f: f["event"] == "chat:error")[-1]["data"]
            assert (refused["code"], refused["action"]) == ("not_found", "chat:cancel")
        ended = _frames_until(ws, _is_end)[-1]["data"]
        assert ended["stopReason"] == "cancelled"
