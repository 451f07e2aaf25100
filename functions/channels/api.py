"""The channels' routes: connect, list, read, change, delete and test a channel (`channels.manage`). The platforms'
webhooks are another function's (functions.channels.webhooks): public, and allowed nothing but the queue."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from functions.channels import service
from functions.channels.models import ChannelCreate, ChannelPublic, ChannelTest, ChannelUpdate
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal
from shared.http.models import Page
from shared.http.responses import refusals
from shared.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=2048)]
ChannelId = Annotated[str, Path(alias="channelId", max_length=26)]

_CONFIG = {422: "Not valid (`validation_error`): the config does not fit the channel's type, or a masked secret "
           "was sent where nothing is stored (`unknown_secret`)"}  # fmt: skip

router = APIRouter(prefix="/api/v1/channels", tags=["channels"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ChannelPublic,
             responses=refusals(403, 422, meaning=_CONFIG))  # fmt: skip
def create_channel(principal: CurrentPrincipal, body: ChannelCreate) -> ChannelPublic:
    return service.create_channel(principal, body)


@router.get("", response_model=Page[ChannelPublic], responses=refusals(400, 403))
def list_channels(principal: CurrentPrincipal, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Page[Any]:
    items, next_cursor = service.list_channels(principal, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{channelId}", response_model=ChannelPublic, responses=refusals(403, 404))
def get_channel(principal: CurrentPrincipal, channel_id: ChannelId) -> ChannelPublic:
    return service.get_channel(principal, channel_id)


@router.put("/{channelId}", response_model=ChannelPublic, responses=refusals(403, 404, 422, meaning=_CONFIG))
def update_channel(principal: CurrentPrincipal, channel_id: ChannelId, body: ChannelUpdate) -> ChannelPublic:
    return service.update_channel(principal, channel_id, body)


@router.delete(
    "/{channelId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=refusals(403, 404)
)
def delete_channel(principal: CurrentPrincipal, channel_id: ChannelId) -> Response:
    service.delete_channel(principal, channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{channelId}/test", response_model=ChannelTest, response_model_exclude_none=True,
             responses=refusals(403, 404))  # fmt: skip
def test_channel(principal: CurrentPrincipal, channel_id: ChannelId) -> ChannelTest:
    return service.test_channel(principal, channel_id)


app = create_app(title="Stratus channels", protected=[router])
