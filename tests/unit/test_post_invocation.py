"""The post-invocation extension against a fake of Lambda's Extensions API (its wire protocol: register, then
event/next, which answers at each invocation and blocks the environment's freeze until it is asked again)."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.post_invocation import EXTENSION_NAME, PostInvocation


class FakeExtensionsApi:
    """Registers one extension; hands out the INVOKE events the test queues; notes when each next-event call came."""

    def __init__(self) -> None:
        self.invocations: queue.Queue[dict[str, Any]] = queue.Queue()
        self.registrations: list[tuple[str, dict[str, Any]]] = []
        self.next_calls: list[float] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                assert self.path == "/2020-01-01/extension/register"
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.registrations.append((self.headers["Lambda-Extension-Name"], body))
                self.send_response(200)
                self.send_header("Lambda-Extension-Identifier", "ext-1")
                self.end_headers()
                self.wfile.write(b'{"functionName": "f", "functionVersion": "$LATEST", "handler": "h"}')

            def do_GET(self) -> None:
                assert self.path == "/2020-01-01/extension/event/next"
                assert self.headers["Lambda-Extension-Identifier"] == "ext-1"
                fake.next_calls.append(time.monotonic())
                event = fake.invocations.get()
                payload = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def invoke(self, seconds: float = 30) -> None:
        self.invocations.put(
            {"eventType": "INVOKE", "requestId": "r", "deadlineMs": int((time.time() + seconds) * 1000)}
        )

    def wait_for_next_calls(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.next_calls) < count:
            assert time.monotonic() < deadline, f"{len(self.next_calls)} next-event calls, expected {count}"
            time.sleep(0.005)


@pytest.fixture
def api() -> Iterator[FakeExtensionsApi]:
    fake = FakeExtensionsApi()
    yield fake
    fake.server.shutdown()


def test_the_environment_is_released_only_after_the_work_that_followed_the_response(api: FakeExtensionsApi) -> None:
    finished: list[float] = []

    def finish(seconds_left: float) -> None:
        assert seconds_left > 0
        time.sleep(0.2)  # a slow send: the response did not wait for it
        finished.append(time.monotonic())

    extension = PostInvocation(api.address, finish)
    extension.register()
    assert api.registrations == [(EXTENSION_NAME, {"events": ["INVOKE"]})]
    api.wait_for_next_calls(1)  # init: the extension waits for its first invocation

    for invocation in (1, 2):
        api.invoke()
        extension.invocation_ended()  # the handler returns: the slow work goes on without it
        assert len(finished) == invocation - 1
        api.wait_for_next_calls(invocation + 1)
        assert len(finished) == invocation
        assert api.next_calls[-1] >= finished[-1]


def test_a_handler_that_ended_before_the_extension_saw_its_invocation_is_not_waited_for_twice(
    api: FakeExtensionsApi,
) -> None:
    ran: list[float] = []
    extension = PostInvocation(api.address, ran.append)
    extension.register()
    api.wait_for_next_calls(1)

    extension.invocation_ended()
    api.invoke()
    api.wait_for_next_calls(2)
    assert len(ran) == 1


def test_a_handler_that_never_ends_its_invocation_releases_the_environment_by_the_deadline(
    api: FakeExtensionsApi,
) -> None:
    ran: list[float] = []
    extension = PostInvocation(api.address, ran.append)
    extension.register()
    api.wait_for_next_calls(1)

    api.invoke(seconds=0.6)  # the margin leaves 0.1 s
    api.wait_for_next_calls(2)
    (seconds_left,) = ran
    assert 0 <= seconds_left <= 0.1
