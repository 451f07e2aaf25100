"""Run independent blocking calls (DynamoDB round trips, mostly) at the same time, from synchronous code; and let
asynchronous work a request has started (a write its user was promised) finish, even when the request is cancelled."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import lru_cache
from typing import Any, TypeVar

T = TypeVar("T")


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


async def complete_despite_cancellation(work: Awaitable[T]) -> T:
    """The result of `work`, which runs to its end even if the caller is cancelled while waiting for it; the
    caller's cancellation is raised once `work` has ended.

    For writes that must outlive a request going away: a client that disconnects cancels the request's task, and
    under the Lambda Web Adapter nothing left running after the response is sure to run (the environment may be
    frozen), so the work is waited for here rather than left behind. A plain `await` of a shared task would not
    do: cancelling the awaiting task cancels the task it awaits, for every other waiter too.
    """
    import asyncio

    import anyio

    task = asyncio.ensure_future(work)
    cancelled: asyncio.CancelledError | None = None
    # The anyio shield keeps cancel scopes (Starlette's, on a disconnect) from cancelling the wait at all;
    # `asyncio.shield` keeps a plain `Task.cancel()` from reaching `work`, and the loop waits it out.
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError as cancellation:
                if not task.cancelled():
                    cancelled = cancellation
    if cancelled is not None:
        raise cancelled
    return task.result()
