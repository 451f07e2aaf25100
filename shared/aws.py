"""boto3 clients made on first use and kept for the container's life (boto3 costs ~250 ms to import)."""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

_lock = threading.Lock()


@cache
def client(service: str) -> Any:
    """A boto3 client; `AWS_ENDPOINT_URL` (local mode, tests) points it at the embedded fakes."""
    with _lock:  # boto3's default session is not safe to build clients from concurrently
        import boto3

        return boto3.client(service)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests that restart the fakes)."""
    client.cache_clear()
