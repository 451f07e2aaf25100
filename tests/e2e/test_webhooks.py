"""Outbound webhooks on a running local stack of their own (private addresses allowed: the receiver is on
loopback), over real HTTP: a conversation created reaches the receiver as a signed `conversation.created`, through
the events queue, the fan-out and the delivery worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import running_stack

pytestmark = pytest.mark.e2e

# Deliveries are asynchronous (two queues and their event sources' long polls): poll a while.
DELIVERY_SECONDS = 30.0


@pytest.fixture(scope="module")
def webhooks_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("webhooks-stack") / "local.log"
    with running_stack(log, environment={"WEBHOOKS_ALLOW_PRIVATE": "true"}) as stack:
        yield stack.base_url


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            received.append(({name.lower(): value for name, value in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/in", received
    server.shutdown()
    server.server_close()


def test_a_conversation_created_reaches_the_subscribers_receiver_signed(
    webhooks_stack: str, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    with httpx.Client(base_url=webhooks_stack, timeout=30) as http:
        email = f"hooks-{uuid.uuid4().hex[:8]}@example.com"
        registered = http.post("/api/v1/auth/register", json={"email": email, "password": "correct horse battery"})
        auth = {"authorization": f"Bearer {registered.json()['accessToken']}"}
        subscription = http.post(
            "/api/v1/webhook-subscriptions", headers=auth, json={"url": url, "events": ["conversation.created"]}
        )
        assert subscription.status_code == 201, subscription.text
        secret = subscription.json()["secret"]
        created = http.post("/api/v1/conversations", headers=auth, json={"title": "Hooked"})
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + DELIVERY_SECONDS
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert received, "the receiver got nothing"
        headers, body = received[0]
        event = json.loads(body)
        assert event["type"] == "conversation.created"
        assert event["data"]["id"] == created.json()["id"]
        signed = hmac.new(secret.encode(), headers["stratus-timestamp"].encode() + b"." + body, hashlib.sha256)
        assert headers["stratus-signature"] == f"v1={signed.hexdigest()}"
        assert headers["stratus-event-id"] == event["id"]
        # The worker logs the attempt once the receiver has answered: a moment after the receiver got it.
        deliveries = f"/api/v1/webhook-subscriptions/{subscription.json()['id']}/deliveries"
        log: list[str] = []
        while not log and time.monotonic() < deadline:
            log = [entry["status"] for entry in http.get(deliveries, headers=auth).json()["items"]]
            time.sleep(0.05)
        assert log == ["delivered"]
