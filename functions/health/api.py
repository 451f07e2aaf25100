"""Health routes: `/health` (liveness), `/health/ready`, `/health/detailed` and `/health/info`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from functions.health.checks import run_checks
from shared.http.app import create_app
from shared.http.models import ApiModel
from shared.settings import get_settings

router = APIRouter(prefix="/api/v1/health", tags=["health"])


class Liveness(ApiModel):
    status: str


class DependencyHealth(ApiModel):
    name: str
    healthy: bool
    latency_ms: float
    error: str | None = None


class Readiness(ApiModel):
    status: str
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
    return _report(include_latency=False)


@router.get("/detailed", response_model=Readiness, responses={503: {"model": Readiness}})
def detailed() -> JSONResponse:
    return _report(include_latency=True)


@router.get("/info", response_model=Info)
def info() -> Info:
    settings = get_settings()
    return Info(name="stratus", version=settings.version, stage=settings.stage, region=settings.region)


def _report(*, include_latency: bool) -> JSONResponse:
    checks = run_checks()
    healthy = all(check.healthy for check in checks)
    report = Readiness(
        status="ready" if healthy else "unavailable",
        dependencies=[
            DependencyHealth(
                name=check.name,
                healthy=check.healthy,
                latency_ms=check.latency_ms,
                error=check.error,
            )
            for check in checks
        ],
    )
    body = report.model_dump(by_alias=True)
    if not include_latency:
        for dependency in body["dependencies"]:
            del dependency["latencyMs"]
    return JSONResponse(body, status_code=200 if healthy else 503)


app = create_app(title="Stratus health", public=[router])
