"""Revocation takes effect at once on every path: the HTTP API (whose authorizer answers the gateway caches for
300 s, as API Gateway does), the chat function (which verifies the bearer itself) and the WebSocket `$connect`
authorizer; and a valid credential costs no DynamoDB read per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import pytest
from fastapi.testclient import TestClient

from functions.realtime import connect
from infra.local.events import LambdaContext
from shared.auth.revocations import RevocationView, use_revocation_view
from tests.integration.conftest import User, error_code, login, register

MEMORIES = "/api/v1/memories"
CHAT_MODELS = "/api/v1/ai/models"
ADMIN_USERS = "/api/v1/admin/users"


def bearer(credential: str) -> dict[str, str]:
    return {"authorization": f"Bearer {credential}"}


def websocket_connect(credential: str) -> str:
    """The effect the `$connect` authorizer answers for `?token=<credential>`: Allow or Deny."""
    event = {"queryStringParameters": {"token": credential}, "methodArn": "arn:aws:execute-api:local:ws/$connect"}
    context = LambdaContext(function_name="stratus-test-realtime-authorizer", memory_limit_in_mb=256,
                            timeout_seconds=5, region="us-east-1")  # fmt: skip
    answer: dict[str, Any] = connect.lambda_handler(event, context)
    return str(answer["policyDocument"]["Statement"][0]["Effect"])


def api_key(api: TestClient, user: User, permissions: list[str]) -> tuple[str, str]:
    created = api.post("/api/v1/api-keys", headers=user.auth, json={"name": "ci", "permissions": permissions})
    assert created.status_code == 201, created.text
    return str(created.json()["id"]), str(created.json()["key"])


def test_a_revoked_api_key_is_refused_at_once_on_every_path(api: TestClient) -> None:
    user = register(api, "keys@example.com")
    key_id, raw_key = api_key(api, user, ["*"])
    assert api.get(MEMORIES, headers=bearer(raw_key)).status_code == 200  # the gateway now caches this answer
    assert api.get(CHAT_MODELS, headers=bearer(raw_key)).status_code == 200
    assert websocket_connect(raw_key) == "Allow"

    assert api.delete(f"/api/v1/api-keys/{key_id}", headers=user.auth).status_code == 204

    for path in (MEMORIES, CHAT_MODELS, "/api/v1/auth/verify"):
        refused = api.get(path, headers=bearer(raw_key))  # the very header the gateway cached
        assert refused.status_code == 401, path
        assert error_code(refused) == "invalid_api_key"
    assert websocket_connect(raw_key) == "Deny"
    assert api.get(MEMORIES, headers=user.auth).status_code == 200  # the owner's own token is untouched


def test_signing_out_refuses_that_sessions_token_everywhere_and_other_sessions_keep_working(api: TestClient) -> None:
    laptop = register(api, "ada@example.com")
    phone = login(api, "ada@example.com")
    for session in (laptop, phone):
        assert api.get(MEMORIES, headers=session.auth).status_code == 200

    assert api.post("/api/v1/auth/logout", headers=laptop.auth).status_code == 204

    for path in (MEMORIES, CHAT_MODELS, "/api/v1/auth/me"):
        refused = api.get(path, headers=laptop.auth)
        assert refused.status_code == 401, path
        assert error_code(refused) == "session_revoked"
    assert websocket_connect(laptop.access_token) == "Deny"
    assert api.post("/api/v1/auth/refresh", json={"refreshToken": laptop.refresh_token}).status_code == 401

    for path in (MEMORIES, CHAT_MODELS, "/api/v1/auth/me"):
        assert api.get(path, headers=phone.auth).status_code == 200, path
    assert websocket_connect(phone.access_token) == "Allow"


def test_a_stolen_refresh_token_presented_twice_ends_the_familys_access_tokens_too(api: TestClient) -> None:
    user = register(api, "reuse@example.com")
    rotated = api.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token}).json()
    fresh = bearer(rotated["accessToken"])
    assert api.get(MEMORIES, headers=fresh).status_code == 200

    assert api.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token}).status_code == 401

    refused = api.get(MEMORIES, headers=fresh)
    assert refused.status_code == 401
    assert error_code(refused) == "session_revoked"


def test_a_disabled_user_is_refused_everywhere_at_once_and_can_be_let_back_in(api: TestClient) -> None:
    admin = register(api, "admin@example.com")
    bob = register(api, "bob@example.com")
    _, raw_key = api_key(api, bob, ["*"])
    for credential in (bob.access_token, raw_key):
        assert api.get(MEMORIES, headers=bearer(credential)).status_code == 200
        assert api.get(CHAT_MODELS, headers=bearer(credential)).status_code == 200

    disabled = api.put(f"{ADMIN_USERS}/{bob.id}/status", headers=admin.auth, json={"status": "disabled"})
    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"

    for credential in (bob.access_token, raw_key):
        for path in (MEMORIES, CHAT_MODELS):
            assert api.get(path, headers=bearer(credential)).status_code == 401, (path, credential[:12])
        assert websocket_connect(credential) == "Deny"
    assert error_code(api.get(MEMORIES, headers=bob.auth)) == "session_revoked"
    assert api.post("/api/v1/auth/refresh", json={"refreshToken": bob.refresh_token}).status_code == 401
    assert (
        api.post("/api/v1/auth/login", json={"email": bob.email, "password": "correct horse battery"}).status_code
        == 401
    )
    listed = {user["email"]: user["status"] for user in api.get(ADMIN_USERS, headers=admin.auth).json()["items"]}
    assert listed == {"admin@example.com": "active", "bob@example.com": "disabled"}
    assert (
        api.put(f"{ADMIN_USERS}/{admin.id}/status", headers=admin.auth, json={"status": "disabled"}).status_code == 409
    )
    assert api.put(f"{ADMIN_USERS}/{bob.id}/status", headers=bob.auth, json={"status": "active"}).status_code == 401

    enabled = api.put(f"{ADMIN_USERS}/{bob.id}/status", headers=admin.auth, json={"status": "active"})
    assert enabled.json()["status"] == "active"
    back = login(api, bob.email)
    assert api.get(MEMORIES, headers=back.auth).status_code == 200
    assert api.get(MEMORIES, headers=bearer(raw_key)).status_code == 200  # keys were not deleted, only refused


def test_removing_a_role_refuses_old_tokens_and_cuts_api_keys_at_once(api: TestClient) -> None:
    admin = register(api, "admin@example.com")
    bob = register(api, "bob@example.com")
    api.put(f"{ADMIN_USERS}/{bob.id}/roles", headers=admin.auth, json={"roles": ["admin"]})
    bob = login(api, bob.email)
    _, raw_key = api_key(api, bob, ["*"])
    for credential in (bob.access_token, raw_key):
        assert api.get(ADMIN_USERS, headers=bearer(credential)).status_code == 200  # cached: admin

    assert api.put(f"{ADMIN_USERS}/{bob.id}/roles", headers=admin.auth, json={"roles": ["member"]}).status_code == 200

    old_token = api.get(ADMIN_USERS, headers=bob.auth)
    assert old_token.status_code == 401
    assert error_code(old_token) == "token_revoked"
    # The key is still good: resolved again, it holds only what the owner's roles grant now.
    assert api.get(ADMIN_USERS, headers=bearer(raw_key)).status_code == 403
    assert api.get(MEMORIES, headers=bearer(raw_key)).status_code == 200

    refreshed = api.post("/api/v1/auth/refresh", json={"refreshToken": bob.refresh_token})
    assert refreshed.status_code == 200
    assert refreshed.json()["user"]["roles"] == ["member"]
    assert api.get(ADMIN_USERS, headers=bearer(refreshed.json()["accessToken"])).status_code == 403
    assert api.get(MEMORIES, headers=bearer(refreshed.json()["accessToken"])).status_code == 200
    fresh = login(api, bob.email)
    assert api.get("/api/v1/auth/me", headers=fresh.auth).json()["roles"] == ["member"]
    assert api.get(MEMORIES, headers=admin.auth).status_code == 200  # the admin who acted is untouched


def test_deleting_a_custom_role_refuses_credentials_that_held_it(api: TestClient) -> None:
    admin = register(api, "admin@example.com")
    helper = register(api, "helper@example.com")
    api.post("/api/v1/admin/roles", headers=admin.auth, json={"name": "support", "permissions": ["users.manage"]})
    api.put(f"{ADMIN_USERS}/{helper.id}/roles", headers=admin.auth, json={"roles": ["support"]})
    helper = login(api, helper.email)
    assert api.get(ADMIN_USERS, headers=helper.auth).status_code == 200

    assert api.delete("/api/v1/admin/roles/support", headers=admin.auth).status_code == 204

    refused = api.get(ADMIN_USERS, headers=helper.auth)
    assert refused.status_code == 401
    assert error_code(refused) == "token_revoked"
    assert api.get(ADMIN_USERS, headers=login(api, helper.email).auth).status_code == 403


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    """The container's view of revocations refreshed at most every 2 s of a clock the test moves."""
    monotonic = Clock()
    previous = use_revocation_view(RevocationView(refresh_seconds=lambda: 2.0, monotonic=monotonic))
    yield monotonic
    use_revocation_view(previous)


