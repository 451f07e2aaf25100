"""Stream tickets on the running local stack over real HTTP: a browser's `EventSource` opens a reply's resume
stream with `?ticket=` and no Authorization header, once, on that reply only."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

pytestmark = pytest.mark.e2e

TICKETS = "/api/v1/ai/stream-tickets"


def _register(http: httpx.Client, label: str) -> dict[str, str]:
    email = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
    token = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"}).json()
    return {"authorization": f"Bearer {token['accessToken']}"}


def _events(response: httpx.Response) -> list[tuple[str | None, dict[str, object]]]:
    """Each server-sent event as its `id` (None without one) and its JSON data."""
    events: list[tuple[str | None, dict[str, object]]] = []
    event_id: str | None = None
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = line.removeprefix("id: ")
        elif line.startswith("data: "):
            events.append((event_id, json.loads(line.removeprefix("data: "))))
        elif not line:
            event_id = None
    return events


def _ticket(http: httpx.Client, auth: dict[str, str], path: str) -> str:
    issued = http.post(TICKETS, headers=auth, json={"path": path})
    assert issued.status_code == 201, issued.text
    assert set(issued.json()) == {"ticket", "expiresAt"}
    return str(issued.json()["ticket"])


def _reply(
    http: httpx.Client, auth: dict[str, str], message: str
) -> tuple[str, list[tuple[str | None, dict[str, object]]]]:
    with http.stream("POST", "/api/v1/ai/chat/stream", headers=auth, json={"message": message}) as response:
        assert response.status_code == 200
        events = _events(response)
    assert events[0][1]["type"] == "start"
    return str(events[0][1]["messageId"]), events


def test_a_ticket_opens_a_replys_stream_once_without_an_authorization_header(http: httpx.Client) -> None:
    auth = _register(http, "ticket")
    message_id, streamed = _reply(http, auth, "Hello, ticket holder")
    path = f"/api/v1/ai/chat/stream/{message_id}"
    ticket = _ticket(http, auth, path)

    with http.stream("GET", path, params={"ticket": ticket}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        resumed = _events(response)
    assert resumed == streamed  # every event again, from the first, with the same ids
    assert resumed[-1][1]["type"] == "end"

    reused = http.get(path, params={"ticket": ticket})
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "invalid_ticket"
    assert ticket not in reused.text


def test_a_ticket_opens_no_other_stream_and_no_other_users_reply(http: httpx.Client) -> None:
    auth = _register(http, "owner")
    first, _ = _reply(http, auth, "first")
    second, _ = _reply(http, auth, "second")
    ticket = _ticket(http, auth, f"/api/v1/ai/chat/stream/{first}")

    other_path = http.get(f"/api/v1/ai/chat/stream/{second}", params={"ticket": ticket})
    assert other_path.status_code == 401
    assert other_path.json()["error"]["code"] == "invalid_ticket"

    stranger = _register(http, "stranger")
    not_theirs = http.get(
        f"/api/v1/ai/chat/stream/{first}", params={"ticket": _ticket(http, stranger, f"/api/v1/ai/chat/stream/{first}")}
    )
    assert not_theirs.status_code == 404

    with http.stream("GET", f"/api/v1/ai/chat/stream/{first}", params={"ticket": ticket}) as response:
        assert response.status_code == 200  # the refusal on another path left the ticket unused
        assert _events(response)[-1][1]["type"] == "end"


def test_a_ticket_is_only_for_a_get_stream_route_and_only_for_a_verified_caller(http: httpx.Client) -> None:
    auth = _register(http, "paths")
    refused = http.post(TICKETS, headers=auth, json={"path": "/api/v1/memories"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "validation_error"
    assert http.post(TICKETS, json={"path": f"/api/v1/ai/stream/{'0' * 26}"}).status_code == 401
