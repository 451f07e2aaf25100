"""FastAPI dependencies every context uses: the verified caller and permission checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from shared.auth.principal import Principal


def authenticate(request: Request) -> Principal:
    """The caller, as the HTTP API authorizer verified them, or verified here when no authorizer ran
    (the streaming chat function, or a route reached without API Gateway)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    event: dict[str, Any] = request.scope.get("aws.event") or {}
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    from shared.auth.verify import principal_for_request, verify_authorization_header

    if "lambda" in authorizer:
        principal = principal_for_request(authorizer["lambda"] or {}, request.headers.get("authorization"))
    else:
        principal = verify_authorization_header(request.headers.get("authorization"))
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_permission(permission: str) -> Callable[[Principal], Principal]:
    """A dependency that admits only callers holding `permission` (403 otherwise)."""

    def check(principal: CurrentPrincipal) -> Principal:
        principal.require(permission)
        return principal

    return check
