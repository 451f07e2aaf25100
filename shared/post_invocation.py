"""Work an invocation finishes after its response has gone: a Lambda internal extension (a thread of this process,
registered with the Extensions API during init).

Lambda returns a function's response to its caller as soon as the runtime posts it, and freezes the environment only
once every extension has asked for its next event too. So a request's events (`shared.events`) need not delay its
response: the handler says the invocation ended (`invocation_ended`), returns, and this thread waits for the outbox
to empty before it asks for the next event. Each wait is bounded by the invocation's deadline, so a stuck send can
never hold an environment past its timeout.

Outside Lambda (local mode, tests) nothing is registered and nothing ever freezes: `active()` is False and the caller
flushes itself where it must.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("stratus.post_invocation")

EXTENSION_NAME = "stratus-events"
API_VERSION = "2020-01-01"
# Left of an invocation's deadline when the wait for its work gives up, so the next-event call is in time.
DEADLINE_MARGIN_SECONDS = 0.5


class PostInvocation:
    """The extension: after each INVOKE, waits until the handler has ended that invocation, then runs `finish`
    (bounded by the deadline), then asks for the next event."""

    def __init__(self, runtime_api: str, finish: Callable[[float], object]) -> None:
        self._base = f"http://{runtime_api}/{API_VERSION}/extension"
        self._finish = finish
        self._ended = 0
        self._condition = threading.Condition()
        self._identifier = ""

    def register(self) -> None:
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 - http to the Runtime API's own address
            f"{self._base}/register",
            data=json.dumps({"events": ["INVOKE"]}).encode(),
            headers={"Lambda-Extension-Name": EXTENSION_NAME, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - the Runtime API's own address
            self._identifier = answer.headers["Lambda-Extension-Identifier"]
        threading.Thread(target=self._run, name="post-invocation", daemon=True).start()

    def invocation_ended(self) -> None:
        with self._condition:
            self._ended += 1
            self._condition.notify_all()

    def _next_event(self) -> dict[str, object]:
        import urllib.request

        request = urllib.request.Request(  # noqa: S310 - http to the Runtime API's own address
            f"{self._base}/event/next", headers={"Lambda-Extension-Identifier": self._identifier}
        )
        with urllib.request.urlopen(request) as answer:  # noqa: S310 - blocks until the next invocation starts
            return dict(json.loads(answer.read() or b"{}"))

    def _run(self) -> None:
        seen = 0
        while True:
            try:
                event = self._next_event()
            except Exception:  # the Runtime API is gone: the environment is shutting down
                log.exception("the post-invocation extension lost the Runtime API")
                return
            seen += 1
            deadline_ms = event.get("deadlineMs")
            deadline = float(deadline_ms) / 1000 if isinstance(deadline_ms, int | float) else time.time() + 30
            with self._condition:
                while self._ended < seen:
                    left = deadline - DEADLINE_MARGIN_SECONDS - time.time()
                    if left <= 0:
                        break
                    self._condition.wait(left)
            try:
                self._finish(max(0.0, deadline - DEADLINE_MARGIN_SECONDS - time.time()))
            except Exception:
                log.exception("post-invocation work failed")


_extension: PostInvocation | None = None
_lock = threading.Lock()


def register(finish: Callable[[float], object]) -> bool:
    """Register the extension once per process, in Lambda (`AWS_LAMBDA_RUNTIME_API`) and outside local mode; it runs
    `finish(seconds_left)` after each invocation. Call during init (a handler module's import): Lambda refuses an
    extension registered after the runtime has asked for its first event. True if it is registered."""
    global _extension  # noqa: PLW0603 - one extension per process, by nature
    runtime_api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not runtime_api or os.environ.get("LOCAL_MODE", "").lower() == "true":
        return False
    with _lock:
        if _extension is None:
            extension = PostInvocation(runtime_api, finish)
            try:
                extension.register()
            except Exception:  # without it, the handler flushes before it returns (`shared.events`)
                log.exception("the post-invocation extension could not register")
                return False
            _extension = extension
    return True


def active() -> bool:
    return _extension is not None


def invocation_ended() -> None:
    if _extension is not None:
        _extension.invocation_ended()
