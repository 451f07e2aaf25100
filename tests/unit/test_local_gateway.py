"""The local API Gateway: route matching, payload 2.0 events, authorizer handling, result translation.

Driven in-process over httpx's ASGI transport with tiny handlers, no moto: what is pinned here is the
shape API Gateway gives the handlers and the answers it gives on their behalf.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from infra.catalog import FunctionSpec, Route
from infra.local.events import (
    IncomingRequest,
    InvalidFunctionResponse,
    LambdaContext,
    RequestTime,
    build_authorizer_event,
    build_http_event,
    encode_body,
    event_headers,
    parse_function_result,
    query_parameters,
)
from infra.local.gateway import Gateway
from infra.local.routing import RouteTable

Handler = Callable[[dict[str, Any], Any], Any]

ITEMS = FunctionSpec(
    name="items",
    handler="items.handler",
    description="test function",
    routes=(
        Route("GET", "/api/v1/ping", public=True),
        Route("POST", "/api/v1/echo", public=True),
        Route("GET", "/api/v1/items/{itemId}"),
        Route("GET", "/api/v1/items/special"),
        Route("GET", "/api/v1/files/{path+}", public=True),
        Route("ANY", "/api/v1/any", public=True),
        Route("GET", "/api/v1/raw", public=True),
        Route("GET", "/api/v1/slow", public=True),
    ),
    timeout_seconds=1,
)
AUTHORIZER = FunctionSpec(name="authorizer", handler="authorizer.handler", description="test authorizer")


class Recorder:
    """The test's Lambda handlers: records every event and context, answers as the test tells it to."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.authorizer_events: list[dict[str, Any]] = []
        self.authorizer_answer: Any = {"isAuthorized": True, "context": {"userId": "u1", "roles": "member"}}
        self.answer: Callable[[dict[str, Any]], Any] = lambda event: {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": json.dumps({"ok": True}),
        }
        self.threads: set[str] = set()

    def function(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        self.threads.add(threading.current_thread().name)
        return self.answer(event)

    def authorizer(self, event: dict[str, Any], _context: Any) -> Any:
        self.authorizer_events.append(event)
        return self.authorizer_answer

    def load(self, dotted: str) -> Handler:
        return {"items.handler": self.function, "authorizer.handler": self.authorizer}[dotted]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def gateway(recorder: Recorder) -> Iterator[Gateway]:
    gateway = Gateway(
        [(route, ITEMS) for route in ITEMS.routes],
        authorizer=AUTHORIZER,
        load_handler=recorder.load,
        cors_allow_origins=["https://app.example"],
    )
    yield gateway
    gateway.close()


class Client:
    """A synchronous HTTP client for an ASGI app: each request on its own event loop, so requests from
    several threads really overlap (the gateway must not serialize them)."""

    def __init__(self, app: Gateway) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("OPTIONS", url, **kwargs)


@pytest.fixture
def client(gateway: Gateway) -> Client:
    return Client(gateway)


# -- routing ---------------------------------------------------------------------------------------------


def test_routes_match_literal_segments_before_parameters() -> None:
    table = RouteTable([(route, ITEMS) for route in ITEMS.routes])
    special = table.match("GET", "/api/v1/items/special")
    assert special is not None
    assert special.route.path == "/api/v1/items/special"
    assert special.path_parameters == {}
    other = table.match("GET", "/api/v1/items/a%20b")
    assert other is not None
    assert other.route.path == "/api/v1/items/{itemId}"
    assert other.path_parameters == {"itemId": "a b"}


def test_routes_need_method_and_exact_segments() -> None:
    table = RouteTable([(route, ITEMS) for route in ITEMS.routes])
    assert table.match("POST", "/api/v1/items/1") is None
    assert table.match("GET", "/api/v1/items/1/extra") is None
    assert table.match("GET", "/api/v1/items/") is None
    assert table.match("GET", "/api/v1/ping/") is None


def test_greedy_parameter_takes_the_rest_of_the_path() -> None:
    table = RouteTable([(route, ITEMS) for route in ITEMS.routes])
    match = table.match("GET", "/api/v1/files/a/b/c.txt")
    assert match is not None
    assert match.path_parameters == {"path": "a/b/c.txt"}
    assert table.match("GET", "/api/v1/files/") is None


def test_any_matches_every_method() -> None:
    table = RouteTable([(route, ITEMS) for route in ITEMS.routes])
    for method in ("GET", "POST", "DELETE"):
        assert table.match(method, "/api/v1/any") is not None


def test_a_route_declared_twice_is_refused() -> None:
    route = Route("GET", "/x")
    with pytest.raises(ValueError, match="twice"):
        RouteTable([(route, ITEMS), (route, ITEMS)])


# -- event builders --------------------------------------------------------------------------------------


def test_headers_are_lower_cased_joined_and_cookies_split_out() -> None:
    headers, cookies = event_headers(
        [("X-Multi", "a"), ("x-multi", "b"), ("Cookie", "one=1; two=2"), ("Content-Type", "text/plain")]
    )
    assert headers == {"x-multi": "a,b", "content-type": "text/plain"}
    assert cookies == ["one=1", "two=2"]


def test_query_parameters_are_decoded_and_repeats_joined() -> None:
    assert query_parameters("a=1&a=2&b=x%20y&empty=") == {"a": "1,2", "b": "x y", "empty": ""}
    assert query_parameters("") == {}


def test_text_bodies_stay_text_and_others_are_base64() -> None:
    assert encode_body(b'{"a":1}', "application/json", None) == ('{"a":1}', False)
    assert encode_body("héllo".encode(), "text/plain; charset=utf-8", None) == ("héllo", False)
    assert encode_body(b"\xff\xfe", "application/json", None) == (base64.b64encode(b"\xff\xfe").decode(), True)
    assert encode_body(b"%PDF", "application/pdf", None) == (base64.b64encode(b"%PDF").decode(), True)
    assert encode_body(b"{}", "application/json", "gzip")[1] is True


def test_http_event_has_the_payload_2_shape() -> None:
    request = IncomingRequest(
        method="GET",
        raw_path="/api/v1/items/a%20b",
        path="/api/v1/items/a b",
        raw_query_string="x=1&x=2",
        headers=(("Host", "127.0.0.1:8000"), ("User-Agent", "pytest"), ("Cookie", "sid=abc")),
        source_ip="10.0.0.1",
        server_port=8000,
    )
    now = RequestTime(1_700_000_000_123)
    event = build_http_event(
        request,
        route_key="GET /api/v1/items/{itemId}",
        path_parameters={"itemId": "a b"},
        request_id="req-1",
        now=now,
        authorizer_context={"userId": "u1"},
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /api/v1/items/{itemId}"
    assert event["rawPath"] == "/api/v1/items/a%20b"
    assert event["rawQueryString"] == "x=1&x=2"
    assert event["cookies"] == ["sid=abc"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["user-agent"] == "pytest"
    assert event["headers"]["x-forwarded-for"] == "10.0.0.1"
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["pathParameters"] == {"itemId": "a b"}
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    context = event["requestContext"]
    assert context["accountId"] == "000000000000"
    assert context["domainName"] == "127.0.0.1:8000"
    assert context["http"] == {
        "method": "GET",
        "path": "/api/v1/items/a b",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.1",
        "userAgent": "pytest",
    }
    assert context["requestId"] == "req-1"
    assert context["stage"] == "$default"
    assert context["timeEpoch"] == 1_700_000_000_123
    assert context["time"] == "14/Nov/2023:22:13:20 +0000"
    assert context["authorizer"] == {"lambda": {"userId": "u1"}}


def test_authorizer_event_has_the_request_authorizer_shape() -> None:
    request = IncomingRequest(method="GET", raw_path="/api/v1/items/1", path="/api/v1/items/1")
    event = build_authorizer_event(
        request,
        route_key="GET /api/v1/items/{itemId}",
        path_parameters={"itemId": "1"},
        identity_source=["Bearer t"],
        request_id="req-2",
        now=RequestTime.now(),
        region="us-east-1",
    )
    assert event["version"] == "2.0"
    assert event["type"] == "REQUEST"
    assert event["identitySource"] == ["Bearer t"]
    assert event["routeArn"] == "arn:aws:execute-api:us-east-1:000000000000:local/$default/GET/api/v1/items/1"
    assert event["routeKey"] == "GET /api/v1/items/{itemId}"
    assert event["pathParameters"] == {"itemId": "1"}
    assert "authorizer" not in event["requestContext"]


def test_results_without_status_code_are_a_200_json_body() -> None:
    response = parse_function_result({"hello": "world"}, "r")
    assert (response.status, response.body) == (200, b'{"hello": "world"}')
    assert response.header("content-type") == "application/json"
    assert parse_function_result("plain", "r").body == b"plain"


def test_malformed_results_are_refused() -> None:
    for result in ({"statusCode": "abc"}, {"statusCode": 200, "body": 5}, {"statusCode": 200, "headers": ["x"]}):
        with pytest.raises(InvalidFunctionResponse):
            parse_function_result(result, "r")


def test_lambda_context_counts_down() -> None:
    context = LambdaContext(function_name="f", memory_limit_in_mb=256, timeout_seconds=2, region="us-east-1")
    assert 1000 < context.get_remaining_time_in_millis() <= 2000
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:000000000000:function:f"
    assert context.aws_request_id


# -- the gateway over HTTP -------------------------------------------------------------------------------


def test_unknown_route_is_api_gateway_404(client: Client) -> None:
    response = client.get("/api/v1/nowhere")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert response.headers["apigw-requestid"]
    assert client.delete("/api/v1/ping").status_code == 404  # wrong method: 404 too, never 405


def test_protected_route_without_authorization_is_401_without_calling_anything(
    client: Client, recorder: Recorder
) -> None:
    response = client.get("/api/v1/items/1")
    assert response.status_code == 401
    assert response.text == '{"message":"Unauthorized"}'
    assert recorder.authorizer_events == []
    assert recorder.events == []


def test_denied_caller_is_403(client: Client, recorder: Recorder) -> None:
    recorder.authorizer_answer = {"isAuthorized": False}
    response = client.get("/api/v1/items/1", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    assert recorder.events == []


def test_authorizer_context_reaches_the_function(client: Client, recorder: Recorder) -> None:
    recorder.authorizer_answer = {"isAuthorized": True, "context": {"authError": "token_expired"}}
    response = client.get("/api/v1/items/42?x=1", headers={"Authorization": "Bearer t"})
    assert response.status_code == 200
    (authorizer_event,) = recorder.authorizer_events
    assert authorizer_event["identitySource"] == ["Bearer t"]
    (event,) = recorder.events
    assert event["requestContext"]["authorizer"] == {"lambda": {"authError": "token_expired"}}
    assert event["pathParameters"] == {"itemId": "42"}
    assert event["queryStringParameters"] == {"x": "1"}
    assert event["routeKey"] == "GET /api/v1/items/{itemId}"


def test_authorizer_answers_are_cached_per_header(client: Client, recorder: Recorder) -> None:
    for _ in range(3):
        assert client.get("/api/v1/items/1", headers={"Authorization": "Bearer a"}).status_code == 200
    assert client.get("/api/v1/items/1", headers={"Authorization": "Bearer b"}).status_code == 200
    assert [event["identitySource"] for event in recorder.authorizer_events] == [["Bearer a"], ["Bearer b"]]


def test_failing_authorizer_is_500(client: Client, recorder: Recorder) -> None:
    recorder.authorizer_answer = {"principalId": "iam-policy-style"}
    response = client.get("/api/v1/items/1", headers={"Authorization": "Bearer t"})
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_public_route_skips_the_authorizer(client: Client, recorder: Recorder) -> None:
    assert client.get("/api/v1/ping").status_code == 200
    assert recorder.authorizer_events == []
    assert "authorizer" not in recorder.events[0]["requestContext"]


def test_cookies_reach_the_function_and_set_cookie_comes_back_per_cookie(client: Client, recorder: Recorder) -> None:
    recorder.answer = lambda event: {"statusCode": 204, "cookies": ["a=1; Path=/", "b=2; HttpOnly"]}
    response = client.get("/api/v1/ping", headers={"Cookie": "refresh_token=xyz; theme=dark"})
    assert recorder.events[0]["cookies"] == ["refresh_token=xyz", "theme=dark"]
    assert "cookie" not in recorder.events[0]["headers"]
    assert response.status_code == 204
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]


def test_bodies_round_trip_text_and_binary(client: Client, recorder: Recorder) -> None:
    recorder.answer = lambda event: {
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream"},
        "body": event["body"] if event["isBase64Encoded"] else base64.b64encode(event["body"].encode()).decode(),
        "isBase64Encoded": True,
    }
    text = client.post("/api/v1/echo", content=b'{"a": 1}', headers={"content-type": "application/json"})
    assert recorder.events[0]["body"] == '{"a": 1}'
    assert recorder.events[0]["isBase64Encoded"] is False
    assert text.content == b'{"a": 1}'
    binary = bytes(range(256))
    echoed = client.post("/api/v1/echo", content=binary, headers={"content-type": "application/octet-stream"})
    assert recorder.events[1]["isBase64Encoded"] is True
    assert base64.b64decode(recorder.events[1]["body"]) == binary
    assert echoed.content == binary


def test_bare_results_and_errors(client: Client, recorder: Recorder) -> None:
    recorder.answer = lambda event: {"items": []}
    response = client.get("/api/v1/ping")
    assert (response.status_code, response.json()) == (200, {"items": []})
    assert response.headers["content-type"] == "application/json"

    def boom(_: dict[str, Any]) -> Any:
        raise RuntimeError("handler bug")

    recorder.answer = boom
    response = client.get("/api/v1/ping")
    assert (response.status_code, response.json()) == (500, {"message": "Internal Server Error"})
    recorder.answer = lambda event: {"statusCode": 200, "body": object()}  # not JSON: Lambda cannot return it
    assert client.get("/api/v1/ping").status_code == 500


def test_payload_limit_is_413(gateway: Gateway, client: Client, recorder: Recorder) -> None:
    gateway.max_payload_bytes = 1024
    response = client.post("/api/v1/echo", content=b"x" * 1025)
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}
    assert recorder.events == []


def test_function_timeout_is_500_and_integration_timeout_is_503(
    gateway: Gateway, client: Client, recorder: Recorder
) -> None:
    def slow(_: dict[str, Any]) -> Any:
        time.sleep(1.5)
        return {"statusCode": 200}

    recorder.answer = slow
    # The function's own 1 s timeout comes first: Lambda kills it, API Gateway answers 500.
    assert client.get("/api/v1/slow").json() == {"message": "Internal Server Error"}
    gateway.integration_timeout_seconds = 0.5
    response = client.get("/api/v1/slow")
    assert (response.status_code, response.json()) == (503, {"message": "Service Unavailable"})


def test_handlers_get_a_lambda_context_and_run_off_the_event_loop(client: Client, recorder: Recorder) -> None:
    client.get("/api/v1/ping")
    (context,) = recorder.contexts
    assert context.function_name == "stratus-local-items"
    assert context.memory_limit_in_mb == ITEMS.memory_mb
    assert 0 < context.get_remaining_time_in_millis() <= 1000
    assert all(name.startswith("lambda") for name in recorder.threads)


def test_requests_run_concurrently(client: Client, recorder: Recorder) -> None:
    barrier = threading.Barrier(2, timeout=2)

    def meet(_: dict[str, Any]) -> Any:
        barrier.wait()  # passes only if two invocations are in flight at once
        return {"statusCode": 200}

    recorder.answer = meet
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(client.get("/api/v1/raw").status_code)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200, 200]


def test_cors_preflight_is_answered_by_the_gateway(client: Client, recorder: Recorder) -> None:
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    response = client.options("/api/v1/items/1", headers=headers)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in response.headers["access-control-allow-headers"]
    assert recorder.events == []
    assert client.options("/api/v1/nowhere", headers=headers).status_code == 404
