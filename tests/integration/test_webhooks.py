"""Outbound webhooks through API Gateway events on moto: subscriptions, the fan-out of published events, and the
delivery worker posting to a receiver written here, which verifies every signature as a subscriber would."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.webhooks import delivery, jobs, service
from functions.webhooks.worker import lambda_handler as delivery_worker
from infra.catalog import WEBHOOK_DELIVERIES_QUEUE
from infra.local.queues import sqs_event
from shared.aws import client
from shared.outbound import Resolver
from shared.settings import get_settings
from tests.fakes.events import deliver_events, published
from tests.integration.conftest import User, error_code, register
from tests.integration.jobs_pages import delete_all, export_all

SUBSCRIPTIONS = "/api/v1/webhook-subscriptions"


# A receiver, as a subscriber would write one --------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """Answers each POST with the next of `answers` (then 200), after checking its signature with `secret`."""

    url: str
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    secret: str = ""
    bad_signatures: int = 0

    def verify(self, got: Received) -> bool:
        timestamp = got.headers["stratus-timestamp"]
        expected = hmac.new(self.secret.encode(), timestamp.encode() + b"." + got.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(got.headers["stratus-signature"], f"v1={expected}")


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start() -> Receiver:
        receiver = Receiver(url="")

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                got = Received({name.lower(): value for name, value in self.headers.items()}, body)
                receiver.received.append(got)
                if receiver.secret and not receiver.verify(got):
                    receiver.bad_signatures += 1
                status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dev_webhooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A dev stage letting webhooks reach loopback (the receivers run there), retrying at once."""
    monkeypatch.setenv("WEBHOOKS_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("WEBHOOK_RETRY_BASE_SECONDS", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def dns() -> Iterator[dict[str, list[str]]]:
    """Hostnames the webhooks resolve, answered from this table first (tests change it between calls)."""
    table: dict[str, list[str]] = {}
    previous: Resolver = delivery.resolver()

    async def resolve(host: str, port: int) -> list[str]:
        return table[host] if host in table else await previous(host, port)

    delivery.use_resolver(resolve)
    yield table
    delivery.use_resolver(previous)


def subscribe(api: TestClient, user: User, receiver: Receiver | None = None, **body: Any) -> dict[str, Any]:
    fields = {"url": receiver.url if receiver else "", "events": ["conversation.created"], **body}
    response = api.post(SUBSCRIPTIONS, headers=user.auth, json=fields)
    assert response.status_code == 201, response.text
    created = dict(response.json())
    if receiver is not None:
        receiver.secret = created["secret"]
    return created


def run_deliveries() -> int:
    """Hand the deliveries queue to the worker until it is empty, as the event source would; messages handled."""
    queue_url = os.environ[WEBHOOK_DELIVERIES_QUEUE.env_var]
    sqs, handled = client("sqs"), 0
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages")
        if not messages:
            return handled
        answer = delivery_worker(sqs_event(messages, queue_url=queue_url, region=os.environ["AWS_REGION"]), None)
        assert answer == {"batchItemFailures": []}
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        handled += len(messages)


def create_conversation(api: TestClient, user: User, title: str = "Hello") -> dict[str, Any]:
    response = api.post("/api/v1/conversations", headers=user.auth, json={"title": title})
    assert response.status_code == 201, response.text
    return dict(response.json())


def deliveries_of(api: TestClient, user: User, subscription_id: str) -> list[dict[str, Any]]:
    response = api.get(f"{SUBSCRIPTIONS}/{subscription_id}/deliveries", headers=user.auth)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


# Subscriptions ----------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("dev_webhooks")
def test_the_secret_is_shown_once_and_stored_sealed(api: TestClient, receivers: Callable[[], Receiver]) -> None:
    ada = register(api, "ada@example.com")
    created = subscribe(api, ada, receivers(), description="CRM")
    assert created["secret"].startswith("whsec_")
    assert created["scope"] == "user"
    assert created["enabled"] is True
    shown = api.get(f"{SUBSCRIPTIONS}/{created['id']}", headers=ada.auth).json()
    listed = api.get(SUBSCRIPTIONS, headers=ada.auth).json()["items"]
    assert "secret" not in shown
    assert [item["id"] for item in listed] == [created["id"]]
    assert all(created["secret"] not in json.dumps(item) for item in listed)
    stored = client("dynamodb").get_item(
        TableName=os.environ["WEBHOOKS_TABLE"], Key={"pk": {"S": f"SUB#{created['id']}"}, "sk": {"S": "META"}}
    )["Item"]
    assert created["secret"] not in json.dumps(stored)


@pytest.mark.usefixtures("dev_webhooks")
def test_subscriptions_are_their_owners_and_stage_ones_need_webhooks_manage(
    api: TestClient, receivers: Callable[[], Receiver]
) -> None:
    admin, ada = register(api, "admin@example.com"), register(api, "ada@example.com")
    receiver = receivers()
    own = subscribe(api, ada, receiver)
    assert api.get(f"{SUBSCRIPTIONS}/{own['id']}", headers=admin.auth).status_code == 404
    assert api.delete(f"{SUBSCRIPTIONS}/{own['id']}", headers=admin.auth).status_code == 404
    stage_wide = {"url": receiver.url, "events": ["ping"], "scope": "stage"}
    refused = api.post(SUBSCRIPTIONS, headers=ada.auth, json=stage_wide)
    assert refused.status_code == 403
    stage = subscribe(api, admin, receiver, scope="stage")
    assert api.get(f"{SUBSCRIPTIONS}/{stage['id']}", headers=ada.auth).status_code == 404
    listed = api.get(SUBSCRIPTIONS, headers=admin.auth, params={"scope": "stage"}).json()["items"]
    assert [item["id"] for item in listed] == [stage["id"]]
    assert api.get(SUBSCRIPTIONS, headers=ada.auth, params={"scope": "stage"}).status_code == 403


@pytest.mark.usefixtures("dev_webhooks")
def test_unknown_event_types_are_refused(api: TestClient, receivers: Callable[[], Receiver]) -> None:
    ada = register(api, "ada@example.com")
    response = api.post(SUBSCRIPTIONS, headers=ada.auth, json={"url": receivers().url, "events": ["user.login"]})
    assert response.status_code == 422
    assert error_code(response) == "validation_error"


@pytest.mark.usefixtures("dev_webhooks")
def test_changes_and_deletion_are_in_the_audit_log(api: TestClient, receivers: Callable[[], Receiver]) -> None:
    ada = register(api, "ada@example.com")
    published()
    created = subscribe(api, ada, receivers())
    changed = api.put(f"{SUBSCRIPTIONS}/{created['id']}", headers=ada.auth, json={"events": ["memory.created"]})
    assert changed.status_code == 200
    assert changed.json()["events"] == ["memory.created"]
    assert api.delete(f"{SUBSCRIPTIONS}/{created['id']}", headers=ada.auth).status_code == 204
    assert api.delete(f"{SUBSCRIPTIONS}/{created['id']}", headers=ada.auth).status_code == 404
    audit = [(event.type, event.data["outcome"]) for event in published() if event.kind == "audit"]
    assert audit == [
        ("webhook.created", "success"),
        ("webhook.updated", "success"),
        ("webhook.deleted", "success"),
        ("webhook.deleted", "failure"),
    ]
    assert all(created["secret"] not in json.dumps(event.data) for event in published())


# Deliveries -----------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("dev_webhooks")
def test_a_conversation_created_reaches_the_receiver_signed(api: TestClient, receivers: Callable[[], Receiver]) -> None:
    ada, bob = register(api, "ada@example.com"), register(api, "bob@example.com")
    receiver = receivers()
    subscription = subscribe(api, ada, receiver, events=["conversation.created", "memory.created"])
    conversation = create_conversation(api, ada, "Plans")
    create_conversation(api, bob, "Not Ada's")
    deliver_events()
    assert run_deliveries() == 1
    [got] = receiver.received
    assert receiver.bad_signatures == 0
    event = got.event
    assert event["type"] == "conversation.created"
    assert set(event) == {"id", "type", "createdAt", "data"}
    assert event["data"]["id"] == conversation["id"]
    assert event["data"]["title"] == "Plans"
    assert got.headers["stratus-event-id"] == event["id"]
    [logged] = deliveries_of(api, ada, subscription["id"])
    assert logged["eventId"] == event["id"]
    assert logged["status"] == "delivered"
    assert logged["statusCode"] == 200
    assert logged["attempt"] == 1
    assert logged["nextRetryAt"] is None


@pytest.mark.usefixtures("dev_webhooks")
def test_a_stage_subscription_gets_everyones_events(api: TestClient, receivers: Callable[[], Receiver]) -> None:
    admin, ada = register(api, "admin@example.com"), register(api, "ada@example.com")
    receiver = receivers()
    subscribe(api, admin, receiver, scope="stage", events=["memory.created"])
    response = api.post("/api/v1/memories", headers=ada.auth, json={"content": "Ada likes tea"})
    assert response.status_code == 201, response.text
    deliver_events()
    run_deliveries()
    assert [got.event["data"]["content"] for got in receiver.received] == ["Ada likes tea"]
    assert receiver.bad_signatures == 0


@pytest.mark.usefixtures("dev_webhooks")
def test_a_receiver_failing_twice_gets_the_event_three_times_with_one_id(
    api: TestClient, receivers: Callable[[], Receiver]
) -> None:
    ada = register(api, "ada@example.com")
    receiver = receivers()
    receiver.answers = [(500, {}), (503, {})]
    subscription = subscribe(api, ada, receiver)
    create_conversation(api, ada)
    deliver_events()
    assert run_deliveries() == 3
    ids = {got.headers["stratus-event-id"] for got in receiver.received}
    assert len(receiver.received) == 3
    assert len(ids) == 1
    assert receiver.bad_signatures == 0
    assert len({got.body for got in receiver.received}) == 1
    log = deliveries_of(api, ada, subscription["id"])
    assert [(entry["attempt"], entry["statusCode"], entry["status"]) for entry in log] == [
        (3, 200, "delivered"),
        (2, 503, "failed"),
        (1, 500, "failed"),
    ]
    assert log[1]["nextRetryAt"]
    assert log[2]["nextRetryAt"]
    assert log[0]["nextRetryAt"] is None
    shown = api.get(f"{SUBSCRIPTIONS}/{subscription['id']}", headers=ada.auth).json()
    assert shown["failingSince"] is None
    assert shown["enabled"] is True


@pytest.mark.usefixtures("dev_webhooks")
def test_an_event_redelivered_to_the_fan_out_is_delivered_once(
    api: TestClient, receivers: Callable[[], Receiver]
) -> None:
    ada = register(api, "ada@example.com")
    receiver = receivers()
    subscribe(api, ada, receiver)
    create_conversation(api, ada)
    [event] = [event for event in published() if event.type == "conversation.created"]
    assert service.fan_out([event]) == []
    assert service.fan_out([event]) == []
    run_deliveries()
    assert service.fan_out([event]) == []
    assert run_deliveries() == 0
    assert len(receiver.received) == 1


@pytest.mark.usefixtures("dev_webhooks")
def test_a_redirect_is_not_followed(api: TestClient, receivers: Callable[[], Receiver]) -> None:
    ada = register(api, "ada@example.com")
    elsewhere, receiver = receivers(), receivers()
    receiver.answers = [(302, {"location": elsewhere.url})] * 50
    subscription = subscribe(api, ada, receiver)
    response = api.post(f"{SUBSCRIPTIONS}/{subscription['id']}/test", headers=ada.auth)
    assert response.status_code == 200, response.text
    ping = response.json()
    assert ping["status"] == "failed"
    assert "redirect" in ping["error"]
    assert len(receiver.received) == 1
    assert elsewhere.received == []
    receiver.answers = [(307, {"location": "/hooks/elsewhere"})]
    again = api.post(f"{SUBSCRIPTIONS}/{subscription['id']}/test", headers=ada.auth).json()
    assert again["status"] == "failed"
    assert again["statusCode"] == 307
    assert [got.headers.get("stratus-event-id") for got in receiver.received] == [ping["eventId"], again["eventId"]]


@pytest.mark.usefixtures("dev_webhooks")
def test_the_test_route_pings_and_answers_the_delivery(api: TestClient, receivers: Callable[[], Receiver]) -> None:
    ada = register(api, "ada@example.com")
    receiver = receivers()
    subscription = subscribe(api, ada, receiver)
    response = api.post(f"{SUBSCRIPTIONS}/{subscription['id']}/test", headers=ada.auth)
    ping = response.json()
    assert ping["status"] == "delivered"
    assert ping["statusCode"] == 200
    assert ping["latencyMs"] >= 0
    [got] = receiver.received
    assert got.event["type"] == "ping"
    assert got.event["id"] == ping["eventId"]
    assert receiver.bad_signatures == 0
    assert [entry["type"] for entry in deliveries_of(api, ada, subscription["id"])] == ["ping"]


# The address check, when subscribing and when delivering -----------------------------------------------------------


@pytest.mark.usefixtures("dev_webhooks")
def test_metadata_addresses_are_refused_even_where_private_ones_are_allowed(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    for url in ("http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/"):
        response = api.post(SUBSCRIPTIONS, headers=ada.auth, json={"url": url, "events": ["ping"]})
        assert response.status_code == 422, url
        assert error_code(response) == "url_not_allowed", url


def test_a_hostname_resolving_to_a_private_address_is_refused_at_subscribe(
    api: TestClient, dns: dict[str, list[str]]
) -> None:
    ada = register(api, "ada@example.com")
    dns["hooks.example.test"] = ["10.1.2.3"]
    dns["meta.example.test"] = ["169.254.169.254"]
    for host in ("hooks.example.test", "meta.example.test", "127.0.0.1"):
        response = api.post(SUBSCRIPTIONS, headers=ada.auth, json={"url": f"http://{host}/in", "events": ["ping"]})
        assert response.status_code == 422, host
        assert error_code(response) == "url_not_allowed", host


def test_an_address_that_became_private_or_metadata_is_refused_at_delivery(
    api: TestClient, dns: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_RETRY_BASE_SECONDS", "3600")  # the retry waits: one attempt in this test
    get_settings.cache_clear()
    ada = register(api, "ada@example.com")
    dns["hooks.example.test"] = ["93.184.215.14"]  # public when subscribing
    subscription = subscribe(api, ada, url="http://hooks.example.test/in")
    connected: list[str] = []
    monkeypatch.setattr("functions.webhooks.delivery.guarded_http_client", lambda *a, **k: connected.append("!"))
    for answer in (["10.1.2.3"], ["169.254.169.254"]):
        dns["hooks.example.test"] = answer
        ping = api.post(f"{SUBSCRIPTIONS}/{subscription['id']}/test", headers=ada.auth).json()
        assert ping["status"] == "failed", answer
        assert ping["error"].startswith("url_not_allowed"), answer
    create_conversation(api, ada)
    deliver_events()
    run_deliveries()
    log = deliveries_of(api, ada, subscription["id"])
    assert log
    assert all(entry["error"].startswith("url_not_allowed") for entry in log)
    assert connected == []
    get_settings.cache_clear()


# Retries for 24 hours, then disabled ---------------------------------------------------------------------------


@pytest.mark.usefixtures("dev_webhooks")
def test_a_subscription_failing_for_24_hours_is_disabled_and_its_owner_told(
    api: TestClient, receivers: Callable[[], Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = register(api, "ada@example.com")
    receiver = receivers()
    receiver.answers = [(500, {})] * 10
    subscription = subscribe(api, ada, receiver)
    clock = [service.now()]
    monkeypatch.setattr(service, "now", lambda: clock[0])
    create_conversation(api, ada)
    deliver_events()
    published()
    queue_url = os.environ[WEBHOOK_DELIVERIES_QUEUE.env_var]
    sqs = client("sqs")

    def one_attempt() -> None:
        [message] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
        delivery_worker(sqs_event([message], queue_url=queue_url, region=os.environ["AWS_REGION"]), None)
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    one_attempt()
    clock[0] += timedelta(hours=23)
    one_attempt()
    assert api.get(f"{SUBSCRIPTIONS}/{subscription['id']}", headers=ada.auth).json()["enabled"] is True
    clock[0] += timedelta(hours=1, minutes=1)
    one_attempt()
    shown = api.get(f"{SUBSCRIPTIONS}/{subscription['id']}", headers=ada.auth).json()
    assert shown["enabled"] is False
    assert shown["disabledReason"]
    assert run_deliveries() == 0
    assert len(receiver.received) == 3
    [told] = [event for event in published() if event.type == "webhook.disabled"]
    assert told.user_id == ada.id
    assert told.data["target"] == {"type": "webhook", "id": subscription["id"]}
    # Enabled again by its owner, it gets events again.
    api.put(f"{SUBSCRIPTIONS}/{subscription['id']}", headers=ada.auth, json={"enabled": True})
    create_conversation(api, ada)
    deliver_events()
    run_deliveries()
    assert len(receiver.received) == 4


def test_the_retry_wait_doubles_with_jitter_and_chains_long_waits() -> None:
    waits = [delivery.retry_wait_seconds(attempts, 30) for attempts in (1, 2, 3, 4)]
    assert all(30 * 2 ** (n - 1) / 2 <= wait <= 30 * 2 ** (n - 1) for n, wait in zip((1, 2, 3, 4), waits, strict=True))
    assert delivery.retry_wait_seconds(30, 30) <= delivery.MAX_RETRY_WAIT_SECONDS


@pytest.mark.usefixtures("dev_webhooks")
def test_a_wait_longer_than_sqs_allows_is_chained(api: TestClient, receivers: Callable[[], Receiver]) -> None:
    ada = register(api, "ada@example.com")
    receiver = receivers()
    subscription = subscribe(api, ada, receiver)
    not_before = service.now().timestamp() + 3600
    sent: list[tuple[dict[str, Any], int]] = []
    original = service._send

    def record(messages: Any, *, delay_seconds: int = 0) -> None:
        sent.extend((message, delay_seconds) for message in messages)

    service._send = record
    try:
        service.deliver({"subscriptionId": subscription["id"], "eventId": "x", "attempt": 2, "notBefore": not_before})
    finally:
        service._send = original
    [(message, delay)] = sent
    assert delay == service.MAX_QUEUE_DELAY_SECONDS
    assert message["notBefore"] == not_before
    assert receiver.received == []


# Jobs -------------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("dev_webhooks")
def test_export_has_no_secret_and_deletion_takes_deliveries_too(
    api: TestClient, receivers: Callable[[], Receiver]
) -> None:
    ada = register(api, "ada@example.com")
    receiver = receivers()
    created = subscribe(api, ada, receiver)
    api.post(f"{SUBSCRIPTIONS}/{created['id']}/test", headers=ada.auth)
    exported, _ = export_all(jobs.export_page, ada.id, jobs.EXPORT_STEM, 10)
    assert [item["id"] for item in exported] == [created["id"]]
    assert created["secret"] not in json.dumps(exported)
    deleted, _ = delete_all(jobs.delete_page, ada.id, 100)
    assert deleted >= 3  # the subscription, the ping's delivery and its log entry
    assert api.get(SUBSCRIPTIONS, headers=ada.auth).json()["items"] == []
    left = client("dynamodb").query(
        TableName=os.environ["WEBHOOKS_TABLE"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"SUB#{created['id']}"}},
    )["Items"]
    assert left == []


# Where the events are published ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_each_context_publishes_its_webhook_event_types() -> None:
    from types import SimpleNamespace

    from functions.agents.processing import _publish_processed
    from functions.channels.models import InboundMessage
    from functions.channels.worker import _publish_received
    from functions.jobs.steps import _publish_completed

    published()
    for kind in ("export", "import", "deletion", "archive"):
        job = SimpleNamespace(job_id=f"job-{kind}", kind=kind, user_id="u1", context_counts=lambda: {"memories": 2})
        _publish_completed(job)  # type: ignore[arg-type]
    document = SimpleNamespace(agent_id="a1", document_id="d1", file_name="handbook.pdf", created_by="u1")
    _publish_processed(document, "ready")  # type: ignore[arg-type]
    _publish_processed(document, "failed", "no_text")  # type: ignore[arg-type]
    channel = SimpleNamespace(channel_id="c1", type="telegram", owner_id="u1")
    inbound = InboundMessage(
        channel_id="c1", type="telegram", message_id="m1", contact_id="42", contact_name="Ann", text="hi"
    )
    _publish_received(channel, inbound, "conv1")  # type: ignore[arg-type]
    got = [(event.type, event.user_id) for event in published()]
    assert got == [
        ("export.completed", "u1"),
        ("import.completed", "u1"),
        ("account.deleted", "u1"),
        ("document.processed", "u1"),
        ("document.processed", "u1"),
        ("channel.message.received", "u1"),
    ]
    assert set(service.DELIVERED_TYPES) == {type_ for type_, _ in got} | {
        "conversation.created",
        "message.created",
        "memory.created",
    }


@pytest.mark.usefixtures("dev_webhooks")
def test_a_message_appended_publishes_message_created(api: TestClient) -> None:
    ada = register(api, "ada@example.com")
    conversation = create_conversation(api, ada)
    published()
    response = api.post(
        f"/api/v1/conversations/{conversation['id']}/messages", headers=ada.auth, json={"role": "user", "content": "Hi"}
    )
    assert response.status_code == 201, response.text
    [event] = [event for event in published() if event.type == "message.created"]
    assert event.user_id == ada.id
    assert event.data["content"] == "Hi"
