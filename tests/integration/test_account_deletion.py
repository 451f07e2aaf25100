"""Deleting one's own account: DELETE /users/account refuses every credential at once and starts the deletion job;
identity's deletion pages then remove every identity item of the user, so the email can register afresh."""

from __future__ import annotations

import hashlib
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.identity import jobs
from infra.catalog import API_PREFIX, AUTHORIZER_FUNCTION, IDENTITY_FUNCTION, STREAMING_FUNCTIONS, Route, all_routes
from infra.local.gateway import Gateway
from shared.auth.api_keys import hash_api_key
from shared.tables import IDENTITY
from tests.integration.conftest import PASSWORD, RecordingNotifier, User, error_code, login, register
from tests.integration.jobs_pages import delete_all
from tests.integration.test_revocation import api_key, bearer

ACCOUNT = "/api/v1/users/account"
DELETE_ROUTE = Route("DELETE", f"{API_PREFIX}/users/account")


@pytest.fixture
def deletions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The deletion jobs started, one user id each, in place of the jobs context's workflow."""
    started: list[str] = []

    def start_deletion(user_id: str) -> str:
        started.append(user_id)
        return f"JOB{len(started)}"

    monkeypatch.setitem(sys.modules, "functions.jobs.service", types.SimpleNamespace(start_deletion=start_deletion))
    return started


@pytest.fixture
def api(aws: None) -> Iterator[TestClient]:
    """The whole API as API Gateway serves it, account deletion's route included."""
    routes = all_routes()
    if not any(route == DELETE_ROUTE for route, _ in routes):
        routes.append((DELETE_ROUTE, IDENTITY_FUNCTION))
    gateway = Gateway(routes, authorizer=AUTHORIZER_FUNCTION, stage="test", streaming=STREAMING_FUNCTIONS)
    with TestClient(gateway, base_url="http://127.0.0.1") as client:
        yield client
    gateway.close()


def delete_account(api: TestClient, credential: str, body: dict[str, Any] | None = None) -> Any:
    return api.request("DELETE", ACCOUNT, headers=bearer(credential), json=body)


def test_a_wrong_or_missing_password_is_refused_and_the_account_keeps_working(
    api: TestClient, deletions: list[str]
) -> None:
    ada = register(api, "ada@example.com")
    wrong = delete_account(api, ada.access_token, {"password": "not my password"})
    assert wrong.status_code == 401
    assert error_code(wrong) == "invalid_credentials"
    assert delete_account(api, ada.access_token).status_code == 401
    assert deletions == []
    assert api.get("/api/v1/users/profile", headers=ada.auth).json()["status"] == "active"
    login(api, ada.email)


def test_the_right_password_starts_the_deletion_and_refuses_every_credential_at_once(
    api: TestClient, deletions: list[str]
) -> None:
    ada = register(api, "ada@example.com")
    other_session = login(api, ada.email)
    _, raw_key = api_key(api, ada, ["*"])
    eve = register(api, "eve@example.com")

    answer = delete_account(api, ada.access_token, {"password": PASSWORD})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"jobId": "JOB1"}
    assert deletions == [ada.id]

    for credential in (ada.access_token, other_session.access_token, raw_key):
        assert api.get("/api/v1/memories", headers=bearer(credential)).status_code == 401
    for refresh in (ada.refresh_token, other_session.refresh_token):
        assert api.post("/api/v1/auth/refresh", json={"refreshToken": refresh}).status_code == 401
    assert api.post("/api/v1/auth/login", json={"email": ada.email, "password": PASSWORD}).status_code == 401
    again = delete_account(api, ada.access_token, {"password": PASSWORD})
    assert again.status_code == 401
    assert deletions == [ada.id]
    assert api.get("/api/v1/memories", headers=eve.auth).status_code == 200


def test_an_api_key_with_users_delete_self_needs_no_password_and_one_without_is_403(
    api: TestClient, deletions: list[str]
) -> None:
    ada = register(api, "ada@example.com")
    _, chat_only = api_key(api, ada, ["ai.chat"])
    refused = delete_account(api, chat_only)
    assert refused.status_code == 403
    assert error_code(refused) == "permission_denied"
    assert deletions == []

    _, deleter = api_key(api, ada, ["users.delete_self"])
    assert delete_account(api, deleter).status_code == 202
    assert deletions == [ada.id]
    assert api.get("/api/v1/memories", headers=ada.auth).status_code == 401
    assert delete_account(api, deleter).status_code == 401


