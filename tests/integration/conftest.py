"""Integration tier: the real handlers, reached through the local gateway's API Gateway v2 events, on moto."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.identity.notifier import use_notifier
from infra.catalog import AUTHORIZER_FUNCTION, STREAMING_FUNCTIONS, all_routes
from infra.local.gateway import Gateway

PASSWORD = "correct horse battery"


@dataclass
class RecordingNotifier:
    sent: list[tuple[str, str, bool]] = field(default_factory=list)

    def send_password_reset(self, email: str, token: str, *, invitation: bool) -> None:
        self.sent.append((email, token, invitation))

    def token_for(self, email: str) -> str:
        return next(token for sent_to, token, _ in reversed(self.sent) if sent_to == email)


@pytest.fixture
def notifier() -> Iterator[RecordingNotifier]:
    recorder = RecordingNotifier()
    previous = use_notifier(recorder)
    yield recorder
    use_notifier(previous)


@pytest.fixture
def api(aws: None) -> Iterator[TestClient]:
    """An HTTP client for the whole API as API Gateway would serve it (authorizer included)."""
    gateway = Gateway(all_routes(), authorizer=AUTHORIZER_FUNCTION, stage="test", streaming=STREAMING_FUNCTIONS)
    with TestClient(gateway, base_url="http://127.0.0.1") as client:
        yield client
    gateway.close()


@dataclass
class User:
    id: str
    email: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}


def register(api: TestClient, email: str, password: str = PASSWORD, **extra: Any) -> User:
    response = api.post("/api/v1/auth/register", json={"email": email, "password": password, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    return User(body["user"]["id"], email, body["accessToken"], body["refreshToken"])


def login(api: TestClient, email: str, password: str = PASSWORD) -> User:
    response = api.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return User(body["user"]["id"], email, body["accessToken"], body["refreshToken"])


def error_code(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["requestId"]
    return str(body["error"]["code"])
