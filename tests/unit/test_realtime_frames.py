"""The WebSocket wire format: client frame validation, action routing, and server frames under 32 KB."""

from __future__ import annotations

import json

import pytest

from functions.realtime.frames import (
    MAX_FRAME_BYTES,
    FrameError,
    error_frame,
    parse_client_frame,
    split_event,
)
from infra.catalog import WEBSOCKET_ACTIONS
from infra.local.websocket import select_route

CONVERSATION = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def test_every_action_of_the_api_is_accepted() -> None:
    frames = {
        "ping": {},
        "chat:send": {"message": "hi", "conversationId": CONVERSATION, "model": "m"},
        "chat:typing": {"conversationId": CONVERSATION, "isTyping": True},
        "chat:tool-approval": {"messageId": CONVERSATION, "toolCallId": "toolu_01", "approved": False},
        "chat:resume": {"messageId": CONVERSATION, "after": 3},
        "chat:cancel": {"messageId": CONVERSATION},
        "conversation:join": {"conversationId": CONVERSATION},
        "conversation:leave": {"conversationId": CONVERSATION},
    }
    assert set(frames) == set(WEBSOCKET_ACTIONS)
    for action, fields in frames.items():
        frame = parse_client_frame(json.dumps({"action": action, **fields}))
        assert (frame.action, frame.fields) == (action, fields)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid_frame"),
        ("[1, 2]", "invalid_frame"),
        ("", "invalid_frame"),
        (None, "invalid_frame"),
        ('{"message": "no action"}', "unknown_action"),
        ('{"action": "chat:delete"}', "unknown_action"),
        ('{"action": 7}', "unknown_action"),
        ('{"action": "chat:send"}', "invalid_frame"),
        ('{"action": "chat:send", "message": "  "}', "invalid_frame"),
        ('{"action": "chat:send", "message": "hi", "conversationId": "nope"}', "invalid_frame"),
        ('{"action": "chat:typing", "conversationId": "' + CONVERSATION + '"}', "invalid_frame"),
        ('{"action": "conversation:join"}', "invalid_frame"),
        ('{"action": "chat:tool-approval", "messageId": "' + CONVERSATION + '", "toolCallId": "c"}', "invalid_frame"),
        ('{"action": "chat:tool-approval", "messageId": "m", "toolCallId": "c", "approved": true}', "invalid_frame"),
        ('{"action": "chat:tool-approval", "messageId": "' + CONVERSATION + '", "approved": true}', "invalid_frame"),
        ('{"action": "chat:resume", "messageId": "m", "after": 1}', "invalid_frame"),
        ('{"action": "chat:resume", "messageId": "' + CONVERSATION + '", "after": -1}', "invalid_frame"),
        ('{"action": "chat:resume", "messageId": "' + CONVERSATION + '", "after": "3"}', "invalid_frame"),
        ('{"action": "chat:cancel"}', "invalid_frame"),
    ],
)
def test_bad_frames_are_named(body: str | None, code: str) -> None:
    with pytest.raises(FrameError) as refused:
        parse_client_frame(body)
    assert refused.value.code == code


def test_a_message_over_32_kb_is_too_large() -> None:
    body = json.dumps({"action": "chat:send", "message": "x" * MAX_FRAME_BYTES})
    with pytest.raises(FrameError) as refused:
        parse_client_frame(body)
    assert refused.value.code == "message_too_large"


def test_a_small_event_is_one_frame() -> None:
    (frame,) = split_event("chat:response", {"type": "content", "delta": "hello", "messageId": "m"})
    assert json.loads(frame) == {
        "event": "chat:response",
        "data": {"type": "content", "delta": "hello", "messageId": "m"},
    }


@pytest.mark.parametrize("text", ["a" * 100_000, 'é€😀"\\\n' * 20_000, "x" * (MAX_FRAME_BYTES - 60)])
def test_a_large_content_event_is_split_into_content_events_under_the_limit(text: str) -> None:
    frames = split_event("chat:response", {"type": "content", "delta": text, "messageId": "m"})
    assert all(len(frame) <= MAX_FRAME_BYTES for frame in frames)
    events = [json.loads(frame) for frame in frames]
    assert all(e["event"] == "chat:response" and e["data"]["type"] == "content" for e in events)
    assert all(e["data"]["messageId"] == "m" and "part" not in e["data"] for e in events)
    assert "".join(e["data"]["delta"] for e in events) == text
    assert len(frames) > 1


def test_another_large_event_is_split_into_numbered_parts() -> None:
    data = {"type": "tool_result", "toolCallId": "t", "content": "r" * 70_000, "isError": False, "messageId": "m"}
    frames = split_event("chat:response", data)
    parts = [json.loads(frame)["data"] for frame in frames]
    assert all(len(frame) <= MAX_FRAME_BYTES for frame in frames)
    assert [part["part"] for part in parts] == list(range(len(parts)))
    assert {part["parts"] for part in parts} == {len(parts)}
    assert "".join(part["content"] for part in parts) == data["content"]


def test_error_frames() -> None:
    assert json.loads(error_frame("unknown_action", "No", "x:y")) == {
        "event": "chat:error",
        "data": {"code": "unknown_action", "message": "No", "action": "x:y"},
    }


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ('{"action": "ping"}', "ping"),
        ('{"action": "chat:send", "message": "x"}', "chat:send"),
        ('{"action": "nope"}', "$default"),
        ("not json", "$default"),
        ("[]", "$default"),
    ],
)
def test_route_selection_follows_the_action(body: str, route: str) -> None:
    assert select_route(body, WEBSOCKET_ACTIONS) == route
