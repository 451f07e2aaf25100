"""Powertools logger, metrics and tracer shared by every function; the service name comes from the function.

The tracer is built on first use: constructing it loads the X-Ray SDK and botocore (about a second of import
on a cold container), which a function should pay only when tracing is on.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "stratus")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Stratus", service=SERVICE)
# A request that records no metric is normal; Powertools would warn on every one of them.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def tracing_enabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in {"1", "true"} and bool(
        os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    )


@lru_cache(maxsize=1)
def tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)
