"""`make bench` (channels): on the local stack (moto in its process, the gateway and the queue worker's event
source in this one), a Telegram channel's webhook acknowledgement latency (verify, parse, queue: goal p50 <= 20 ms)
and the time from an inbound message to its answer reaching the (fake) Bot API, through the queue, the worker, the
reply generator (the offline model) and sendMessage."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

ACKS = 200
ROUND_TRIPS = 20
BOT_TOKEN = "7000001:AAbenchBotToken"
SECRET = "bench-secret-token"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):6.1f} ms   p95 {p95:6.1f} ms"


def report_channels() -> None:
    import httpx

    from tests.fakes.telegram_server import FakeTelegram

    with FakeTelegram() as telegram:
        # The owner answers a few hundred messages: above the default hourly request limit.
        os.environ.update(
            TELEGRAM_API_BASE_URL=telegram.base_url, POWERTOOLS_LOG_LEVEL="ERROR", CHAT_REQUESTS_PER_WINDOW="100000"
        )
        from infra.local.gateway import import_handler
        from infra.local.queues import catalog_pollers
        from tests.bench.stack import running_local_stack

        with running_local_stack("benchchannels") as base_url:
            # The acknowledgements are timed before the worker starts: what a platform waits for is the webhook
            # alone, not the webhook sharing this process's GIL with replies being generated.
            pollers = catalog_pollers(import_handler)
            try:
                with httpx.Client(base_url=base_url, timeout=60) as http, _timed_queue_sends() as sends:
                    acks, trips = _measure(http, telegram, start_worker=lambda: [poller.start() for poller in pollers])
                # The acknowledgements' own sends (the first is the warm-up's): what the fake SQS costs each, and
                # what the webhook costs without it.
                queue_sends = sends[1 : ACKS + 1]
                rest = [ack - send for ack, send in zip(acks, queue_sends, strict=True)]
            finally:
                for poller in pollers:
                    poller.stop()
    print("\nChannels on the local stack (Telegram, fake Bot API, offline model)")
    print(f"  {f'webhook acknowledgement ({ACKS} updates)':<44} {_percentiles(acks)}   (goal p50 <= 20 ms)")
    print(f"  {'  of which the queue send (moto SQS)':<44} {_percentiles(queue_sends)}")
    print(f"  {'  the rest (gateway, verify, parse)':<44} {_percentiles(rest)}")
    print(f"  {f'inbound to outbound ({ROUND_TRIPS} messages)':<44} {_percentiles(trips)}")


@contextmanager
def _timed_queue_sends() -> Iterator[list[float]]:
    """The milliseconds of each inbound-queue send (SendMessageBatch) the webhook makes, while the block runs."""
    from botocore.client import BaseClient

    sends: list[float] = []
    make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def timed(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return make_api_call(client, operation, params)
        finally:
            if operation == "SendMessageBatch" and str(params.get("QueueUrl", "")).endswith(".fifo"):
                sends.append(_ms(started))

    with patch.object(BaseClient, "_make_api_call", timed):
        yield sends


def _measure(http: object, telegram: object, *, start_worker: Callable[[], object]) -> tuple[list[float], list[float]]:
    import httpx

    from tests.fakes.telegram_server import FakeTelegram

    assert isinstance(http, httpx.Client)
    assert isinstance(telegram, FakeTelegram)
    token = http.post("/api/v1/auth/register", json={"email": "channels@example.com", "password": "bench password 1"})
    auth = {"authorization": f"Bearer {token.json()['accessToken']}"}
    channel = http.post("/api/v1/channels", headers=auth, json={
        "type": "telegram", "name": "Bench bot", "config": {"botToken": BOT_TOKEN, "secretToken": SECRET},
    }).json()  # fmt: skip
    url = f"/api/v1/webhooks/telegram/{channel['id']}"
    headers = {"x-telegram-bot-api-secret-token": SECRET}

    def update(number: int, chat: int) -> dict[str, object]:
        message = {"message_id": number, "chat": {"id": chat, "type": "private"}, "text": f"message {number}"}
        return {"update_id": number, "message": message}

    http.post(url, json=update(0, 1), headers=headers)  # warm-up: cold starts, the secret unsealed once
    acks = []
    for number in range(1, ACKS + 1):
        started = time.perf_counter()
        answer = http.post(url, json=update(number, 1000 + number % 20), headers=headers)
        acks.append(_ms(started))
        if answer.status_code != 200:
            raise SystemExit(f"bench: the webhook answered {answer.status_code}")
    start_worker()
    # Let the worker drain what the acknowledgements queued before timing single messages.
    deadline = time.monotonic() + 300
    while len(telegram.delivered) < ACKS + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    trips = []
    for number in range(ROUND_TRIPS):
        chat = 5000 + number
        started = time.perf_counter()
        http.post(url, json=update(10_000 + number, chat), headers=headers)
        deadline = time.monotonic() + 60
        while not telegram.sent_texts(chat):
            if time.monotonic() > deadline:
                raise SystemExit("bench: an inbound message was never answered")
            time.sleep(0.002)
        trips.append(_ms(started))
    return acks, trips
