"""What the local API Gateway guarantees over real HTTP: API Gateway's own answers, the authorizer in front
of every protected catalog route, the merged docs, CORS preflights, and a clean stop on Ctrl-C/SIGTERM."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest

from infra.catalog import HTTP_FUNCTIONS, Route, all_routes

if TYPE_CHECKING:
    from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

PROTECTED = [route for route, _ in all_routes() if not route.public]
DOCUMENTED = [route for spec in HTTP_FUNCTIONS if spec.app for route in spec.routes]


def concrete(path: str) -> str:
    """A request path for a route template: every `{param}` filled in."""
    return re.sub(r"\{[^}]+\}", "x1", path)


def test_health_answers_through_the_gateway(http: httpx.Client) -> None:
    response = http.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["apigw-requestid"]


def test_unknown_route_is_api_gateway_404(http: httpx.Client) -> None:
    for method, path in [("GET", "/api/v1/nowhere"), ("GET", "/"), ("DELETE", "/api/v1/health")]:
        response = http.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.text == '{"message":"Not Found"}'
        assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("route", PROTECTED, ids=lambda route: route.route_key)
def test_protected_route_without_authorization_is_401(http: httpx.Client, route: Route) -> None:
    response = http.request(route.method, concrete(route.path))
    assert response.status_code == 401
    assert response.text == '{"message":"Unauthorized"}'


def test_bad_credentials_reach_the_function_as_an_api_error(http: httpx.Client) -> None:
    # The authorizer lets bad credentials through with an authError; the function answers in the API's shape.
    response = http.get("/api/v1/auth/me", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert response.json()["error"]["requestId"] == response.headers["apigw-requestid"]


def test_authorized_request_reaches_the_function_as_its_caller(http: httpx.Client) -> None:
    registered = http.post(
        "/api/v1/auth/register", json={"email": "gateway-e2e@example.com", "password": "a long enough password"}
    )
    assert registered.status_code == 201, registered.text
    token = registered.json()["accessToken"]
    me = http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "gateway-e2e@example.com"


def test_requests_are_served_concurrently(http: httpx.Client) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: http.get("/api/v1/health").status_code, range(16)))
    assert statuses == [200] * 16


def test_cors_preflight_is_answered(http: httpx.Client) -> None:
    response = http.options(
        "/api/v1/auth/me",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"  # local mode's default CORS_ALLOW_ORIGINS
    assert "authorization" in response.headers["access-control-allow-headers"]


def test_swagger_ui_is_served(http: httpx.Client) -> None:
    response = http.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text


def test_openapi_document_covers_every_documented_route(http: httpx.Client) -> None:
    response = http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    paths = document["paths"]
    missing = [route.route_key for route in DOCUMENTED if route.method.lower() not in paths.get(route.path, {})]
    assert missing == []
    for route in DOCUMENTED:
        operation = paths[route.path][route.method.lower()]
        expected: list[dict[str, list[str]]] = [] if route.public else [{"bearerAuth": []}]
        assert operation.get("security", []) == expected, route.route_key
    # Every $ref resolves inside the merged document.
    refs = set(re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', response.text))
    assert refs <= set(document["components"]["schemas"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stops_cleanly_on_signal(start_local_stack: Callable[[], LocalStack], sig: signal.Signals) -> None:
    stack = start_local_stack()
    stack.wait_until_healthy()
    stack.send_signal(sig)
    assert stack.wait(timeout=10) == 0, stack.log()
    log = stack.log()
    assert "Traceback" not in log, log
    with pytest.raises(httpx.ConnectError):
        httpx.get(stack.base_url + "/api/v1/health", timeout=2)
