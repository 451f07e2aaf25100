"""Text enhancement on the running local stack over real HTTP (the offline model answers): a session created,
streamed by its first reader, dropped and resumed with `Last-Event-ID`, replayed to a second reader, counted."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.sse import sse_events

pytestmark = pytest.mark.e2e


def test_an_enhancement_session_over_real_http_streams_resumes_replays_and_counts(http: httpx.Client) -> None:
    email = f"enhance-{uuid.uuid4().hex[:8]}@example.com"
    token = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"}).json()
    auth = {"authorization": f"Bearer {token['accessToken']}"}

    created = http.post("/api/v1/ai/enhance", headers=auth, json={"text": "make this better", "fieldType": "bio"})
    assert created.status_code == 201
    session_id, path = created.json()["sessionId"], created.json()["streamPath"]
    assert http.get(f"/api/v1/ai/session/{session_id}", headers=auth).json()["status"] == "pending"

    # The first reader starts the generation and drops after two events; the reply runs to its end regardless.
    with http.stream("GET", path, headers=auth) as first:
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/event-stream")
        head = sse_events(first.iter_lines(), stop_after=2)
    assert [event_id for event_id, _ in head] == [f"{session_id}:1", f"{session_id}:2"]
    with http.stream("GET", path, headers={**auth, "last-event-id": f"{session_id}:2"}) as resumed:
        rest = sse_events(resumed.iter_lines())
    with http.stream("GET", path, headers=auth) as second:
        everything = sse_events(second.iter_lines())

    assert head + rest == everything
    kinds = [data["type"] for _, data in everything]
    assert kinds[0] == "start"
    assert kinds[-2:] == ["usage", "end"]
    assert everything[0][1]["provider"] == "offline"
    text = "".join(data["delta"] for _, data in everything if data["type"] == "content")

    stored = http.get(f"/api/v1/ai/session/{session_id}", headers=auth).json()
    assert (stored["status"], stored["result"]) == ("completed", text)
    usage = http.get("/api/v1/ai/usage", headers=auth).json()
    assert usage["byFieldType"][0]["fieldType"] == "bio"
    assert usage["totals"]["sessions"] == 1
    assert http.delete(f"/api/v1/ai/session/{session_id}", headers=auth).status_code == 409
    assert http.get(path).status_code == 401
