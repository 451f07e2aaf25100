"""Chat on the running local stack over real HTTP: with no provider key, the offline model answers."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_a_streamed_reply_over_real_http_is_stored_and_counted(http: httpx.Client) -> None:
    email = f"chat-{uuid.uuid4().hex[:8]}@example.com"
    token = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"}).json()
    auth = {"authorization": f"Bearer {token['accessToken']}"}

    with http.stream("POST", "/api/v1/ai/chat/stream", headers=auth, json={"message": "Hello, offline friend"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line.removeprefix("data: ")) for line in r.iter_lines() if line.startswith("data: ")]
    kinds = [event["type"] for event in events]
    assert kinds[0] == "start"
    assert kinds[-2:] == ["usage", "end"]
    assert set(kinds[1:-2]) == {"content"}
    assert events[0]["provider"] == "offline"
    reply = "".join(event["delta"] for event in events if event["type"] == "content")
    assert "Hello, offline friend" in reply

    conversation = http.get(f"/api/v1/conversations/{events[0]['conversationId']}", headers=auth).json()
    assert [m["role"] for m in conversation["messages"]["items"]] == ["user", "assistant"]
    assert conversation["messages"]["items"][1]["content"] == reply
    assert http.get("/api/v1/users/dashboard", headers=auth).json()["usageLast30Days"]["requests"] == 1
    assert http.post("/api/v1/ai/chat/stream", json={"message": "no token"}).status_code == 401
