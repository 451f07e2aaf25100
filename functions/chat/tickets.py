"""Stream tickets: a one-use, 60-second credential for one GET stream route, because a browser's `EventSource`
cannot send an Authorization header.

`POST /ai/stream-tickets {path}` issues one to a verified caller; `StreamCaller` is the dependency of the GET
stream routes: the caller's usual credential, or `?ticket=` redeemed for that route's path.

A ticket is 32 random bytes, shown once, in the URL of one request. Only its SHA-256 is stored, so neither the
table nor a log of its requests can be turned back into a ticket. It is redeemed by one conditional delete: used
once however many requests race with it. A ticket presented on another path, or after it expired, is refused and
not used up (the condition fails before the delete). The principal it carries is checked against revocations again
on redeem, as the shared verification checks a principal the authorizer verified earlier: signing out, a changed
role or a deleted account refuses a ticket taken before.

Item (chat table, pk / sk):
  TICKET#<sha256 hex of the ticket> / TICKET   principal (the authorizer context), path, expiresAt, ttl
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import field_validator

from shared.auth.principal import Principal
from shared.errors import Unauthorized
from shared.http.deps import CurrentPrincipal, authenticate
from shared.http.models import ApiModel
from shared.tables import CHAT

TICKET_SECONDS = 60
_TICKET_BYTES = 32
# `secrets.token_urlsafe(32)`: 43 characters of the URL-safe base-64 alphabet, no padding.
_TICKET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
# The GET stream routes a ticket may open: a chat reply's resume, an enhancement's stream.
STREAM_PATHS = re.compile(rf"^/api/v1/ai/(?:chat/stream|stream)/{_ULID}$")

REFUSED_STREAM_CALLER = (
    "The credential is missing or not valid: `invalid_ticket` (a `?ticket=` used already, expired, or issued for "
    "another path), or one of the Authorization header's: `missing_credentials`, `invalid_token`, "
    "`token_expired`, `invalid_api_key`, `session_revoked`, `token_revoked`"
)
"""The 401 meaning of a route that takes `StreamCaller`: `refusals(401, meaning={401: REFUSED_STREAM_CALLER})`."""

router = APIRouter(prefix="/api/v1/ai", tags=["chat"])


class StreamTicketRequest(ApiModel):
    path: str

    @field_validator("path")
    @classmethod
    def _a_stream_route(cls, path: str) -> str:
        if not STREAM_PATHS.match(path):
            raise ValueError(
                "must be the full path of a GET stream route: /api/v1/ai/chat/stream/{messageId} or "
                "/api/v1/ai/stream/{sessionId}"
            )
        return path


class StreamTicket(ApiModel):
    ticket: str
    expires_at: datetime


@router.post("/stream-tickets", status_code=201, response_model=StreamTicket)
def create_stream_ticket(principal: CurrentPrincipal, body: StreamTicketRequest) -> StreamTicket:
    """A one-use ticket, valid 60 seconds, for `?ticket=` on the one GET stream route `path` names."""
    ticket, expires_at = issue(principal, body.path)
    return StreamTicket(ticket=ticket, expires_at=datetime.fromtimestamp(expires_at, UTC))


def issue(principal: Principal, path: str) -> tuple[str, int]:
    """A new ticket for `principal` on `path`, and when it expires (epoch seconds): in 60 seconds, or when the
    credential it was issued on expires if that is sooner."""
    from shared.aws import client

    ticket = secrets.token_urlsafe(_TICKET_BYTES)
    expires_at = int(time.time()) + TICKET_SECONDS
    if principal.expires_at is not None:
        expires_at = min(expires_at, principal.expires_at)
    client("dynamodb").put_item(
        TableName=CHAT.name_from_env(),
        Item={
            **_key(ticket),
            "principal": {"M": _attribute_map(principal.to_authorizer_context())},
            "path": {"S": path},
            "expiresAt": {"N": str(expires_at)},
            "ttl": {"N": str(expires_at)},
        },
        # 256 random bits do not collide; the condition keeps a ticket from ever being replaced all the same.
        ConditionExpression="attribute_not_exists(pk)",
    )
    return ticket, expires_at


def redeem(ticket: str, path: str) -> Principal:
    """The principal a ticket was issued to, if it is unused, unexpired and bound to `path`; it is then used up.
    Anything else is `Unauthorized`: `invalid_ticket`, or the revocation that now refuses the principal."""
    if not _TICKET_PATTERN.match(ticket):
        raise _invalid()
    from shared.aws import client

    dynamodb = client("dynamodb")
    try:
        answer = dynamodb.delete_item(
            TableName=CHAT.name_from_env(),
            Key=_key(ticket),
            ConditionExpression="attribute_exists(pk) AND #path = :path AND expiresAt > :now",
            ExpressionAttributeNames={"#path": "path"},
            ExpressionAttributeValues={":path": {"S": path}, ":now": {"N": str(int(time.time()))}},
            ReturnValues="ALL_OLD",
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        raise _invalid() from None
    context = {name: _plain(value) for name, value in answer["Attributes"]["principal"]["M"].items()}
    # Expiry of the credential it was issued on, and every revocation since it was verified.
    return Principal.from_authorizer_context(context)


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


def _key(ticket: str) -> dict[str, dict[str, str]]:
    digest = hashlib.sha256(ticket.encode()).hexdigest()
    return {"pk": {"S": f"TICKET#{digest}"}, "sk": {"S": "TICKET"}}


def _invalid() -> Unauthorized:
    return Unauthorized(
        "The stream ticket is not valid: it was used already, has expired, or is for another path",
        code="invalid_ticket",
    )


def _attribute_map(context: dict[str, str | int]) -> dict[str, dict[str, str]]:
    return {name: {"N": str(value)} if isinstance(value, int) else {"S": value} for name, value in context.items()}


def _plain(value: dict[str, Any]) -> str | int:
    return int(value["N"]) if "N" in value else str(value["S"])
