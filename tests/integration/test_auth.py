"""Register, log in, refresh with rotation, log out, reset passwords: through API Gateway events on moto."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from tests.integration.conftest import PASSWORD, RecordingNotifier, error_code, login, register


def test_register_returns_the_user_and_a_token_pair_and_sets_the_refresh_cookie(api: TestClient) -> None:
    response = api.post("/api/v1/auth/register", json={"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"})
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["name"] == "Ada"
    assert body["expiresIn"] == 900
    assert "passwordHash" not in response.text
    assert "password" not in body["user"]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("refresh_token=")
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "Path=/api/v1/auth" in cookie


def test_first_account_of_a_stage_is_admin_and_later_ones_are_members(api: TestClient) -> None:
    first = register(api, "first@example.com")
    second = register(api, "second@example.com")
    assert api.get("/api/v1/auth/me", headers=first.auth).json()["roles"] == ["admin"]
    assert api.get("/api/v1/auth/me", headers=second.auth).json()["roles"] == ["member"]


def test_taken_email_is_409_whatever_its_case(api: TestClient) -> None:
    register(api, "taken@example.com")
    response = api.post("/api/v1/auth/register", json={"email": "TAKEN@example.com", "password": PASSWORD})
    assert response.status_code == 409
    assert error_code(response) == "email_taken"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"password": PASSWORD}, 422, "validation_error"),
        ({"email": "a@example.com"}, 422, "validation_error"),
        ({"email": 42, "password": PASSWORD}, 422, "validation_error"),
        ({"email": "not-an-email", "password": PASSWORD}, 422, "validation_error"),
        ({"email": "a@example.com", "password": "short"}, 422, "weak_password"),
        ({"email": "a@example.com", "password": PASSWORD, "isAdmin": True}, 422, "validation_error"),
    ],
)
def test_bad_registrations_get_the_error_shape(
    api: TestClient, body: dict[str, object], status: int, code: str
) -> None:
    response = api.post("/api/v1/auth/register", json=body)
    assert response.status_code == status
    assert error_code(response) == code


def test_malformed_json_and_oversized_bodies_are_refused_cleanly(api: TestClient) -> None:
    malformed = api.post(
        "/api/v1/auth/register", content=b'{"email": "a@', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert error_code(malformed) == "malformed_json"
    huge = api.post("/api/v1/auth/register", json={"email": "a@example.com", "password": "x" * (3 * 1024 * 1024)})
    assert huge.status_code == 413
    assert error_code(huge) == "payload_too_large"


def test_login_does_not_reveal_whether_the_email_exists(api: TestClient) -> None:
    register(api, "known@example.com")
    wrong_password = api.post("/api/v1/auth/login", json={"email": "known@example.com", "password": "wrong password!"})
    unknown_email = api.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong password!"})
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json()["error"]["message"] == unknown_email.json()["error"]["message"]
    assert error_code(wrong_password) == error_code(unknown_email) == "invalid_credentials"


def test_repeated_failed_logins_are_throttled_even_with_the_right_password(api: TestClient) -> None:
    register(api, "target@example.com")
    for _ in range(5):
        assert (
            api.post("/api/v1/auth/login", json={"email": "target@example.com", "password": "guess 1234!"}).status_code
            == 401
        )
    throttled = api.post("/api/v1/auth/login", json={"email": "target@example.com", "password": PASSWORD})
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    assert throttled.json()["error"]["details"][0]["limit"] == "login_attempts"
    # An unknown email is throttled the same way, so throttling reveals nothing either.
    for _ in range(5):
        api.post("/api/v1/auth/login", json={"email": "ghost@example.com", "password": "guess 1234!"})
    assert api.post("/api/v1/auth/login", json={"email": "ghost@example.com", "password": "x" * 12}).status_code == 429


def test_successful_login_clears_earlier_failures(api: TestClient) -> None:
    register(api, "forgetful@example.com")
    for _ in range(4):
        api.post("/api/v1/auth/login", json={"email": "forgetful@example.com", "password": "guess 1234!"})
    login(api, "forgetful@example.com")
    for _ in range(4):
        api.post("/api/v1/auth/login", json={"email": "forgetful@example.com", "password": "guess 1234!"})
    login(api, "forgetful@example.com")


def test_refresh_rotates_and_a_reused_token_revokes_the_whole_family(api: TestClient) -> None:
    user = register(api, "rotate@example.com")
    first = api.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token})
    assert first.status_code == 200
    rotated = first.json()["refreshToken"]
    assert rotated != user.refresh_token

    replay = api.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token})
    assert replay.status_code == 401
    assert error_code(replay) == "refresh_token_reused"

    after_theft = api.post("/api/v1/auth/refresh", json={"refreshToken": rotated})
    assert after_theft.status_code == 401
    assert error_code(after_theft) == "session_revoked"


def test_refresh_accepts_the_http_only_cookie(api: TestClient) -> None:
    user = register(api, "cookie@example.com")
    api.cookies.clear()
    response = api.post("/api/v1/auth/refresh", headers={"cookie": f"refresh_token={user.refresh_token}"})
    assert response.status_code == 200
    assert response.json()["user"]["email"] == "cookie@example.com"


def test_other_sessions_survive_when_one_family_is_revoked(api: TestClient) -> None:
    laptop = register(api, "two-devices@example.com")
    phone = login(api, "two-devices@example.com")
    api.post("/api/v1/auth/refresh", json={"refreshToken": laptop.refresh_token})
    api.post("/api/v1/auth/refresh", json={"refreshToken": laptop.refresh_token})  # reuse: laptop family ends
    assert api.post("/api/v1/auth/refresh", json={"refreshToken": phone.refresh_token}).status_code == 200


def test_logout_ends_the_session_and_clears_the_cookie(api: TestClient) -> None:
    user = register(api, "leaving@example.com")
    response = api.post("/api/v1/auth/logout", headers=user.auth)
    assert response.status_code == 204
    assert 'refresh_token=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    refused = api.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token})
    assert refused.status_code == 401


def test_refresh_with_garbage_or_an_access_token_is_401(api: TestClient) -> None:
    user = register(api, "garbage@example.com")
    for token in ("garbage", user.access_token):
        response = api.post("/api/v1/auth/refresh", json={"refreshToken": token})
        assert response.status_code == 401
        assert error_code(response) == "invalid_token"
    missing = api.post("/api/v1/auth/refresh", json={})
    assert missing.status_code == 401


def test_me_and_verify_describe_the_caller(api: TestClient) -> None:
    user = register(api, "me@example.com", name="Me")
    me = api.get("/api/v1/auth/me", headers=user.auth).json()
    assert me["id"] == user.id
    assert me["name"] == "Me"
    verify = api.get("/api/v1/auth/verify", headers=user.auth).json()
    assert verify["valid"] is True
    assert verify["userId"] == user.id
    assert verify["expiresAt"] > time.time()


def test_forgot_and_reset_password_with_a_one_time_token(api: TestClient, notifier: RecordingNotifier) -> None:
    user = register(api, "reset@example.com")
    assert api.post("/api/v1/auth/forgot-password", json={"email": "reset@example.com"}).status_code == 202
    assert api.post("/api/v1/auth/forgot-password", json={"email": "nobody@example.com"}).status_code == 202
    assert [sent[0] for sent in notifier.sent] == ["reset@example.com"]

    token = notifier.token_for("reset@example.com")
    new_password = "a brand new passphrase"
    assert api.post("/api/v1/auth/reset-password", json={"token": token, "password": new_password}).status_code == 204
    again = api.post("/api/v1/auth/reset-password", json={"token": token, "password": "yet another passphrase"})
    assert again.status_code == 400
    assert error_code(again) == "invalid_reset_token"

    assert api.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}).status_code == 401
    login(api, user.email, new_password)
    # Sessions from before the reset are over.
    assert api.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token}).status_code == 401


def test_jwks_publishes_the_key_that_verifies_access_tokens(api: TestClient) -> None:
    user = register(api, "jwks@example.com")
    keys = api.get("/api/v1/.well-known/jwks.json").json()["keys"]
    kid = jwt.get_unverified_header(user.access_token)["kid"]
    jwk = next(key for key in keys if key["kid"] == kid)
    assert "d" not in jwk  # never the private part
    claims = jwt.decode(
        user.access_token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience="stratus-api", issuer="stratus-test"
    )
    assert claims["sub"] == user.id