def test_an_account_being_deleted_cannot_be_let_back_in_or_reset(
    api: TestClient, deletions: list[str], notifier: RecordingNotifier
) -> None:
    admin = register(api, "admin@example.com")
    bob = register(api, "bob@example.com")
    api.post("/api/v1/auth/forgot-password", json={"email": bob.email})
    token = notifier.token_for(bob.email)
    assert delete_account(api, bob.access_token, {"password": PASSWORD}).status_code == 202

    listed = {
        user["email"]: user["status"] for user in api.get("/api/v1/admin/users", headers=admin.auth).json()["items"]
    }
    assert listed["bob@example.com"] == "deleting"
    enable = api.put(f"/api/v1/admin/users/{bob.id}/status", headers=admin.auth, json={"status": "active"})
    assert enable.status_code == 409
    reset = api.post("/api/v1/auth/reset-password", json={"token": token, "password": "a new horse battery"})
    assert reset.status_code == 400
    assert (
        api.post("/api/v1/auth/login", json={"email": bob.email, "password": "a new horse battery"}).status_code == 401
    )


# Identity's pages -------------------------------------------------------------------------------------------


def identity_items_of(user: User, key_hashes: list[str]) -> list[dict[str, Any]]:
    """Every item of the user in the identity table: their partition, email claim, failed sign-ins, API keys
    (by hash and through gsi1) and reset tokens (through gsi1)."""
    from shared.aws import client

    dynamodb = client("dynamodb")
    table = IDENTITY.name_from_env()
    found: list[dict[str, Any]] = []
    partitions = [
        f"USER#{user.id}", f"EMAIL#{user.email}", f"LOGINFAIL#{hashlib.sha256(user.email.encode()).hexdigest()}",
        *(f"APIKEY#{key_hash}" for key_hash in key_hashes),
    ]  # fmt: skip
    for partition in partitions:
        found += dynamodb.query(
            TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": partition}}
        )["Items"]
    for partition in (f"USER#{user.id}#APIKEYS", f"USER#{user.id}#RESETS"):
        found += dynamodb.query(
            TableName=table, IndexName="gsi1", KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": partition}},
        )["Items"]  # fmt: skip
    return found


def test_export_documents_are_the_profile_and_settings_as_the_api_answers_them(api: TestClient) -> None:
    ada = register(api, "ada@example.com", name="Ada")
    api.put("/api/v1/users/settings", headers=ada.auth, json={"theme": "dark"})
    page = jobs.export_page(ada.id, None, 2000)
    assert page.cursor is None
    assert page.records == {}
    assert page.documents["profile.json"] == api.get("/api/v1/users/profile", headers=ada.auth).json()
    assert page.documents["settings.json"] == api.get("/api/v1/users/settings", headers=ada.auth).json()


def test_deletion_pages_remove_every_identity_item_of_the_user_and_the_email_registers_afresh(
    api: TestClient, notifier: RecordingNotifier
) -> None:
    ada = register(api, "ada@example.com")
    for _ in range(3):
        login(api, ada.email)
    keys = [hash_api_key(api_key(api, ada, ["ai.chat"])[1]) for _ in range(3)]
    api.post("/api/v1/auth/forgot-password", json={"email": ada.email})
    api.post("/api/v1/auth/login", json={"email": ada.email, "password": "wrong password"})
    eve = register(api, "eve@example.com")
    eve_key = hash_api_key(api_key(api, eve, ["ai.chat"])[1])
    before_eve = identity_items_of(eve, [eve_key])
    # Each item once (an API key is found by its hash and through gsi1); failed sign-ins go uncounted.
    identity_before = {
        (item["pk"]["S"], item["sk"]["S"])
        for item in identity_items_of(ada, keys)
        if not item["pk"]["S"].startswith("LOGINFAIL#")
    }
    assert len(identity_before) == 1 + 1 + 4 + 3 + 1  # user, email, sessions, API keys, reset token

    deleted, pages = delete_all(jobs.delete_page, ada.id, limit=3)
    assert pages > 1
    assert deleted == len(identity_before)
    assert identity_items_of(ada, keys) == []
    assert jobs.delete_page(ada.id, None, 3).deleted == 0
    assert sorted(map(str, identity_items_of(eve, [eve_key]))) == sorted(map(str, before_eve))

    fresh = register(api, "ada@example.com")
    assert fresh.id != ada.id
    assert api.get("/api/v1/users/profile", headers=fresh.auth).json()["email"] == "ada@example.com"
