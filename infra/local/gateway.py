"""A local stand-in for API Gateway HTTP API: an ASGI app that invokes the real Lambda handlers.

What it mimics, because handlers and tests would behave differently without it:
- routing from the catalog, most specific route first, 404 `{"message":"Not Found"}` otherwise;
- the Lambda authorizer on non-public routes: 401 without an `Authorization` header (the identity source),
  403 when it answers `isAuthorized: false`, its answers cached per header value for the catalog's TTL,
  and its `context` handed to the function as `requestContext.authorizer.lambda`;
- payload 2.0 events in and results out (see `infra.local.events`), every value through a JSON round trip
  as the Lambda service does, so a handler returning something unserializable fails here as in AWS;
- the 10 MB payload limit (413), the function's own timeout (500) and the 30 s integration timeout (503);
- CORS preflights, which API Gateway answers itself when the API has a CORS configuration.

With `websocket=WebSocketOptions(...)` it also serves the WebSocket API, its `@connections` management API and
Lambda's Invoke API (see `infra.local.websocket`).

Handlers are synchronous and Mangum drives its ASGI app with `asyncio.get_event_loop()` on the calling
thread, so invocations run on a thread pool whose threads each own an event loop. Requests run
concurrently, as separate Lambda containers would.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from infra.catalog import AUTHORIZER_CACHE_SECONDS, FunctionSpec, Route
from infra.local.asgi import scope_header
from infra.local.events import (
    AuthorizerAnswer,
    GatewayResponse,
    IncomingRequest,
    InvalidFunctionResponse,
    LambdaContext,
    RequestTime,
    build_authorizer_event,
    build_http_event,
    gateway_error,
    new_request_id,
    parse_authorizer_result,
    parse_function_result,
)
from infra.local.routing import RouteTable
from infra.local.websocket import WebSocketBridge
from shared.http import cors

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from infra.local.openapi import ApiDocs

LambdaHandler = Callable[[Any, Any], Any]
HandlerLoader = Callable[[str], LambdaHandler]

log = logging.getLogger("stratus.local")

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # HTTP API's request payload limit
INTEGRATION_TIMEOUT_SECONDS = 30.0  # HTTP API's maximum integration timeout
_AUTH_CACHE_MAX_ENTRIES = 10_000


def import_handler(dotted: str) -> LambdaHandler:
    """Resolve a catalog handler path such as `functions.identity.handler.lambda_handler`."""
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {dotted!r} is not a dotted 'module.attribute' path")
    handler = getattr(importlib.import_module(module_name), attribute)
    if not callable(handler):
        raise TypeError(f"handler {dotted!r} is not callable")
    return handler  # type: ignore[no-any-return]


def _new_thread_loop() -> None:
    # Mangum calls asyncio.get_event_loop() on the invoking thread; give each worker thread its own loop.
    asyncio.set_event_loop(asyncio.new_event_loop())


@dataclass(frozen=True)
class WebSocketOptions:
    """What the local WebSocket API serves: its authorizer and handler, its actions, the invocable functions."""

    authorizer: FunctionSpec
    handler: FunctionSpec
    actions: tuple[str, ...]
    invocable: tuple[FunctionSpec, ...] = ()
    path: str = "/ws"


class _FunctionTimeout(Exception):
    pass


class Gateway:
    """The ASGI app local mode serves: every catalog route, plus `/docs` and `/openapi.json`."""

    def __init__(
        self,
        routes: Iterable[tuple[Route, FunctionSpec]],
        *,
        authorizer: FunctionSpec | None,
        stage: str = "local",
        region: str = "us-east-1",
        docs: ApiDocs | None = None,
        load_handler: HandlerLoader = import_handler,
        authorizer_cache_seconds: float = AUTHORIZER_CACHE_SECONDS,
        integration_timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        cors_allow_origins: Iterable[str] | None = None,
        max_workers: int = 32,
        streaming: Iterable[FunctionSpec] = (),
        websocket: WebSocketOptions | None = None,
    ) -> None:
        self.routes = RouteTable(routes)
        # Streaming functions run their ASGI app behind a Function URL in AWS: here it gets the request as is.
        self.streaming_routes = RouteTable((route, spec) for spec in streaming for route in spec.routes)
        self._streaming_apps: dict[str, ASGIApp] = {}
        self.authorizer = authorizer
        self.stage = stage
        self.region = region
        self.docs = docs
        self.authorizer_cache_seconds = authorizer_cache_seconds
        self.integration_timeout_seconds = integration_timeout_seconds
        self.max_payload_bytes = max_payload_bytes
        if cors_allow_origins is None:
            configured = os.environ.get("CORS_ALLOW_ORIGINS", "")
            cors_allow_origins = [origin.strip() for origin in configured.split(",") if origin.strip()]
        self.cors_allow_origins = frozenset(cors_allow_origins)
        self._load_handler = load_handler
        self._handlers: dict[str, LambdaHandler] = {}
        self._handlers_lock = threading.Lock()
        self._auth_cache: dict[str, tuple[float, AuthorizerAnswer]] = {}
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="lambda", initializer=_new_thread_loop
        )
        self._running = 0
        self._running_lock = threading.Lock()
        self.websocket: WebSocketBridge | None = None
        if websocket is not None:
            self.websocket = WebSocketBridge(
                self._invoke,
                stage=stage,
                region=region,
                authorizer=websocket.authorizer,
                handler=websocket.handler,
                actions=websocket.actions,
                invocable=websocket.invocable,
            )
        self.websocket_path = websocket.path if websocket is not None else None

    # -- ASGI -------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            if self.websocket is not None and scope["path"] == self.websocket_path:
                await self.websocket.handle_websocket(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        if self.websocket is not None and self.websocket.serves(scope["path"]):
            # The WebSocket API's `@connections` management API and Lambda's Invoke API, for the handlers.
            await self.websocket.handle_http(scope, receive, send)
            return
        if scope["method"] == "GET" and scope["path"] in ("/docs", "/openapi.json") and self.docs is not None:
            # Local extras, not API Gateway routes: the merged API documentation.
            await self.docs.serve(scope["path"], scope, receive, send)
            return
        streaming = self._streaming_app(scope)
        if streaming is not None:
            await streaming(scope, receive, send)
            return
        response = await self.handle(scope, receive, new_request_id())
        await _send(send, response)

    def _streaming_app(self, scope: Scope) -> ASGIApp | None:
        """The ASGI app of the streaming function serving this request (preflights included), or None."""
        raw_path = _raw_path(scope)
        match = self.streaming_routes.match(scope["method"], raw_path)
        function = match.function if match else None
        if function is None and scope["method"] == "OPTIONS":
            function = self.streaming_routes.function_for_path(raw_path)
        if function is None:
            return None
        with self._handlers_lock:
            if function.name not in self._streaming_apps:
                module_name, _, attribute = (function.app or "").partition(":")
                self._streaming_apps[function.name] = getattr(importlib.import_module(module_name), attribute)
            return self._streaming_apps[function.name]

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Stop taking invocations. A handler still running keeps its thread; see `running_invocations`."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def running_invocations(self) -> int:
        with self._running_lock:
            return self._running

    # -- one request ------------------------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, request_id: str) -> GatewayResponse:
        raw_path = _raw_path(scope)
        match = self.routes.match(scope["method"], raw_path)
        if match is None:
            if scope["method"] == "OPTIONS" and self.routes.path_exists(raw_path):
                return self._preflight(scope, request_id)
            return gateway_error(404, "Not Found", request_id)

        body = await _read_body(scope, receive, self.max_payload_bytes)
        if body is None:
            return gateway_error(413, "Request Entity Too Large", request_id)
        request = _incoming_request(scope, raw_path, body)
        now = RequestTime.now()

        authorizer_context: dict[str, Any] | None = None
        if not match.route.public and self.authorizer is not None:
            verdict = await self._authorize(request, match.route, match.path_parameters, request_id, now)
            if isinstance(verdict, GatewayResponse):
                return verdict
            authorizer_context = verdict

        event = build_http_event(
            request,
            route_key=match.route.route_key,
            path_parameters=match.path_parameters,
            request_id=request_id,
            now=now,
            authorizer_context=authorizer_context,
        )
        return await self._integrate(match.function, match.route, event, request_id)

    async def _integrate(
        self, function: FunctionSpec, route: Route, event: dict[str, Any], request_id: str
    ) -> GatewayResponse:
        """Invoke the route's function and translate its result, or fail the way API Gateway does."""
        # A function that outlives its own timeout is killed by Lambda (API Gateway then answers 500);
        # one that outlives the integration timeout is abandoned by API Gateway (503).
        function_timeout = float(function.timeout_seconds)
        try:
            result = await self._invoke(function, event, min(function_timeout, self.integration_timeout_seconds))
            return parse_function_result(result, request_id)
        except _FunctionTimeout:
            if function_timeout <= self.integration_timeout_seconds:
                return gateway_error(500, "Internal Server Error", request_id)
            return gateway_error(503, "Service Unavailable", request_id)
        except InvalidFunctionResponse as error:
            log.error("function %s answered a malformed response: %s", function.name, error)
        except Exception:
            log.exception("function %s failed on %s", function.name, route.route_key)
        return gateway_error(500, "Internal Server Error", request_id)

    async def _authorize(
        self,
        request: IncomingRequest,
        route: Route,
        path_parameters: Mapping[str, str],
        request_id: str,
        now: RequestTime,
    ) -> dict[str, Any] | GatewayResponse:
        """The authorizer's context for the function, or the error response API Gateway sends instead."""
        assert self.authorizer is not None
        identity = next((value for name, value in request.headers if name.lower() == "authorization"), "")
        if not identity:
            # The identity source is missing: API Gateway answers without calling the authorizer.
            return gateway_error(401, "Unauthorized", request_id)

        cached = self._auth_cache.get(identity)
        if cached is not None and cached[0] > time.monotonic():
            answer = cached[1]
        else:
            event = build_authorizer_event(
                request,
                route_key=route.route_key,
                path_parameters=path_parameters,
                identity_source=[identity],
                request_id=request_id,
                now=now,
                region=self.region,
            )
            try:
                result = await self._invoke(self.authorizer, event, float(self.authorizer.timeout_seconds))
                answer = parse_authorizer_result(result)
            except _FunctionTimeout:
                log.error("the authorizer timed out after %ss", self.authorizer.timeout_seconds)
                return gateway_error(500, "Internal Server Error", request_id)
            except Exception:
                log.exception("the authorizer failed")
                return gateway_error(500, "Internal Server Error", request_id)
            self._remember(identity, answer)  # denials are cached too, as by API Gateway

        if not answer.authorized:
            return gateway_error(403, "Forbidden", request_id)
        return answer.context

    def _remember(self, identity: str, answer: AuthorizerAnswer) -> None:
        if self.authorizer_cache_seconds <= 0:
            return
        now = time.monotonic()
        if len(self._auth_cache) >= _AUTH_CACHE_MAX_ENTRIES:
            self._auth_cache = {key: value for key, value in self._auth_cache.items() if value[0] > now}
            if len(self._auth_cache) >= _AUTH_CACHE_MAX_ENTRIES:
                self._auth_cache.clear()
        self._auth_cache[identity] = (now + self.authorizer_cache_seconds, answer)

    def _preflight(self, scope: Scope, request_id: str) -> GatewayResponse:
        """Answer a CORS preflight the way an HTTP API with a CORS configuration does (no function call)."""
        origin = scope_header(scope, "origin")
        headers: list[tuple[str, str]] = [("apigw-requestid", request_id)]
        if origin and ("*" in self.cors_allow_origins or origin in self.cors_allow_origins):
            wildcard = "*" in self.cors_allow_origins
            headers += [
                ("access-control-allow-origin", "*" if wildcard else origin),
                ("access-control-allow-methods", ",".join(cors.ALLOWED_METHODS)),
                ("access-control-allow-headers", ",".join(cors.ALLOWED_HEADERS)),
                ("access-control-max-age", str(cors.MAX_AGE_SECONDS)),
            ]
            if not wildcard:
                headers += [("access-control-allow-credentials", "true"), ("vary", "origin")]
        return GatewayResponse(204, tuple(headers))

    # -- invocation -------------------------------------------------------------------------------------

    async def _invoke(self, function: FunctionSpec, event: dict[str, Any], timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        if function.handler not in self._handlers:
            # The cold start: Lambda's init phase does not count against the function's timeout.
            await loop.run_in_executor(self._executor, self._handler, function.handler)
        context = LambdaContext(
            function_name=f"stratus-{self.stage}-{function.name}",
            memory_limit_in_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
            region=self.region,
        )
        future = loop.run_in_executor(self._executor, self._run, function.handler, event, context)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            # The thread cannot be killed; it finishes in the background and its result is dropped.
            log.warning("function %s did not answer within %ss", function.name, timeout)
            raise _FunctionTimeout from None

    def _run(self, handler_path: str, event: dict[str, Any], context: LambdaContext) -> Any:
        with self._running_lock:
            self._running += 1
        try:
            handler = self._handler(handler_path)
            # The Lambda service hands the handler a parsed JSON document and serializes what it returns.
            result = handler(json.loads(json.dumps(event)), context)
            return json.loads(json.dumps(result))
        finally:
            with self._running_lock:
                self._running -= 1

    def _handler(self, handler_path: str) -> LambdaHandler:
        handler = self._handlers.get(handler_path)
        if handler is None:
            # Imported once, on first use, like a cold start; the lock keeps two threads from racing it.
            with self._handlers_lock:
                handler = self._handlers.get(handler_path)
                if handler is None:
                    handler = self._load_handler(handler_path)
                    self._handlers[handler_path] = handler
        return handler


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray) and raw:
        return bytes(raw).decode("latin-1").split("?", 1)[0]
    return str(scope["path"])


def _incoming_request(scope: Scope, raw_path: str, body: bytes) -> IncomingRequest:
    client = scope.get("client") or ("127.0.0.1", 0)
    server = scope.get("server") or ("127.0.0.1", 80)
    http_version = scope.get("http_version", "1.1")
    return IncomingRequest(
        method=scope["method"],
        raw_path=raw_path,
        path=unquote(raw_path),
        raw_query_string=bytes(scope.get("query_string", b"")).decode("latin-1"),
        headers=tuple((key.decode("latin-1"), value.decode("latin-1")) for key, value in scope["headers"]),
        body=body,
        source_ip=str(client[0]),
        protocol=f"HTTP/{http_version}",
        scheme=str(scope.get("scheme", "http")),
        server_port=int(server[1] or 80),
    )


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes `limit` (checked before reading when declared)."""
    declared = scope_header(scope, "content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send(send: Send, response: GatewayResponse) -> None:
    # API Gateway sets the length of what it actually sends; a function's own content-length is dropped.
    headers = [
        (name.lower().encode("latin-1"), value.encode("utf-8"))
        for name, value in response.headers
        if name.lower() != "content-length"
    ]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
