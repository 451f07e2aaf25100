"""Webhook subscriptions' routes: the caller's own subscriptions (or the stage's, `?scope=stage`), their test ping
and delivery log. Every route is one service call."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response, status

from functions.webhooks import service
from functions.webhooks.models import (
    DeliveryPublic,
    PingResult,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionUpdate,
)
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal
from shared.http.models import Page
from shared.http.responses import refusals
from shared.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=2048)]
ScopeQuery = Annotated[Literal["user", "stage"], Query()]
SubscriptionId = Annotated[str, Path(alias="subscriptionId", max_length=26)]

_URL = {
    422: "Not valid: `validation_error` (an unknown event type among them), or refused: `url_not_allowed` (the URL "
    "reaches an address Stratus does not call, or is not https outside dev stages)",
}

router = APIRouter(prefix="/api/v1/webhook-subscriptions", tags=["webhooks"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=SubscriptionCreated,
    responses=refusals(403, 422, meaning=_URL),
)  # fmt: skip
def create_subscription(principal: CurrentPrincipal, body: SubscriptionCreate) -> SubscriptionCreated:
    return service.create_subscription(principal, body)


@router.get("", response_model=Page[SubscriptionPublic], responses=refusals(400, 403))
def list_subscriptions(
    principal: CurrentPrincipal, scope: ScopeQuery = "user", limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[Any]:
    items, next_cursor = service.list_subscriptions(principal, scope, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{subscriptionId}", response_model=SubscriptionPublic, responses=refusals(403, 404))
def get_subscription(principal: CurrentPrincipal, subscription_id: SubscriptionId) -> SubscriptionPublic:
    return service.get_subscription(principal, subscription_id)


@router.put("/{subscriptionId}", response_model=SubscriptionPublic, responses=refusals(403, 404, 422, meaning=_URL))
def update_subscription(
    principal: CurrentPrincipal, subscription_id: SubscriptionId, body: SubscriptionUpdate
) -> SubscriptionPublic:
    return service.update_subscription(principal, subscription_id, body)


@router.delete(
    "/{subscriptionId}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=refusals(403, 404)
)
def delete_subscription(principal: CurrentPrincipal, subscription_id: SubscriptionId) -> Response:
    service.delete_subscription(principal, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{subscriptionId}/test", response_model=PingResult, responses=refusals(403, 404))
def test_subscription(principal: CurrentPrincipal, subscription_id: SubscriptionId) -> PingResult:
    return service.ping(principal, subscription_id)


@router.get("/{subscriptionId}/deliveries", response_model=Page[DeliveryPublic], responses=refusals(400, 403, 404))
def list_deliveries(
    principal: CurrentPrincipal,
    subscription_id: SubscriptionId,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[Any]:
    items, next_cursor = service.deliveries(principal, subscription_id, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


app = create_app(title="Stratus webhooks", protected=[router])
