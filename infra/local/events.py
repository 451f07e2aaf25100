"""The Lambda side of API Gateway HTTP API, as plain data: payload 2.0 events in, proxy results out.

Everything here is pure (no I/O, no clock unless handed one) so the unit tests can pin the exact shapes the
handlers see in AWS: lower-cased headers with repeats joined by commas, cookies moved out of the headers
into their own list, query parameters joined by commas, bodies base64-encoded unless they are text.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT_ID = "000000000000"
API_ID = "local"
STAGE_NAME = "$default"

# Content types API Gateway hands to the function as text; every other body arrives base64-encoded.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")
_TEXT_SUFFIXES = ("+json", "+xml")


@dataclass(frozen=True)
class IncomingRequest:
    """An HTTP request as the gateway received it, before any API Gateway translation."""

    method: str
    raw_path: str  # as sent, still percent-encoded
    path: str  # percent-decoded
    raw_query_string: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"
    scheme: str = "http"
    server_port: int = 80


@dataclass(frozen=True)
class GatewayResponse:
    """What goes back to the client: a status, header pairs (repeats allowed) and the body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


class InvalidFunctionResponse(ValueError):
    """The function answered with something API Gateway cannot turn into an HTTP response (a 500)."""


@dataclass(frozen=True)
class RequestTime:
    """One instant in the two spellings API Gateway puts into every event."""

    epoch_ms: int

    @classmethod
    def now(cls) -> RequestTime:
        return cls(time.time_ns() // 1_000_000)

    @property
    def clf(self) -> str:
        """Common Log Format, e.g. `12/Mar/2020:19:03:58 +0000`, as in `requestContext.time`."""
        return datetime.fromtimestamp(self.epoch_ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def new_request_id() -> str:
    """An id shaped like API Gateway's (`JKJaXmPLvHcESHA=`): 11 random bytes, base64."""
    return base64.b64encode(os.urandom(11)).decode()


def gateway_error(status: int, message: str, request_id: str) -> GatewayResponse:
    """One of API Gateway's own answers (`{"message":"Unauthorized"}`, ...), as HTTP APIs send them."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return GatewayResponse(
        status,
        (("content-type", "application/json"), ("apigw-requestid", request_id)),
        body,
    )


def event_headers(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Headers as API Gateway passes them: names lower-cased, repeats joined with ",", and the `Cookie`
    header removed and split into the event's separate `cookies` list."""
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [part.strip() for part in value.split(";") if part.strip()]
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined, cookies


def query_parameters(raw_query_string: str) -> dict[str, str]:
    """`queryStringParameters`: decoded, a repeated name's values joined with ","."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw_query_string, keep_blank_values=True):
        params[name] = f"{params[name]},{value}" if name in params else value
    return params


def encode_body(body: bytes, content_type: str | None, content_encoding: str | None) -> tuple[str, bool]:
    """The event's `body` and `isBase64Encoded`: text stays text, anything else (binary types, compressed
    or non-UTF-8 bodies) arrives base64-encoded, so a handler that forgets to decode fails here too."""
    textual = content_type is None or _is_text_type(content_type)
    if textual and not content_encoding:
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _is_text_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type.startswith(_TEXT_TYPES) or media_type.endswith(_TEXT_SUFFIXES)


def _trace_id(now: RequestTime) -> str:
    return f"Root=1-{now.epoch_ms // 1000:08x}-{os.urandom(12).hex()}"


def _common_event(
    request: IncomingRequest,
    *,
    route_key: str,
    path_parameters: Mapping[str, str],
    request_id: str,
    now: RequestTime,
    account_id: str,
    api_id: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The fields the function event and the authorizer event share; also returns the event headers."""
    headers, cookies = event_headers(request.headers)
    # API Gateway adds these on its way in; Mangum reads x-forwarded-proto for the ASGI scheme.
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-port", str(request.server_port))
    headers.setdefault("x-forwarded-proto", request.scheme)
    headers.setdefault("x-amzn-trace-id", _trace_id(now))
    domain_name = headers.get("host", "localhost")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query_string,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    params = query_parameters(request.raw_query_string)
    if params:
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": request.method.upper(),
            "path": request.path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": STAGE_NAME,
        "time": now.clf,
        "timeEpoch": now.epoch_ms,
    }
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    return event, headers


