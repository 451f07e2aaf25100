"""Run independent blocking calls (DynamoDB round trips, mostly) at the same time, from synchronous code."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=16, thread_name_prefix="together")


def together(*calls: Callable[[], Any]) -> list[Any]:
    """The results of `calls`, run concurrently; the first failure (in argument order) is raised after all end.

    The pool is fixed in size: a call run here must not call `together` itself, or a full pool waits on itself.
    """
    if len(calls) == 1:
        return [calls[0]()]
    futures = [_pool().submit(call) for call in calls]
    wait(futures)
    return [future.result() for future in futures]
