"""Analytics' routes, served buffered behind the HTTP API: the stage's dashboard and its breakdowns by model, agent,
channel and conversation length, for callers holding `analytics.read`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from functions.analytics import service
from functions.analytics.models import AgentFigures, Breakdown, ChannelFigures, Dashboard, LengthBucket, ModelFigures
from shared.http.app import create_app
from shared.http.deps import require_permission

router = APIRouter(
    prefix="/api/v1/analytics", tags=["analytics"], dependencies=[Depends(require_permission("analytics.read"))]
)

Days = Annotated[int, Query(ge=1, le=90, description="The last N days, today (UTC) included")]


@router.get("/dashboard", response_model=Dashboard)
def dashboard(days: Days = 30) -> Dashboard:
    return service.dashboard(days)


@router.get("/models", response_model=Breakdown[ModelFigures])
def models(days: Days = 30) -> Breakdown[ModelFigures]:
    return service.models(days)


@router.get("/agents", response_model=Breakdown[AgentFigures])
def agents(days: Days = 30) -> Breakdown[AgentFigures]:
    return service.agents(days)


@router.get("/channels", response_model=Breakdown[ChannelFigures])
def channels(days: Days = 30) -> Breakdown[ChannelFigures]:
    return service.channels(days)


@router.get("/conversations", response_model=Breakdown[LengthBucket])
def conversations(days: Days = 30) -> Breakdown[LengthBucket]:
    return service.conversation_lengths(days)


app = create_app(title="Stratus analytics", protected=[router])
