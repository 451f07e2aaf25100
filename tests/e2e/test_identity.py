"""A user's journey through identity on the running local stack, over real HTTP."""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


def _email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def _register(http: httpx.Client, email: str) -> dict[str, str]:
    response = http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "E2E"})
    assert response.status_code == 201, response.text
    body = response.json()
    return {"id": body["user"]["id"], "access": body["accessToken"], "refresh": body["refreshToken"]}


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_sign_up_use_refresh_by_cookie_and_sign_out(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as browser:
        email = _email("journey")
        user = _register(browser, email)
        me = browser.get("/api/v1/auth/me", headers=_bearer(user["access"]))
        assert me.json()["email"] == email

        # The refresh token also came back as an HTTP-only cookie scoped to the auth routes.
        cookie = browser.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).headers["set-cookie"]
        token = re.search(r"refresh_token=([^;]+)", cookie)
        assert token is not None
        refreshed = browser.post("/api/v1/auth/refresh", headers={"cookie": f"refresh_token={token.group(1)}"})
        assert refreshed.status_code == 200
        access = refreshed.json()["accessToken"]

        settings = browser.put("/api/v1/users/settings", headers=_bearer(access), json={"temperature": 0.2})
        assert settings.json()["temperature"] == 0.2
        assert browser.post("/api/v1/auth/logout", headers=_bearer(access)).status_code == 204
        after = browser.post("/api/v1/auth/refresh", json={"refreshToken": refreshed.json()["refreshToken"]})
        assert after.status_code == 401


def test_api_key_works_over_http_until_revoked(http: httpx.Client) -> None:
    user = _register(http, _email("keys"))
    created = http.post("/api/v1/api-keys", headers=_bearer(user["access"]), json={"name": "script"}).json()
    as_key = http.get("/api/v1/auth/verify", headers=_bearer(created["key"]))
    assert as_key.json() | {"expiresAt": None} == {
        "valid": True,
        "userId": user["id"],
        "expiresAt": None,
        "authType": "api_key",
    }
    assert http.delete(f"/api/v1/api-keys/{created['id']}", headers=_bearer(user["access"])).status_code == 204
    # The gateway caches authorizer answers per header value for 300 s, as API Gateway does; a different
    # spelling of the scheme is a different cache entry, so this asks the authorizer afresh.
    revoked = http.get("/api/v1/auth/verify", headers={"authorization": f"BEARER {created['key']}"})
    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "invalid_api_key"


def test_one_user_cannot_touch_anothers_keys_or_administration(http: httpx.Client) -> None:
    owner = _register(http, _email("owner"))
    other = _register(http, _email("other"))
    key_id = http.post("/api/v1/api-keys", headers=_bearer(owner["access"]), json={"name": "mine"}).json()["id"]
    assert http.delete(f"/api/v1/api-keys/{key_id}", headers=_bearer(other["access"])).status_code == 404
    assert http.get("/api/v1/api-keys", headers=_bearer(other["access"])).json()["items"] == []
    escalate = http.put(
        f"/api/v1/admin/users/{other['id']}/roles", headers=_bearer(other["access"]), json={"roles": ["admin"]}
    )
    assert escalate.status_code == 403


def test_bad_input_over_http_gets_the_error_shape(http: httpx.Client) -> None:
    cases = [
        http.post("/api/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"}),
        http.post("/api/v1/auth/register", json={"email": "x@example.com"}),
        http.post("/api/v1/auth/login", json={"email": "x@example.com", "password": ["a"]}),
        http.get("/api/v1/auth/me", headers=_bearer("a.b.c")),
        http.post("/api/v1/auth/register", json={"email": "y@example.com", "password": "p" * (3 * 1024 * 1024)}),
    ]
    assert [case.status_code for case in cases] == [400, 422, 422, 401, 413]
    for case in cases:
        assert set(case.json()["error"]) >= {"code", "message", "requestId"}


def test_forgotten_password_is_reset_with_the_token_from_the_local_log(
    http: httpx.Client, local_stack: LocalStack
) -> None:
    email = _email("forgetful")
    _register(http, email)
    assert http.post("/api/v1/auth/forgot-password", json={"email": email}).status_code == 202
    token = None
    deadline = time.monotonic() + 5
    while token is None and time.monotonic() < deadline:
        found = re.search(rf"password reset for {re.escape(email)}: reset token (\S+?)[\"\s]", local_stack.log(2000))
        token = found.group(1) if found else None
        time.sleep(0.1)
    assert token, "local mode logs the reset token"
    new_password = "a different passphrase"
    assert http.post("/api/v1/auth/reset-password", json={"token": token, "password": new_password}).status_code == 204
    assert http.post("/api/v1/auth/login", json={"email": email, "password": new_password}).status_code == 200


def test_a_user_lists_their_sessions_and_signs_one_out(http: httpx.Client) -> None:
    email = _email("sessions")
    phone = _register(http, email)
    laptop = http.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}, headers={"user-agent": "E2E-Laptop/1.0"}
    ).json()
    listed = http.get("/api/v1/auth/sessions", headers=_bearer(phone["access"])).json()
    assert [session["current"] for session in listed["items"]] == [False, True]
    newest = listed["items"][0]
    assert newest["userAgent"] == "E2E-Laptop/1.0"
    assert newest["ip"]

    signed_out = http.delete(f"/api/v1/auth/sessions/{newest['sessionId']}", headers=_bearer(phone["access"]))
    assert signed_out.status_code == 204
    refused = http.post("/api/v1/auth/refresh", json={"refreshToken": laptop["refreshToken"]})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "session_revoked"
    # Its access token too (the authorizer's cached answer is checked against revocations by the function).
    assert http.get("/api/v1/auth/me", headers=_bearer(laptop["accessToken"])).status_code == 401
    assert http.get("/api/v1/auth/me", headers=_bearer(phone["access"])).status_code == 200
    other = _register(http, _email("other"))
    mine = http.get("/api/v1/auth/sessions", headers=_bearer(other["access"])).json()["items"][0]["sessionId"]
    assert http.delete(f"/api/v1/auth/sessions/{mine}", headers=_bearer(phone["access"])).status_code == 404
