"""The platforms' webhooks: public routes, each delivery verified before anything else (Meta's signature over the
raw body, Telegram's secret token), then acknowledged at once with its text messages queued for the worker.

The raw bytes reach the check unaltered: API Gateway hands a JSON body over as text (`isBase64Encoded` false) and
anything else base64-encoded, and Mangum gives FastAPI the UTF-8 (or base64-decoded) bytes of it; `request.body()`
is those bytes, never a re-serialisation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from functions.channels import service
from shared.http.app import create_app

ChannelId = Annotated[str, Path(alias="channelId", max_length=26)]

_REFUSED: dict[int | str, dict[str, Any]] = {403: {"description": "Verification failed, or no such channel"}}
_TEXT: dict[int | str, dict[str, Any]] = {200: {"content": {"text/plain": {}}, "description": "The challenge, as sent"}}

router = APIRouter(prefix="/api/v1/webhooks", tags=["channels"])


def _refused() -> Response:
    return Response(status_code=403, content=b"Forbidden", media_type="text/plain")


def _subscription_check(channel_type: str) -> Callable[..., Response]:
    def subscription_check(
        channel_id: ChannelId,
        mode: Annotated[str | None, Query(alias="hub.mode", max_length=32)] = None,
        token: Annotated[str | None, Query(alias="hub.verify_token", max_length=1024)] = None,
        challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=1024)] = None,
    ) -> Response:
        if challenge is None or not service.subscription_challenge(channel_type, channel_id, mode, token):
            return _refused()
        return Response(content=challenge, media_type="text/plain")

    return subscription_check


def _delivery(channel_type: str) -> Callable[..., Awaitable[Response]]:
    async def delivery(channel_id: ChannelId, request: Request) -> Response:
        body = await request.body()
        if not service.accept_delivery(channel_type, channel_id, body, request.headers):
            return _refused()
        return Response(status_code=200, content=b"OK", media_type="text/plain")

    return delivery


for _type in ("whatsapp", "messenger"):
    router.add_api_route(
        f"/{_type}/{{channelId}}", _subscription_check(_type), methods=["GET"], response_class=Response,
        responses={**_TEXT, **_REFUSED}, name=f"{_type}_subscription_check",
    )  # fmt: skip
for _type in ("whatsapp", "messenger", "telegram"):
    router.add_api_route(
        f"/{_type}/{{channelId}}", _delivery(_type), methods=["POST"], response_class=Response,
        responses={200: {"description": "Verified and accepted"}, **_REFUSED}, name=f"{_type}_delivery",
    )  # fmt: skip

app = create_app(title="Stratus channel webhooks", public=[router])
