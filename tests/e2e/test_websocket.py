"""The WebSocket API on the running local stack with a real WebSocket client: refusals, rooms with presence and
typing, bad frames that leave the connection usable, and a chat reply streamed as ordered events and stored."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


def _user(http: httpx.Client, label: str) -> tuple[str, str, dict[str, str]]:
    email = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
    body = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).json()
    return body["user"]["id"], email, {"authorization": f"Bearer {body['accessToken']}"}


def _socket(base_url: str, auth: dict[str, str] | None) -> ClientConnection:
    token = auth["authorization"].removeprefix("Bearer ") if auth else None
    url = base_url.replace("http://", "ws://") + "/ws" + (f"?token={token}" if token else "")
    return connect(url, open_timeout=10)


def _until(ws: ClientConnection, event: str, limit: int = 500) -> list[dict[str, Any]]:
    frames = []
    for _ in range(limit):
        frame = json.loads(ws.recv(timeout=15))
        frames.append(frame)
        if frame["event"] == event:
            return frames
    raise AssertionError(f"no {event} in {frames}")


def test_a_connection_without_a_valid_token_is_refused(base_url: str) -> None:
    for auth, status in ((None, 401), ({"authorization": "Bearer forged"}, 403)):
        with pytest.raises(InvalidStatus) as refused:
            _socket(base_url, auth)
        assert refused.value.response.status_code == status


def test_two_users_share_a_room_and_a_reply_streams_in_order(http: httpx.Client, base_url: str) -> None:
    ada_id, _, ada_auth = _user(http, "ada")
    bob_id, bob_email, bob_auth = _user(http, "bob")
    project = http.post("/api/v1/projects", headers=ada_auth, json={"name": "Room"}).json()["id"]
    http.post(f"/api/v1/projects/{project}/members", headers=ada_auth, json={"email": bob_email, "role": "viewer"})
    room = http.post("/api/v1/conversations", headers=ada_auth, json={"projectId": project}).json()["id"]
    private = http.post("/api/v1/conversations", headers=ada_auth, json={"title": "Ada's"}).json()["id"]

    with _socket(base_url, ada_auth) as ada, _socket(base_url, bob_auth) as bob:
        ada.send(json.dumps({"action": "conversation:join", "conversationId": room}))
        assert _until(ada, "presence")[-1]["data"]["members"] == [ada_id]
        bob.send(json.dumps({"action": "conversation:join", "conversationId": room}))
        assert _until(bob, "presence")[-1]["data"]["members"] == sorted([ada_id, bob_id])
        assert _until(ada, "presence")[-1]["data"]["userId"] == bob_id

        bob.send(json.dumps({"action": "chat:typing", "conversationId": room, "isTyping": True}))
        typing = _until(ada, "chat:typing")[-1]["data"]
        assert (typing["userId"], typing["isTyping"]) == (bob_id, True)

        bob.send(json.dumps({"action": "conversation:join", "conversationId": private}))
        refused = _until(bob, "chat:error")[-1]["data"]
        assert refused["code"] == "conversation_not_found"
        for bad, code in (
            ("{not json", "invalid_frame"),
            (json.dumps({"action": "chat:dance"}), "unknown_action"),
            (json.dumps({"action": "ping", "pad": "x" * 40_000}), "message_too_large"),
        ):
            bob.send(bad)
            assert _until(bob, "chat:error")[-1]["data"]["code"] == code
        bob.send(json.dumps({"action": "ping"}))
        assert _until(bob, "pong")[-1] == {"event": "pong", "data": {}}

        ada.send(json.dumps({"action": "chat:send", "conversationId": room, "message": "Hello, room"}))
        frames = _until(ada, "chat:response")
        while frames[-1]["event"] != "chat:response" or frames[-1]["data"]["type"] != "end":
            frames.append(json.loads(ada.recv(timeout=15)))
        events = [frame["data"] for frame in frames if frame["event"] == "chat:response"]

    kinds = [event["type"] for event in events]
    assert kinds[0] == "start"
    assert kinds[-2:] == ["usage", "end"]
    assert set(kinds[1:-2]) == {"content"}
    messages = http.get(f"/api/v1/conversations/{room}/messages", headers=ada_auth).json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[-1]["id"] == events[0]["messageId"]
    assert messages[-1]["content"] == "".join(e["delta"] for e in events if e["type"] == "content")
