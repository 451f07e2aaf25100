"""Health routes: `/health` (liveness), `/health/ready`, `/health/detailed`, `/health/info` (public), and
`/health/metrics` (the stage's counters of today for Prometheus; needs `analytics.read`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from functions.health.checks import Check, run_checks
from shared.http.app import create_app
from shared.http.deps import require_permission
from shared.http.models import ApiModel
from shared.settings import get_settings

router = APIRouter(prefix="/api/v1/health", tags=["health"])
metrics_router = APIRouter(
    prefix="/api/v1/health", tags=["health"], dependencies=[Depends(require_permission("analytics.read"))]
)
# Prometheus' text exposition format.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Liveness(ApiModel):
    status: str


class DependencyStatus(ApiModel):
    name: str
    healthy: bool
    error: str | None = None


class DependencyHealth(DependencyStatus):
    latency_ms: float


class Readiness(ApiModel):
    status: Literal["ready", "unavailable"]
    dependencies: list[DependencyStatus]


class DetailedHealth(ApiModel):
    status: Literal["ready", "unavailable"]
    dependencies: list[DependencyHealth]


class Info(ApiModel):
    name: str
    version: str
    stage: str
    region: str


@router.get("", response_model=Liveness)
def liveness() -> Liveness:
    return Liveness(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def readiness() -> JSONResponse:
    checks = run_checks()
    dependencies = [DependencyStatus(name=check.name, healthy=check.healthy, error=check.error) for check in checks]
    return _report(Readiness(status=_status(checks), dependencies=dependencies))


@router.get("/detailed", response_model=DetailedHealth, responses={503: {"model": DetailedHealth}})
def detailed() -> JSONResponse:
    checks = run_checks()
    dependencies = [
        DependencyHealth(name=check.name, healthy=check.healthy, error=check.error, latency_ms=check.latency_ms)
        for check in checks
    ]
    return _report(DetailedHealth(status=_status(checks), dependencies=dependencies))


@router.get("/info", response_model=Info)
def info() -> Info:
    settings = get_settings()
    return Info(name="stratus", version=settings.version, stage=settings.stage, region=settings.region)


@metrics_router.get(
    "/metrics", response_class=PlainTextResponse, responses={200: {"content": {PROMETHEUS_CONTENT_TYPE: {}}}}
)
def metrics() -> PlainTextResponse:
    from functions.analytics import service as analytics

    text = analytics.metrics_text(get_settings().stage)
    return PlainTextResponse(text, media_type=PROMETHEUS_CONTENT_TYPE)


def _status(checks: list[Check]) -> Literal["ready", "unavailable"]:
    return "ready" if all(check.healthy for check in checks) else "unavailable"


def _report(report: Readiness | DetailedHealth) -> JSONResponse:
    """200 when every dependency answers, else 503 (a load balancer or an operator stops sending traffic)."""
    status_code = 200 if report.status == "ready" else 503
    return JSONResponse(report.model_dump(by_alias=True), status_code=status_code)


app = create_app(title="Stratus health", public=[router], protected=[metrics_router])
