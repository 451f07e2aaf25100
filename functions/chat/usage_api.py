"""Usage routes, served buffered behind the HTTP API: `GET /users/usage-stats` and `GET /users/dashboard`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from functions.chat import usage
from shared.http.app import create_app
from shared.http.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1/users", tags=["usage"])


@router.get("/usage-stats")
def usage_stats(principal: CurrentPrincipal, days: Annotated[int, Query(ge=1, le=366)] = 30) -> dict[str, Any]:
    return usage.usage_stats(principal.user_id, days)


@router.get("/dashboard")
def dashboard(principal: CurrentPrincipal) -> dict[str, Any]:
    return usage.dashboard(principal)


app = create_app(title="Stratus usage", protected=[router])