@pytest.fixture
def dynamodb_calls() -> Iterator[list[str]]:
    """The DynamoDB operations made from now on, by any thread."""
    from botocore.client import BaseClient

    calls: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counted(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(operation)
        return make_api_call(self, operation, params)

    with patch.object(BaseClient, "_make_api_call", counted):
        yield calls


def test_a_valid_token_costs_no_dynamodb_call_and_a_revocation_lands_within_the_refresh_interval(
    api: TestClient, clock: Clock, dynamodb_calls: list[str]
) -> None:
    user = register(api, "fast@example.com")
    assert api.get("/api/v1/auth/verify", headers=user.auth).status_code == 200  # the authorizer's cache is warm
    dynamodb_calls.clear()

    for _ in range(20):
        assert api.get("/api/v1/auth/verify", headers=user.auth).status_code == 200
        assert api.get(CHAT_MODELS, headers=user.auth).status_code == 200
        clock.now += 0.05
    assert dynamodb_calls == []  # 40 requests within one refresh interval: not one read

    assert api.post("/api/v1/auth/logout", headers=user.auth).status_code == 204
    clock.now += 2.0
    dynamodb_calls.clear()
    refused = api.get("/api/v1/auth/verify", headers=user.auth)
    assert refused.status_code == 401
    assert error_code(refused) == "session_revoked"
    assert dynamodb_calls == ["Query"]  # the one read that brought the view up to date

    # The chat function verifies a token on its event loop while the view is fresh, on a thread when it is due:
    # both refuse the signed-out session.
    for advance, reads in ((0.0, []), (2.0, ["Query"])):
        clock.now += advance
        dynamodb_calls.clear()
        refused = api.get(CHAT_MODELS, headers=user.auth)
        assert refused.status_code == 401
        assert error_code(refused) == "session_revoked"
        assert dynamodb_calls == reads
