"""Make moto's DynamoDB answer one request at a time, as atomically as the real service does.

moto copies a table's state while running a transaction; a write from another thread during that copy fails
with "dictionary changed size during iteration". Real DynamoDB makes every operation atomic, so local mode and the
tests serialize moto's DynamoDB requests. Each one takes well under a millisecond in memory.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.RLock()
_installed = False


def make_moto_dynamodb_atomic() -> None:
    """Idempotent: wraps moto's DynamoDB request dispatch in one process-wide lock."""
    global _installed  # noqa: PLW0603 - patching a library is process-wide by nature
    if _installed:
        return
    from moto.dynamodb.responses import DynamoHandler

    dispatch = DynamoHandler.call_action

    def atomic_call_action(self: Any) -> Any:
        with _lock:
            return dispatch(self)

    DynamoHandler.call_action = atomic_call_action  # type: ignore[method-assign]
    _installed = True
