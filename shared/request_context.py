"""Who is on the other end of the request being served: its id, address and user agent, for error bodies and the
audit log. Set by the HTTP edge (`shared.http.app.EdgeMiddleware`); empty outside a request. Free of imports, so a
worker that records an event pays nothing for it."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestOrigin:
    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


NO_ORIGIN = RequestOrigin()

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
request_origin_var: ContextVar[RequestOrigin] = ContextVar("request_origin", default=NO_ORIGIN)


def current_request_id() -> str | None:
    return request_id_var.get()


def current_origin() -> RequestOrigin:
    return request_origin_var.get()
