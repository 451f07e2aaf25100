"""A local stand-in for API Gateway's WebSocket API, its `@connections` management API, and Lambda's Invoke API.

- `ws://host:port/ws?token=...`: the `$connect` authorizer runs first (no `token`: 401, Deny: 403, the
  handshake refused), then the `$connect` integration; each message becomes a MESSAGE event whose `routeKey`
  is chosen as the route selection expression `$request.body.action` would (an unknown action: `$default`);
  a close becomes `$disconnect`. A message over 128 KB closes the connection (1009), as API Gateway does.
- `POST/GET/DELETE /@connections/{id}` (under any stage prefix): the management API the handlers' boto3
  `apigatewaymanagementapi` client calls; an unknown or closed id answers 410 `GoneException`.
- `POST /2015-03-31/functions/{name}/invocations`: Lambda's Invoke API, so a handler's `lambda.invoke` reaches
  the named catalog function; `X-Amz-Invocation-Type: Event` answers 202 and runs it in the background.

One difference on purpose: a connection's messages are handled one at a time, in order (API Gateway may run
them concurrently), which keeps local behaviour and the tests deterministic.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from infra.catalog import FunctionSpec
from infra.local.asgi import scope_header
from infra.local.events import ACCOUNT_ID, API_ID, RequestTime, event_headers, new_request_id, query_parameters

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

log = logging.getLogger("stratus.local")

MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway WebSocket message limit (frames are 32 KB)
_INVOKE_PREFIX = "/2015-03-31/functions/"
_CONNECTIONS_MARKER = "/@connections/"


class Invoke(Protocol):
    """Runs a catalog function on an event as the Lambda service would (the local gateway's invoker): its
    result, or an exception once it fails or outlives `timeout`."""

    async def __call__(self, function: FunctionSpec, event: dict[str, Any], timeout: float, /) -> Any: ...


def new_connection_id() -> str:
    """An id shaped like API Gateway's (`L0SM9cOFvHcCIhw=`)."""
    return base64.b64encode(os.urandom(10)).decode()


def select_route(body: str, actions: Iterable[str]) -> str:
    """The route `$request.body.action` selects: the action when a route exists for it, `$default` otherwise."""
    try:
        document = json.loads(body)
    except ValueError:
        return "$default"
    action = document.get("action") if isinstance(document, dict) else None
    return action if isinstance(action, str) and action in set(actions) else "$default"


@dataclass
class _Connection:
    connection_id: str
    loop: asyncio.AbstractEventLoop
    outbox: asyncio.Queue[bytes | None]
    connected_at: int
    source_ip: str
    user_agent: str
    last_active_at: int = field(default_factory=lambda: int(time.time() * 1000))


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


class WebSocketBridge:
    """The WebSocket endpoint and the two AWS APIs behind it, running functions through `invoke` (the local
    gateway's, so they share its handlers, thread pool and timeouts) on the stage `stage` in `region`."""

    def __init__(
        self,
        invoke: Invoke,
        *,
        stage: str,
        region: str,
        authorizer: FunctionSpec,
        handler: FunctionSpec,
        actions: Iterable[str],
        invocable: Iterable[FunctionSpec] = (),
    ) -> None:
        self._invoke = invoke
        self.stage = stage
        self.region = region
        self.authorizer = authorizer
        self.handler = handler
        self.actions = tuple(actions)
        self.invocable = {spec.name: spec for spec in invocable}
        self._connections: dict[str, _Connection] = {}
        self._lock = threading.Lock()
        self._background: set[asyncio.Task[None]] = set()

    # -- HTTP: the management and Invoke APIs -------------------------------------------------------------

    def serves(self, path: str) -> bool:
        return _CONNECTIONS_MARKER in path or path.startswith(_INVOKE_PREFIX)

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_all(receive)
        path = unquote(scope["path"])
        if _CONNECTIONS_MARKER in path:
            answer = self.manage(scope["method"], path.split(_CONNECTIONS_MARKER, 1)[1], body)
        else:
            answer = await self.invoke_api(scope, path, body)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer.body)).encode())]
        headers += [(name.encode(), value.encode()) for name, value in answer.headers]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    def manage(self, method: str, connection_id: str, body: bytes) -> _Answer:
        """The `@connections` API for one connection id (callable from any thread)."""
        with self._lock:
            connection = self._connections.get(connection_id)
        if connection is None:
            return _error(410, "GoneException", f"Connection {connection_id} is gone")
        if method == "POST":
            if len(body) > MAX_MESSAGE_BYTES:
                return _error(413, "PayloadTooLargeException", "Message too long")
            connection.loop.call_soon_threadsafe(connection.outbox.put_nowait, body)
            return _Answer(200)
        if method == "DELETE":
            connection.loop.call_soon_threadsafe(connection.outbox.put_nowait, None)
            return _Answer(204)
        if method == "GET":
            document = {
                "connectedAt": _iso(connection.connected_at),
                "lastActiveAt": _iso(connection.last_active_at),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            }
            return _Answer(200, json.dumps(document).encode())
        return _error(405, "MethodNotAllowed", "Method not allowed")

    async def invoke_api(self, scope: Scope, path: str, body: bytes) -> _Answer:
        """Lambda's `Invoke`: `POST /2015-03-31/functions/{name}/invocations`."""
        name, _, rest = path.removeprefix(_INVOKE_PREFIX).partition("/")
        spec = self._function(name)
        if scope["method"] != "POST" or rest != "invocations" or spec is None:
            return _error(404, "ResourceNotFoundException", f"Function not found: {name}")
        invocation_type = scope_header(scope, "x-amz-invocation-type") or "RequestResponse"
        event = json.loads(body or b"{}")
        timeout = float(spec.timeout_seconds)
        if invocation_type == "Event":
            task = asyncio.create_task(self._invoke_in_background(spec, event, timeout))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return _Answer(202)
        try:
            result = await self._invoke(spec, event, timeout)
        except Exception as error:
            log.exception("function %s failed", spec.name)
            payload = {"errorMessage": str(error), "errorType": type(error).__name__}
            return _Answer(200, json.dumps(payload).encode(), (("x-amz-function-error", "Unhandled"),))
        return _Answer(200, json.dumps(result).encode())

    def _function(self, name: str) -> FunctionSpec | None:
        # A name, `stratus-<stage>-<name>`, or an ARN ending in either.
        short = name.rsplit(":", 1)[-1].removeprefix(f"stratus-{self.stage}-")
        return self.invocable.get(short)

    async def _invoke_in_background(self, spec: FunctionSpec, event: dict[str, Any], timeout: float) -> None:
        try:
            await self._invoke(spec, event, timeout)
        except Exception:
            log.exception("asynchronous invocation of %s failed", spec.name)

    # -- WebSocket ------------------------------------------------------------------------------------------

    async def handle_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        connection_id = new_connection_id()
        now = RequestTime.now()
        headers, _ = event_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", []))
        authorizer_context = await self._open(scope, send, connection_id, headers, now)
        if authorizer_context is None:
            return
        await send({"type": "websocket.accept"})
        client = scope.get("client") or ("127.0.0.1", 0)
        connection = _Connection(
            connection_id,
            asyncio.get_running_loop(),
            asyncio.Queue(),
            now.epoch_ms,
            str(client[0]),
            headers.get("user-agent", ""),
        )
        with self._lock:
            self._connections[connection_id] = connection
        sender = asyncio.create_task(self._send_outbox(connection, send))
        close_code = 1000
        try:
            close_code = await self._receive_loop(scope, receive, send, connection, authorizer_context)
        finally:
            with self._lock:
                self._connections.pop(connection_id, None)
            context = self._request_context(
                scope, connection_id, route="$disconnect", event_type="DISCONNECT", connected_at=connection.connected_at
            )
            disconnect_event = {
                "headers": headers,
                "requestContext": {
                    **context,
                    "authorizer": authorizer_context,
                    "disconnectStatusCode": close_code,
                    "disconnectReason": "",
                },
                "isBase64Encoded": False,
            }
            try:
                await self._invoke(self.handler, disconnect_event, float(self.handler.timeout_seconds))
            except Exception:
                log.exception("the $disconnect integration failed")
            await _drain(sender)

    async def _open(
        self, scope: Scope, send: Send, connection_id: str, headers: dict[str, str], now: RequestTime
    ) -> dict[str, Any] | None:
        """Authorize and run `$connect`: the authorizer's context, or None once the handshake is refused."""
        query = query_parameters(bytes(scope.get("query_string", b"")).decode("latin-1"))
        base = self._request_context(
            scope, connection_id, route="$connect", event_type="CONNECT", connected_at=now.epoch_ms, now=now
        )
        if not query.get("token"):
            # The identity source is missing: API Gateway refuses without calling the authorizer.
            await _refuse(scope, send, 401, "Unauthorized")
            return None
        region, stage = self.region, self.stage
        authorizer_event = {
            "type": "REQUEST",
            "methodArn": f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{API_ID}/{stage}/$connect",
            "headers": headers,
            "queryStringParameters": query,
            "stageVariables": {},
            "requestContext": base,
        }
        try:
            answer = await self._invoke(self.authorizer, authorizer_event, float(self.authorizer.timeout_seconds))
        except Exception:
            log.exception("the WebSocket authorizer failed")
            await _refuse(scope, send, 500, "Internal Server Error")
            return None
        if not _allows(answer):
            await _refuse(scope, send, 403, "Forbidden")
            return None
        authorizer_context = {**(answer.get("context") or {}), "principalId": answer.get("principalId")}
        connect_event = {
            "headers": headers,
            "queryStringParameters": query,
            "requestContext": {**base, "authorizer": authorizer_context},
            "isBase64Encoded": False,
        }
        try:
            result = await self._invoke(self.handler, connect_event, float(self.handler.timeout_seconds))
        except Exception:
            log.exception("the $connect integration failed")
            result = {"statusCode": 500}
        status = int(result.get("statusCode", 200)) if isinstance(result, dict) else 200
        if not 200 <= status < 300:
            await _refuse(scope, send, status, "Forbidden")
            return None
        return authorizer_context

    async def _receive_loop(
        self, scope: Scope, receive: Receive, send: Send, connection: _Connection, authorizer: dict[str, Any]
    ) -> int:
        """Hand each message to the handler until the client closes; the close code."""
        while True:
            incoming = await receive()
            if incoming["type"] == "websocket.disconnect":
                return int(incoming.get("code", 1000))
            if incoming["type"] != "websocket.receive":
                continue
            text = incoming.get("text")
            if text is None:
                text = bytes(incoming.get("bytes") or b"").decode("utf-8", errors="replace")
            if len(text.encode()) > MAX_MESSAGE_BYTES:
                await send({"type": "websocket.close", "code": 1009})
                return 1009
            connection.last_active_at = int(time.time() * 1000)
            await self._message(scope, connection, authorizer, text)

    async def _message(self, scope: Scope, connection: _Connection, authorizer: dict[str, Any], text: str) -> None:
        now = RequestTime.now()
        route = select_route(text, self.actions)
        event = {
            "requestContext": {
                **self._request_context(
                    scope,
                    connection.connection_id,
                    route=route,
                    event_type="MESSAGE",
                    connected_at=connection.connected_at,
                    now=now,
                ),
                "messageId": new_request_id(),
                "authorizer": authorizer,
            },
            "body": text,
            "isBase64Encoded": False,
        }
        try:
            await self._invoke(self.handler, event, float(self.handler.timeout_seconds))
        except Exception:
            # API Gateway drops the integration's failure; the client sees no frame for it.
            log.exception("the %s integration failed", route)

    async def _send_outbox(self, connection: _Connection, send: Send) -> None:
        while True:
            data = await connection.outbox.get()
            if data is None:
                await send({"type": "websocket.close", "code": 1000})
                return
            try:
                await send({"type": "websocket.send", "text": data.decode("utf-8")})
            except UnicodeDecodeError:
                await send({"type": "websocket.send", "bytes": data})

    def _request_context(
        self,
        scope: Scope,
        connection_id: str,
        *,
        route: str,
        event_type: str,
        connected_at: int,
        now: RequestTime | None = None,
    ) -> dict[str, Any]:
        now = now or RequestTime.now()
        client = scope.get("client") or ("127.0.0.1", 0)
        host = scope_header(scope, "host") or "127.0.0.1"
        return {
            "routeKey": route,
            "eventType": event_type,
            "extendedRequestId": new_request_id(),
            "requestTime": now.clf,
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": connected_at,
            "requestTimeEpoch": now.epoch_ms,
            "identity": {"sourceIp": str(client[0]), "userAgent": scope_header(scope, "user-agent") or ""},
            "requestId": new_request_id(),
            "domainName": host,
            "connectionId": connection_id,
            "apiId": API_ID,
        }

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)


def _allows(answer: Any) -> bool:
    """Whether an IAM-policy authorizer answer allows the connection (every statement must Allow)."""
    if not isinstance(answer, dict):
        return False
    statements = (answer.get("policyDocument") or {}).get("Statement") or []
    return bool(statements) and all(statement.get("Effect") == "Allow" for statement in statements)


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """Refuse the handshake with an HTTP status where the server can send one, else a close before accept."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = json.dumps({"message": message}).encode()
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1008})


async def _drain(sender: asyncio.Task[None]) -> None:
    sender.cancel()
    # The socket is closed: whatever the sender was doing has nowhere to go.
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await sender


def _error(status: int, error_type: str, message: str) -> _Answer:
    body = json.dumps({"message": message, "__type": error_type}).encode()
    return _Answer(status, body, (("x-amzn-errortype", error_type),))


def _iso(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_ms / 1000))


async def _read_all(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return b"".join(chunks)
