"""Guarantees that must hold when requests race: they rest on DynamoDB conditions, not on timing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from tests.integration.conftest import PASSWORD, error_code, register


def test_simultaneous_first_registrations_make_exactly_one_admin(api: TestClient) -> None:
    def sign_up(number: int) -> str:
        response = api.post("/api/v1/auth/register", json={"email": f"racer{number}@example.com", "password": PASSWORD})
        assert response.status_code == 201, response.text
        return str(response.json()["user"]["roles"][0])

    with ThreadPoolExecutor(max_workers=8) as pool:
        roles = list(pool.map(sign_up, range(8)))
    assert sorted(roles) == ["admin"] + ["member"] * 7


def test_same_email_registered_concurrently_creates_one_account(api: TestClient) -> None:
    def sign_up(_: int) -> int:
        response = api.post("/api/v1/auth/register", json={"email": "twice@example.com", "password": PASSWORD})
        return response.status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(sign_up, range(6)))
    assert statuses == [201] + [409] * 5


def test_concurrent_refreshes_with_one_token_let_exactly_one_through(api: TestClient) -> None:
    user = register(api, "racer@example.com")

    def spend(_: int) -> tuple[int, str]:
        response = api.post("/api/v1/auth/refresh", json={"refreshToken": user.refresh_token})
        return response.status_code, response.json().get("refreshToken") or error_code(response)

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(spend, range(6)))
    winners = [token for status, token in outcomes if status == 200]
    assert len(winners) == 1
    assert all(status in (200, 401) for status, _ in outcomes)
    # Reuse was detected, so the family is closed: not even the winner's new token still works.
    for token in winners:
        assert api.post("/api/v1/auth/refresh", json={"refreshToken": token}).status_code == 401
