"""FastAPI dependencies every context uses: the verified caller and permission checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from shared.auth.principal import Principal


async def authenticate(request: Request) -> Principal:
    """The caller, as the HTTP API authorizer verified them, or verified here when no authorizer ran
    (the streaming chat function, or a route reached without API Gateway).

    A verification that reads storage (an API key, signing keys or revocations due for a read) runs on a worker
    thread; an access token checked from memory is verified on the event loop, sparing the request a thread hop
    before its first byte."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    from starlette.concurrency import run_in_threadpool

    from shared.auth.verify import principal_for_request, verifies_from_memory, verify_authorization_header

    event: dict[str, Any] = request.scope.get("aws.event") or {}
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    authorization = request.headers.get("authorization")
    if "lambda" in authorizer:
        principal = await run_in_threadpool(principal_for_request, authorizer["lambda"] or {}, authorization)
    elif verifies_from_memory(authorization):
        principal = verify_authorization_header(authorization)
    else:
        principal = await run_in_threadpool(verify_authorization_header, authorization)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_permission(permission: str) -> Callable[[Principal], Principal]:
    """A dependency that admits only callers holding `permission` (403 otherwise)."""

    def check(principal: CurrentPrincipal) -> Principal:
        principal.require(permission)
        return principal

    return check
