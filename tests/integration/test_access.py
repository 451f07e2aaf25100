"""Credentials at protected routes, API keys, profiles and settings, administration, and isolation between users."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from fastapi.testclient import TestClient

from shared.auth.keys import key_ring
from shared.auth.tokens import issue_token
from shared.settings import get_settings
from shared.tables import TABLES
from tests.integration.conftest import PASSWORD, RecordingNotifier, User, error_code, login, register


def _forged(user: User, **changes: object) -> str:
    """A token whose payload was edited after signing."""
    header, payload, signature = user.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = base64.urlsafe_b64encode(json.dumps(claims | changes).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_missing_authorization_is_refused_by_the_gateway_itself(api: TestClient) -> None:
    response = api.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


def test_bad_tokens_get_401_in_the_error_shape_never_a_500(api: TestClient) -> None:
    victim = register(api, "victim@example.com")
    attacker = register(api, "attacker@example.com")
    settings = get_settings()
    expired = issue_token(
        key_ring(), settings, token_type="access", subject=attacker.id, claims={}, now=int(time.time()) - 3600
    ).token
    wrong_audience = issue_token(
        key_ring(), settings.model_copy(update={"token_audience": "other-api"}),
        token_type="access", subject=attacker.id, claims={},
    ).token  # fmt: skip
    claims = jwt.decode(attacker.access_token, options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    hs256 = jwt.encode(claims, "guessed-secret-at-least-32-bytes-long!!", algorithm="HS256")
    cases = {
        "token_expired": expired,
        "invalid_token": [wrong_audience, unsigned, hs256, _forged(attacker, sub=victim.id), "Zm9v.YmFy.YmF6"],
    }
    for code, tokens in cases.items():
        for token in tokens if isinstance(tokens, list) else [tokens]:
            response = api.get("/api/v1/users/profile", headers={"authorization": f"Bearer {token}"})
            assert response.status_code == 401, token
            assert error_code(response) == code
    basic = api.get("/api/v1/users/profile", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


def test_profile_reads_and_updates_only_the_callers_own(api: TestClient) -> None:
    ada = register(api, "ada@example.com", name="Ada")
    bob = register(api, "bob@example.com", name="Bob")
    updated = api.put(
        "/api/v1/users/profile",
        headers=ada.auth,
        json={"name": "Ada L.", "timezone": "Europe/London", "avatarUrl": "https://cdn.example/ada.png"},
    )
    assert updated.status_code == 200
    assert updated.json() | {"createdAt": None} == {
        "id": ada.id, "email": "ada@example.com", "name": "Ada L.", "avatarUrl": "https://cdn.example/ada.png",
        "timezone": "Europe/London", "roles": ["admin"], "status": "active", "createdAt": None,
    }  # fmt: skip
    assert api.get("/api/v1/users/profile", headers=bob.auth).json()["name"] == "Bob"
    # Nothing in the request can point at someone else: unknown fields are refused, not ignored.
    sneaky = api.put("/api/v1/users/profile", headers=bob.auth, json={"id": ada.id, "name": "pwned"})
    assert sneaky.status_code == 422
    assert api.get("/api/v1/users/profile", headers=ada.auth).json()["name"] == "Ada L."


@pytest.mark.parametrize(
    "body",
    [{"timezone": "Mars/Olympus"}, {"avatarUrl": "javascript:alert(1)"}, {"name": ""}, {"name": "x" * 101}],
)
def test_bad_profile_updates_are_422(api: TestClient, body: dict[str, str]) -> None:
    user = register(api, "profile@example.com")
    response = api.put("/api/v1/users/profile", headers=user.auth, json=body)
    assert response.status_code == 422
    assert error_code(response) == "validation_error"


def test_settings_merge_partial_updates_and_validate_ranges(api: TestClient) -> None:
    user = register(api, "settings@example.com")
    defaults = api.get("/api/v1/users/settings", headers=user.auth).json()
    assert defaults["memoryEnabled"] is True
    assert defaults["enabledMcpServers"] == []
    api.put("/api/v1/users/settings", headers=user.auth, json={"defaultModel": "claude-sonnet-4-6", "temperature": 0.3})
    response = api.put("/api/v1/users/settings", headers=user.auth, json={"maxTokens": 2048, "memoryEnabled": False})
    assert response.status_code == 200
    assert response.json() | {} == defaults | {
        "defaultModel": "claude-sonnet-4-6", "temperature": 0.3, "maxTokens": 2048, "memoryEnabled": False,
    }  # fmt: skip
    # What the document says is a number or a boolean must be one: no false for 0, no 0 for false, no "5" for 5.
    coerced = ({"temperature": False}, {"memoryEnabled": 0}, {"memoryEnabled": "yes"}, {"maxTokens": "5"})
    for bad in ({"temperature": 2.5}, {"maxTokens": 0}, {"temperature": "hot"}, {"enabledMcpServers": "all"}, *coerced):
        refused = api.put("/api/v1/users/settings", headers=user.auth, json=bad)
        assert refused.status_code == 422, bad
    assert api.get("/api/v1/users/settings", headers=user.auth).json()["temperature"] == 0.3


def test_api_key_is_shown_once_works_as_a_bearer_and_stops_when_revoked(api: TestClient) -> None:
    user = register(api, "keys@example.com")
    created = api.post("/api/v1/api-keys", headers=user.auth, json={"name": "ci", "permissions": ["ai.chat"]})
    assert created.status_code == 201
    raw_key = created.json()["key"]
    key_id = created.json()["id"]
    listed = api.get("/api/v1/api-keys", headers=user.auth).json()
    assert [item["id"] for item in listed["items"]] == [key_id]
    assert raw_key not in json.dumps(listed)

    as_key = {"authorization": f"Bearer {raw_key}"}
    verify = api.get("/api/v1/auth/verify", headers=as_key).json()
    assert verify["userId"] == user.id
    assert verify["authType"] == "api_key"
    # A key cannot mint keys, so a leaked key cannot outlive its own revocation.
    minted = api.post("/api/v1/api-keys", headers=as_key, json={"name": "child"})
    assert minted.status_code == 403

    assert api.delete(f"/api/v1/api-keys/{key_id}", headers=user.auth).status_code == 204
    # API Gateway caches authorizer answers; the local gateway does too, so use a fresh header form.
    revoked = api.get("/api/v1/auth/verify", headers={"authorization": f"bearer {raw_key}"})
    assert revoked.status_code == 401
    assert error_code(revoked) == "invalid_api_key"


def test_api_key_cannot_hold_more_than_its_owner(api: TestClient) -> None:
    register(api, "owner@example.com")
    member = register(api, "member@example.com")
    escalation = api.post("/api/v1/api-keys", headers=member.auth, json={"name": "x", "permissions": ["users.manage"]})
    assert escalation.status_code == 403
    unknown = api.post("/api/v1/api-keys", headers=member.auth, json={"name": "x", "permissions": ["root"]})
    assert unknown.status_code == 422
    inherit = api.post("/api/v1/api-keys", headers=member.auth, json={"name": "all mine"})
    as_key = {"authorization": f"Bearer {inherit.json()['key']}"}
    assert api.get("/api/v1/admin/users", headers=as_key).status_code == 403


def test_users_cannot_see_or_revoke_each_others_keys(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    eve = register(api, "eve@example.com")
    key_id = api.post("/api/v1/api-keys", headers=ada.auth, json={"name": "ada's"}).json()["id"]
    assert api.get("/api/v1/api-keys", headers=eve.auth).json()["items"] == []
    stolen = api.delete(f"/api/v1/api-keys/{key_id}", headers=eve.auth)
    assert stolen.status_code == 404
    assert [item["id"] for item in api.get("/api/v1/api-keys", headers=ada.auth).json()["items"]] == [key_id]


def test_members_cannot_reach_administration(api: TestClient) -> None:
    admin = register(api, "admin@example.com")
    member = register(api, "member@example.com")
    for method, path, body in [
        ("GET", "/api/v1/admin/users", None),
        ("POST", "/api/v1/admin/users", {"email": "x@example.com"}),
        ("PUT", f"/api/v1/admin/users/{member.id}/roles", {"roles": ["admin"]}),
        ("GET", "/api/v1/admin/roles", None),
        ("POST", "/api/v1/admin/roles", {"name": "root", "permissions": ["*"]}),
    ]:
        response = api.request(method, path, headers=member.auth, json=body)
        assert response.status_code == 403, path
        assert error_code(response) == "permission_denied"
    assert api.get("/api/v1/auth/me", headers=member.auth).json()["roles"] == ["member"]
    assert api.get("/api/v1/admin/users", headers=admin.auth).status_code == 200


def test_admin_lists_users_page_by_page_newest_first(api: TestClient) -> None:
    admin = register(api, "admin@example.com")
    for number in range(6):
        register(api, f"user{number}@example.com")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/v1/admin/users", headers=admin.auth, params=params).json()
        seen += [user["email"] for user in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == [f"user{n}@example.com" for n in reversed(range(6))] + ["admin@example.com"]
    tampered = api.get("/api/v1/admin/users", headers=admin.auth, params={"cursor": "eyJwayI6IlVTRVIjMSJ9"})
    assert tampered.status_code == 400
    assert error_code(tampered) == "invalid_cursor"


def test_invited_user_sets_a_password_from_the_invitation(api: TestClient, notifier: RecordingNotifier) -> None:
    admin = register(api, "admin@example.com")
    invited = api.post(
        "/api/v1/admin/users", headers=admin.auth, json={"email": "new@example.com", "name": "New", "roles": ["viewer"]}
    )
    assert invited.status_code == 201
    assert invited.json()["status"] == "invited"
    assert api.post("/api/v1/auth/login", json={"email": "new@example.com", "password": PASSWORD}).status_code == 401
    token = notifier.token_for("new@example.com")
    assert notifier.sent[-1][2] is True
    api.post("/api/v1/auth/reset-password", json={"token": token, "password": PASSWORD})
    newcomer = login(api, "new@example.com")
    assert api.get("/api/v1/auth/me", headers=newcomer.auth).json()["roles"] == ["viewer"]
    duplicate = api.post("/api/v1/admin/users", headers=admin.auth, json={"email": "new@example.com"})
    assert duplicate.status_code == 409


def test_custom_roles_grant_their_permissions_on_the_next_token(api: TestClient) -> None:
    admin = register(api, "admin@example.com")
    helper = register(api, "helper@example.com")
    created = api.post(
        "/api/v1/admin/roles",
        headers=admin.auth,
        json={"name": "support", "description": "Helps users", "permissions": ["users.manage"]},
    )
    assert created.status_code == 201
    roles = {role["name"]: role for role in api.get("/api/v1/admin/roles", headers=admin.auth).json()["items"]}
    assert roles["admin"]["permissions"] == ["*"]
    assert roles["support"] == {
        "name": "support", "description": "Helps users", "permissions": ["users.manage"], "builtin": False,
    }  # fmt: skip
    assigned = api.put(f"/api/v1/admin/users/{helper.id}/roles", headers=admin.auth, json={"roles": ["support"]})
    assert assigned.json()["roles"] == ["support"]
    fresh = login(api, helper.email)
    assert api.get("/api/v1/admin/users", headers=fresh.auth).status_code == 200

    unknown = api.put(f"/api/v1/admin/users/{helper.id}/roles", headers=admin.auth, json={"roles": ["wizard"]})
    assert unknown.status_code == 422
    assert api.delete("/api/v1/admin/roles/admin", headers=admin.auth).status_code == 409
    assert api.delete("/api/v1/admin/roles/support", headers=admin.auth).status_code == 204
    assert api.delete("/api/v1/admin/roles/support", headers=admin.auth).status_code == 404
    after = login(api, helper.email)
    assert api.get("/api/v1/admin/users", headers=after.auth).status_code == 403


def test_admin_cannot_remove_their_own_admin_role(api: TestClient) -> None:
    admin = register(api, "admin@example.com")
    response = api.put(f"/api/v1/admin/users/{admin.id}/roles", headers=admin.auth, json={"roles": ["member"]})
    assert response.status_code == 409
    missing = api.put(
        "/api/v1/admin/users/01ARZ3NDEKTSV4RRFFQ69G5FAV/roles", headers=admin.auth, json={"roles": ["member"]}
    )
    assert missing.status_code == 404


def test_health_routes(api: TestClient) -> None:
    assert api.get("/api/v1/health").json() == {"status": "ok"}
    ready = api.get("/api/v1/health/ready")
    assert ready.status_code == 200
    assert {dep["name"] for dep in ready.json()["dependencies"]} == {
        *(f"table:{spec.context}" for spec in TABLES),
        "secret:signing-keys",
    }
    # Readiness says only whether each dependency answers (as its schema does); the detailed report adds how fast.
    assert all(set(dep) == {"name", "healthy", "error"} for dep in ready.json()["dependencies"])
    detailed = api.get("/api/v1/health/detailed").json()
    assert all(dep["healthy"] and dep["latencyMs"] >= 0 for dep in detailed["dependencies"])
    assert api.get("/api/v1/health/info").json()["stage"] == "test"


def test_readiness_is_503_and_names_the_dependency_when_one_is_missing(api: TestClient) -> None:
    from shared.aws import client

    client("dynamodb").delete_table(TableName=TABLES[-1].name_from_env())
    ready = api.get("/api/v1/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    failing = [dep for dep in ready.json()["dependencies"] if not dep["healthy"]]
    assert [dep["name"] for dep in failing] == [f"table:{TABLES[-1].context}"]
    assert api.get("/api/v1/health").status_code == 200  # liveness needs no dependency
