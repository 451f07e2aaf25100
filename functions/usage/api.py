"""Usage's routes, served buffered behind the HTTP API: `GET /users/usage-stats` and `GET /users/dashboard`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from functions.usage import service
from functions.usage.models import Dashboard, UsageStats
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1/users", tags=["usage"])


@router.get("/usage-stats", response_model=UsageStats)
def usage_stats(principal: CurrentPrincipal, days: Annotated[int, Query(ge=1, le=366)] = 30) -> UsageStats:
    return service.usage_stats(principal.user_id, days)


@router.get("/dashboard", response_model=Dashboard)
def dashboard(principal: CurrentPrincipal) -> Dashboard:
    return service.dashboard(principal)


app = create_app(title="Stratus usage", protected=[router])
