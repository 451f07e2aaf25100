"""`python -m tests.bench webhooks`: what publishing a webhook event adds to a request (the `publish` call, and the
end-of-invocation flush that waits for the sender thread's SendMessageBatch; goal p50 <= 1 ms in the request path),
then, on the local stack (moto in its process, the gateway and the queues' event sources in this one), the fan-out
and delivery latency: from `POST /conversations` answered to the receiver holding its signed `conversation.created`,
and one delivery attempt alone (the test ping: check, sign, POST, log)."""

from __future__ import annotations

import os
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest.mock import patch

PUBLISHES = 2000
FLUSHES = 50
ROUND_TRIPS = 30
PINGS = 100


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.3f} ms   p95 {p95:7.3f} ms"


class _Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import json

                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                event = json.loads(body)
                if event["type"] == "conversation.created":
                    receiver.arrived[event["data"]["id"]] = time.perf_counter()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def report_webhooks() -> None:
    import httpx

    os.environ.update(POWERTOOLS_LOG_LEVEL="ERROR", WEBHOOKS_ALLOW_PRIVATE="true")
    from infra.local.gateway import import_handler
    from infra.local.queues import catalog_pollers
    from shared import events
    from tests.bench.stack import running_local_stack

    receiver = _Receiver()
    with running_local_stack("benchwebhooks") as base_url:
        pollers = catalog_pollers(import_handler)
        for poller in pollers:
            poller.start()
        try:
            data = {"id": "01JBENCH", "title": "A conversation", "createdAt": "2026-12-01T00:00:00.000Z"}
            events.publish("conversation.created", data, user_id="warm-up")
            events.flush()
            # The request thread's part alone: the sender thread's SQS call is replaced, so the figure is the
            # append (and the thread's wake-up) a route pays, not moto's speed.
            publishes = []
            with patch("shared.events._send", lambda batch: None):
                for _ in range(PUBLISHES):
                    started = time.perf_counter()
                    events.publish("conversation.created", data, user_id="bench")
                    publishes.append(_ms(started))
                events.flush()
            flushes = []
            for _ in range(FLUSHES):
                events.publish("conversation.created", data, user_id="bench")
                started = time.perf_counter()
                events.flush()
                flushes.append(_ms(started))
            with httpx.Client(base_url=base_url, timeout=60) as http:
                trips, pings = _measure(http, receiver)
        finally:
            for poller in pollers:
                poller.stop()
            receiver.close()
    print("\nWebhooks (local stack: moto, the events and deliveries queues' event sources in this process)")
    print(f"  {f'events.publish in a request ({PUBLISHES})':<48} {_percentiles(publishes)}   (goal p50 <= 1 ms)")
    print(f"  {f'end-of-invocation flush, 1 event, moto SQS ({FLUSHES})':<48} {_percentiles(flushes)}")
    print(f"  {f'created -> receiver, fan-out + delivery ({ROUND_TRIPS})':<48} {_percentiles(trips)}")
    print(f"  {f'one delivery attempt, the test ping ({PINGS})':<48} {_percentiles(pings)}")
    print("  (the round trip is two queues, the fan-out and one attempt, on moto's SQS and DynamoDB)")


def _measure(http: Any, receiver: _Receiver) -> tuple[list[float], list[float]]:
    token = http.post("/api/v1/auth/register", json={"email": "hooks@example.com", "password": "bench password 1"})
    auth = {"authorization": f"Bearer {token.json()['accessToken']}"}
    subscription = http.post(
        "/api/v1/webhook-subscriptions", headers=auth, json={"url": receiver.url, "events": ["conversation.created"]}
    )
    if subscription.status_code != 201:
        raise SystemExit(f"bench: subscribing answered {subscription.status_code}: {subscription.text}")
    subscription_id = subscription.json()["id"]
    trips = []
    for number in range(ROUND_TRIPS + 1):
        created = http.post("/api/v1/conversations", headers=auth, json={"title": f"bench {number}"})
        answered = time.perf_counter()
        conversation_id = created.json()["id"]
        deadline = time.monotonic() + 60
        while conversation_id not in receiver.arrived:
            if time.monotonic() > deadline:
                raise SystemExit("bench: a conversation.created never reached the receiver")
            time.sleep(0.002)
        if number:  # the first warms the containers up
            trips.append((receiver.arrived[conversation_id] - answered) * 1000)
    pings = []
    for _ in range(PINGS):
        started = time.perf_counter()
        answer = http.post(f"/api/v1/webhook-subscriptions/{subscription_id}/test", headers=auth)
        pings.append(_ms(started))
        if answer.json().get("status") != "delivered":
            raise SystemExit(f"bench: the ping was not delivered: {answer.text}")
    return trips, pings
