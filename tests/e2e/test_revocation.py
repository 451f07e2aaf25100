"""Revocation over real HTTP and WebSocket against the running local stack, whose gateway caches authorizer
answers for 300 s as API Gateway does: a revoked key, a signed-out session and a disabled user are refused at
once on the HTTP API, the chat function and the WebSocket `$connect`; other sessions keep working.

The stack inherits this session's `REVOCATION_REFRESH_SECONDS=0`, so "at once" is exact here; the refresh interval
itself is driven with a clock in tests/integration/test_revocation.py."""

from __future__ import annotations

import uuid

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
PATHS = ("/api/v1/memories", "/api/v1/ai/models", "/api/v1/auth/verify")


def _bearer(credential: str) -> dict[str, str]:
    return {"authorization": f"Bearer {credential}"}


def _register(http: httpx.Client) -> tuple[str, dict[str, str]]:
    email = f"revoke-{uuid.uuid4().hex[:8]}@example.com"
    body = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).json()
    return email, _bearer(body["accessToken"])


def _login(http: httpx.Client, email: str) -> dict[str, str]:
    response = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return _bearer(response.json()["accessToken"])


def _connects(base_url: str, credential: str) -> int:
    """101 when the WebSocket handshake succeeds, else the status it was refused with."""
    url = base_url.replace("http://", "ws://") + f"/ws?token={credential}"
    try:
        with connect(url, open_timeout=10):
            return 101
    except InvalidStatus as refused:
        return int(refused.response.status_code)


def _statuses(http: httpx.Client, auth: dict[str, str]) -> list[int]:
    return [http.get(path, headers=auth).status_code for path in PATHS]


def test_a_revoked_api_key_is_refused_at_once_everywhere(http: httpx.Client, base_url: str) -> None:
    _, auth = _register(http)
    created = http.post("/api/v1/api-keys", headers=auth, json={"name": "ci", "permissions": ["*"]}).json()
    key = _bearer(created["key"])
    assert _statuses(http, key) == [200, 200, 200]  # now cached by the gateway
    assert _connects(base_url, created["key"]) == 101

    assert http.delete(f"/api/v1/api-keys/{created['id']}", headers=auth).status_code == 204

    assert _statuses(http, key) == [401, 401, 401]
    assert http.get("/api/v1/memories", headers=key).json()["error"]["code"] == "invalid_api_key"
    assert _connects(base_url, created["key"]) == 403


def test_signing_out_ends_that_session_everywhere_and_no_other(http: httpx.Client, base_url: str) -> None:
    email, laptop = _register(http)
    phone = _login(http, email)
    assert _statuses(http, laptop) == [200, 200, 200]

    assert http.post("/api/v1/auth/logout", headers=laptop).status_code == 204

    assert _statuses(http, laptop) == [401, 401, 401]
    assert http.get("/api/v1/memories", headers=laptop).json()["error"]["code"] == "session_revoked"
    assert _connects(base_url, laptop["authorization"].removeprefix("Bearer ")) == 403
    assert _statuses(http, phone) == [200, 200, 200]
    assert _connects(base_url, phone["authorization"].removeprefix("Bearer ")) == 101


def test_an_open_connection_of_a_signed_out_session_is_refused_on_its_next_frame(
    http: httpx.Client, base_url: str
) -> None:
    _, auth = _register(http)
    url = base_url.replace("http://", "ws://") + "/ws?token=" + auth["authorization"].removeprefix("Bearer ")
    with connect(url, open_timeout=10) as ws:
        ws.send('{"action": "ping"}')
        assert '"pong"' in str(ws.recv(timeout=15))
        assert http.post("/api/v1/auth/logout", headers=auth).status_code == 204
        ws.send('{"action": "ping"}')
        frame = str(ws.recv(timeout=15))
    assert '"chat:error"' in frame
    assert '"session_revoked"' in frame
