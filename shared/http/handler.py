"""The Lambda entry point of a buffered context: its FastAPI app behind Mangum, under Powertools."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from fastapi import FastAPI
from mangum import Mangum

from shared import events
from shared.observability import logger, metrics, tracer, tracing_enabled

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


class RequestCounts:
    """The container's requests and 5xx answers since it last published them: one `requests.counted` event every
    `REQUEST_COUNTS_SECONDS` at most (analytics adds them up), not one event per request. What a container counted
    in its last seconds before it is recycled is lost: the figures are a close count, not a ledger."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self._since = time.monotonic()

    def count(self, status: int, *, every: float, function: str) -> None:
        with self._lock:
            self.requests += 1
            self.errors += status >= 500
            now = time.monotonic()
            if not every or now - self._since < every:
                return
            requests, errors, self.requests, self.errors, self._since = self.requests, self.errors, 0, 0, now
        events.publish("requests.counted", {"function": function, "requests": requests, "errors": errors}, user_id=None)


request_counts = RequestCounts()


def _count_request(response: dict[str, Any] | None) -> None:
    if not os.environ.get(events.QUEUE_URL_VARIABLE):
        return  # a function that publishes no events (IAM grants it no queue)
    from shared.settings import get_settings

    status = response.get("statusCode", 500) if isinstance(response, dict) else 500
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
    request_counts.count(int(status), every=get_settings().request_counts_seconds, function=function)


def lambda_handler_for(app: FastAPI) -> LambdaHandler:
    adapter = Mangum(app, lifespan="off")
    traced: LambdaHandler | None = None
    # Init: what a request publishes goes to the events queue after its response (shared.post_invocation).
    events.send_after_responses()

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal traced
        response: dict[str, Any] | None = None
        try:
            if not tracing_enabled():
                response = adapter(event, context)
            else:
                if traced is None:
                    traced = tracer().capture_lambda_handler(adapter)
                response = traced(event, context)
            return response
        finally:
            _count_request(response)
            # What the request published reaches the events queue before the container may be frozen.
            events.end_of_invocation()

    return handler