def build_http_event(
    request: IncomingRequest,
    *,
    route_key: str,
    path_parameters: Mapping[str, str] | None = None,
    request_id: str,
    now: RequestTime,
    authorizer_context: Mapping[str, Any] | None = None,
    account_id: str = ACCOUNT_ID,
    api_id: str = API_ID,
) -> dict[str, Any]:
    """The HTTP API payload format 2.0 event a Lambda integration receives."""
    event, headers = _common_event(
        request,
        route_key=route_key,
        path_parameters=path_parameters or {},
        request_id=request_id,
        now=now,
        account_id=account_id,
        api_id=api_id,
    )
    if authorizer_context is not None:
        event["requestContext"]["authorizer"] = {"lambda": dict(authorizer_context)}
    if request.body:
        body, is_base64 = encode_body(request.body, headers.get("content-type"), headers.get("content-encoding"))
        event["body"] = body
        event["isBase64Encoded"] = is_base64
    else:
        event["isBase64Encoded"] = False
    return event


def build_authorizer_event(
    request: IncomingRequest,
    *,
    route_key: str,
    path_parameters: Mapping[str, str] | None = None,
    identity_source: Iterable[str],
    request_id: str,
    now: RequestTime,
    region: str,
    account_id: str = ACCOUNT_ID,
    api_id: str = API_ID,
) -> dict[str, Any]:
    """The REQUEST authorizer event (payload format 2.0) API Gateway sends a Lambda authorizer."""
    event, _ = _common_event(
        request,
        route_key=route_key,
        path_parameters=path_parameters or {},
        request_id=request_id,
        now=now,
        account_id=account_id,
        api_id=api_id,
    )
    method, _, _ = route_key.partition(" ")
    # arn:aws:execute-api:{region}:{account}:{api}/{stage}/{method}/{path without its leading slash}
    route_arn = f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{STAGE_NAME}/{method}{request.raw_path}"
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": list(identity_source),
        **event,
    }


@dataclass(frozen=True)
class AuthorizerAnswer:
    """A simple-response authorizer's verdict."""

    authorized: bool
    context: dict[str, Any] = field(default_factory=dict)


def parse_authorizer_result(result: Any) -> AuthorizerAnswer:
    """Read `{"isAuthorized": bool, "context": {...}}`; anything else is an authorizer failure (a 500)."""
    if not isinstance(result, dict) or not isinstance(result.get("isAuthorized"), bool):
        raise InvalidFunctionResponse("the authorizer did not answer {'isAuthorized': bool, 'context': {...}}")
    context = result.get("context") or {}
    if not isinstance(context, dict):
        raise InvalidFunctionResponse("the authorizer's context is not an object")
    return AuthorizerAnswer(result["isAuthorized"], context)


def parse_function_result(result: Any, request_id: str) -> GatewayResponse:
    """Turn a function's payload 2.0 result into the HTTP response API Gateway sends.

    A dict with `statusCode` is a full response. Any other JSON value is the body of a 200: a string as is,
    anything else JSON-encoded, with `content-type: application/json` (API Gateway's documented guess).
    """
    gateway_header = ("apigw-requestid", request_id)
    if not isinstance(result, dict) or "statusCode" not in result:
        text = result if isinstance(result, str) else json.dumps(result)
        return GatewayResponse(200, (("content-type", "application/json"), gateway_header), text.encode())
    status = _status(result["statusCode"])
    headers = (*_response_headers(result), gateway_header)
    return GatewayResponse(status, headers, _response_body(result))


def _status(value: Any) -> int:
    status = int(value) if isinstance(value, str) and value.isdigit() else value
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise InvalidFunctionResponse(f"statusCode {value!r} is not an HTTP status")
    return status


def _response_headers(result: dict[str, Any]) -> list[tuple[str, str]]:
    raw_headers = result.get("headers")
    if raw_headers is not None and not isinstance(raw_headers, dict):
        raise InvalidFunctionResponse("headers is not an object")
    cookies = result.get("cookies")
    if cookies is not None and not isinstance(cookies, list):
        raise InvalidFunctionResponse("cookies is not a list")
    headers = [(str(name).lower(), _header_value(value)) for name, value in (raw_headers or {}).items()]
    # A response cannot fold Set-Cookie into one comma-joined header: each cookie gets its own.
    return headers + [("set-cookie", str(cookie)) for cookie in cookies or []]


def _response_body(result: dict[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise InvalidFunctionResponse("body is not a string")
    if not result.get("isBase64Encoded"):
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except ValueError as error:
        raise InvalidFunctionResponse("isBase64Encoded is set but body is not base64") from error


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_header_value(item) for item in value)
    return str(value)


class LambdaContext:
    """The `context` object the Python runtime passes a handler (Powertools reads several of its fields)."""

    def __init__(
        self,
        *,
        function_name: str,
        memory_limit_in_mb: int,
        timeout_seconds: float,
        region: str,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        today = datetime.now(UTC).strftime("%Y/%m/%d")
        self.log_stream_name = f"{today}/[$LATEST]{uuid.uuid4().hex}"
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
