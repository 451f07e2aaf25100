"""The Lambda entry point of a buffered context: its FastAPI app behind Mangum, under Powertools."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from fastapi import FastAPI
from mangum import Mangum

from shared import events
from shared.observability import logger, metrics, tracer, tracing_enabled

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def lambda_handler_for(app: FastAPI) -> LambdaHandler:
    adapter = Mangum(app, lifespan="off")
    traced: LambdaHandler | None = None
    # Init: what a request publishes goes to the events queue after its response (shared.post_invocation).
    events.send_after_responses()

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal traced
        try:
            if not tracing_enabled():
                return adapter(event, context)
            if traced is None:
                traced = tracer().capture_lambda_handler(adapter)
            return traced(event, context)
        finally:
            # What the request published reaches the events queue before the container may be frozen.
            events.end_of_invocation()

    return handler
