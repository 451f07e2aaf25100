"""The one FastAPI app factory: error mapping, camelCase JSON, request ids, security headers, CORS, body limit.

Routers are handed in as `public` or `protected`: every protected route requires a verified caller by
construction, so a route cannot forget its auth check, and its OpenAPI operation documents the 401 (with the
other refusals every route can answer: see `shared.http.responses`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import DomainError, error_body
from shared.http.deps import authenticate
from shared.ids import new_id
from shared.observability import logger
from shared.request_context import RequestOrigin, current_request_id, request_id_var, request_origin_var
from shared.settings import Settings, get_settings

SECURITY_HEADERS = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]

_STATUS_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


class StratusApp(FastAPI):
    """A context's app; its OpenAPI document gets the event-stream schemas its routes declare."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            from shared.http.responses import fill_event_streams

            fill_event_streams(super().openapi())
        return super().openapi()


def create_app(
    *,
    title: str,
    public: Sequence[APIRouter] = (),
    protected: Sequence[APIRouter] = (),
    settings: Settings | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    app = StratusApp(
        title=title,
        version=settings.version,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # local mode serves one merged document at /docs
    )
    for router in public:
        _document_refusals(router, protected=False)
        app.include_router(router)
    for router in protected:
        _document_refusals(router, protected=True)
        app.include_router(router, dependencies=[Depends(authenticate)])

    app.add_exception_handler(DomainError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]

    if settings.cors_allow_origins:
        from starlette.middleware.cors import CORSMiddleware

        from shared.http import cors

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_allow_origins),
            allow_credentials="*" not in settings.cors_allow_origins,
            allow_methods=list(cors.ALLOWED_METHODS),
            allow_headers=list(cors.ALLOWED_HEADERS),
            expose_headers=list(cors.EXPOSED_HEADERS),
            max_age=cors.MAX_AGE_SECONDS,
        )
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes)
    return app


def _document_refusals(router: APIRouter, *, protected: bool) -> None:
    """Document on each route the refusals every route of its kind can answer (before it is included: FastAPI
    builds the included copy's response models from the route's `responses`)."""
    from fastapi.routing import APIRoute

    from shared.http.responses import document_common_refusals

    for route in router.routes:
        if isinstance(route, APIRoute):
            document_common_refusals(route, protected=protected)


def error_response(error: DomainError) -> JSONResponse:
    return JSONResponse(
        error_body(error.error_code, error.message, current_request_id(), error.details),
        status_code=error.status,
        headers=error.headers,
    )


async def _domain_error(_: Request, error: DomainError) -> JSONResponse:
    return error_response(error)


async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    problems = error.errors()
    if any(problem.get("type") == "json_invalid" for problem in problems):
        body = error_body("malformed_json", "The request body is not valid JSON", current_request_id())
        return JSONResponse(body, status_code=400)
    details = [
        {
            "field": ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or "body",
            "message": problem.get("msg", "is invalid"),
        }
        for problem in problems
    ]
    body = error_body("validation_error", "The request is not valid", current_request_id(), details)
    return JSONResponse(body, status_code=422)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = _STATUS_CODES.get(error.status_code, "http_error")
    message = "Route not found" if error.status_code == 404 else str(error.detail)
    headers = error.headers
    if error.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return JSONResponse(error_body(code, message, current_request_id()), status_code=error.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method the app serves at the request's path: Starlette's own 405 names only the first route there,
    though one path may have a route per method (`GET` and `DELETE /sessions/{id}`)."""
    from starlette.routing import Match

    def routes(of: Sequence[Any]) -> Any:
        for route in of:
            included = getattr(route, "original_router", None)  # an included router, not a route
            yield from routes(included.routes) if included is not None else (route,)

    methods: set[str] = set()
    for route in routes(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


class BodyTooLargeError(StarletteHTTPException):
    """Raised while reading a body past the limit. An HTTPException, so FastAPI's body parsing passes it on
    instead of turning it into a 400."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)


class EdgeMiddleware:
    """Request ids, security headers, the body size limit, and a generic 500 for anything unexpected.

    Pure ASGI (not BaseHTTPMiddleware) so it adds no task or copy per request.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        origin_token = request_origin_var.set(_origin(scope, request_id))
        started = False
        limit = self.max_body_bytes

        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, _too_large(limit), request_id)
            request_id_var.reset(token)
            request_origin_var.reset(origin_token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(_too_large_message(limit))
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers += [*SECURITY_HEADERS, (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLargeError:
            if not started:
                await _send_json(send, 413, _too_large(limit), request_id)
        except Exception:
            logger.exception("unhandled error", extra={"path": scope.get("path")})
            if not started:
                body = error_body("internal_error", "Something went wrong on our side", request_id)
                await _send_json(send, 500, body, request_id)
        finally:
            request_id_var.reset(token)
            request_origin_var.reset(origin_token)


def _request_id(scope: Scope) -> str:
    event = scope.get("aws.event") or {}
    from_gateway = (event.get("requestContext") or {}).get("requestId")
    if from_gateway:
        return str(from_gateway)
    return _header(scope, b"x-request-id") or new_id()


def _origin(scope: Scope, request_id: str) -> RequestOrigin:
    """The caller's address as API Gateway saw it (`requestContext.http.sourceIp`; Mangum and uvicorn put it in
    `client`), and their user agent, cut to a sane length."""
    event = scope.get("aws.event") or {}
    ip = ((event.get("requestContext") or {}).get("http") or {}).get("sourceIp")
    if not ip and scope.get("client"):
        ip = scope["client"][0]
    user_agent = _header(scope, b"user-agent")
    return RequestOrigin(request_id, str(ip) if ip else None, user_agent[:512] if user_agent else None)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _too_large_message(limit: int) -> str:
    return f"The request body is larger than {limit} bytes"


def _too_large(limit: int) -> dict[str, Any]:
    return error_body("payload_too_large", _too_large_message(limit), request_id_var.get())


async def _send_json(send: Send, status: int, body: dict[str, Any], request_id: str) -> None:
    body["error"]["requestId"] = request_id
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *SECURITY_HEADERS,
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
