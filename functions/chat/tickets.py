"""Stream tickets: a one-use, 60-second credential for one GET stream route, because a browser's `EventSource`
cannot send an Authorization header.

`POST /ai/stream-tickets {path}` issues one to a verified caller; `StreamCaller` is the dependency of the GET
stream routes: the caller's usual credential, or `?ticket=` redeemed for that route's path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.auth.principal import Principal
from shared.errors import Unauthorized
from shared.http.deps import authenticate


def redeem(ticket: str, path: str) -> Principal:
    """The principal a ticket was issued to, if it is unused, unexpired and bound to `path`; it is then used up.
    Anything else is `Unauthorized`."""
    raise Unauthorized("Stream tickets are not accepted yet", code="invalid_ticket")


async def stream_caller(request: Request) -> Principal:
    """The caller of a GET stream route: a `?ticket=` when the request carries no Authorization header, else the
    usual verified credential."""
    ticket = request.query_params.get("ticket")
    if ticket is None or request.headers.get("authorization"):
        return await authenticate(request)
    from starlette.concurrency import run_in_threadpool

    principal = await run_in_threadpool(redeem, ticket, request.url.path)
    request.state.principal = principal
    return principal


StreamCaller = Annotated[Principal, Depends(stream_caller)]
