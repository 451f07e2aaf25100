"""The app factory: one error shape for every failure, security headers, body limit, auth by construction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from shared.errors import Conflict, RateLimited
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal
from shared.http.models import ApiModel
from shared.http.responses import ErrorBody
from shared.settings import settings_from_environ


class Thing(ApiModel):
    display_name: str
    count: int


open_routes = APIRouter(prefix="/api/v1")
closed_routes = APIRouter(prefix="/api/v1")


@open_routes.post("/things")
def create_thing(body: Thing) -> Thing:
    return body


@open_routes.get("/conflict")
def conflict() -> None:
    raise Conflict("That thing exists already", code="thing_exists")


@open_routes.get("/limited")
def limited() -> None:
    raise RateLimited("Slow down", retry_after_seconds=42, limit="requests_per_minute")


@open_routes.get("/boom")
def boom() -> None:
    raise RuntimeError("database password is hunter2")


@closed_routes.get("/mine")
def mine(principal: CurrentPrincipal) -> dict[str, str]:
    return {"userId": principal.user_id}


@closed_routes.get("/forgot-to-ask")
def forgot_to_ask() -> dict[str, str]:
    return {"secret": "data"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = settings_from_environ(
        {"STAGE": "test", "MAX_BODY_BYTES": "2048", "CORS_ALLOW_ORIGINS": "https://app.example"}
    )
    app = create_app(title="test", public=[open_routes], protected=[closed_routes], settings=settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _error(response):  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"}
    ErrorBody.model_validate(body)  # what the OpenAPI document says every error looks like
    assert body["error"]["requestId"] == response.headers["x-request-id"]
    return body["error"]


def test_json_is_camel_case_both_ways(client: TestClient) -> None:
    response = client.post("/api/v1/things", json={"displayName": "a", "count": 1})
    assert response.status_code == 200
    assert response.json() == {"displayName": "a", "count": 1}


def test_missing_and_mistyped_fields_are_422_with_the_fields_named(client: TestClient) -> None:
    response = client.post("/api/v1/things", json={"count": "many"})
    assert response.status_code == 422
    error = _error(response)
    assert error["code"] == "validation_error"
    assert {detail["field"] for detail in error["details"]} == {"displayName", "count"}
    assert "many" not in response.text


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post("/api/v1/things", content=b'{"displayName": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert _error(response)["code"] == "malformed_json"


def test_oversized_body_is_413_whether_declared_or_streamed(client: TestClient) -> None:
    declared = client.post("/api/v1/things", content=b"x" * 4096, headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert _error(declared)["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield b'{"displayName": "'
        yield b"y" * 4096
        yield b'", "count": 1}'

    streamed = client.post("/api/v1/things", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_domain_errors_keep_their_status_code_and_headers(client: TestClient) -> None:
    response = client.get("/api/v1/conflict")
    assert response.status_code == 409
    assert _error(response) | {"requestId": None} == {
        "code": "thing_exists",
        "message": "That thing exists already",
        "requestId": None,
    }
    limited = client.get("/api/v1/limited")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "42"
    assert _error(limited)["details"] == [{"limit": "requests_per_minute", "retryAfter": 42}]


def test_unexpected_error_is_a_generic_500_that_leaks_nothing(client: TestClient) -> None:
    response = client.get("/api/v1/boom")
    assert response.status_code == 500
    assert _error(response)["code"] == "internal_error"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


def test_unknown_route_is_404_in_the_error_shape(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"


def test_every_response_carries_security_headers(client: TestClient) -> None:
    headers = client.get("/api/v1/conflict").headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "max-age" in headers["strict-transport-security"]
    assert headers["cache-control"] == "no-store"


def test_request_id_is_echoed_from_the_caller(client: TestClient) -> None:
    response = client.get("/api/v1/conflict", headers={"x-request-id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    assert response.json()["error"]["requestId"] == "trace-123"


def test_cors_allows_only_the_configured_origin(client: TestClient) -> None:
    allowed = client.options(
        "/api/v1/things", headers={"origin": "https://app.example", "access-control-request-method": "POST"}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    refused = client.options(
        "/api/v1/things", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
    )
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.usefixtures("aws")
def test_protected_routes_need_a_credential_even_when_the_route_does_not_ask(client: TestClient) -> None:
    for path in ("/api/v1/mine", "/api/v1/forgot-to-ask"):
        response = client.get(path)
        assert response.status_code == 401
        assert _error(response)["code"] == "missing_credentials"
        bad = client.get(path, headers={"authorization": "Bearer not-a-token"})
        assert bad.status_code == 401
        assert _error(bad)["code"] == "invalid_token"
