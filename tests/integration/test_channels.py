"""Channels through the API and the platforms' webhooks, on moto, with local fake Graph API and Bot API servers: the
queue drained by the worker's real handler (the local event source), replies from the one reply generator (the
offline model, which quotes the message it answers, or a scripted provider), answers sent over real HTTP."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.channels.platforms import meta_signature
from functions.channels.service import forget_trusted_channels
from infra.catalog import CHANNELS_QUEUE, CHANNELS_WORKER_FUNCTION
from infra.local.gateway import import_handler
from infra.local.queues import QueuePoller
from shared.aws import client
from shared.settings import get_settings
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.meta_server import FakeMeta
from tests.fakes.telegram_server import FakeTelegram
from tests.integration.conftest import User, error_code, register

CHANNELS = "/api/v1/channels"
APP_SECRET = "whatsapp-app-secret-0001"
VERIFY_TOKEN = "verify-me-please-0001"
ACCESS_TOKEN = "EAAGwhatsappaccesstoken1234"
BOT_TOKEN = "7000001:AAbotTokenForTheFakeTelegram9876"
SECRET_TOKEN = "telegram-secret-token-42"
# How long a test waits for the worker before it says what it saw.
WAIT_SECONDS = 60.0


@pytest.fixture(scope="session")
def meta_server() -> Iterator[FakeMeta]:
    with FakeMeta() as fake:
        yield fake


@pytest.fixture(scope="session")
def telegram_server() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def platforms(
    meta_server: FakeMeta, telegram_server: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeMeta, FakeTelegram]]:
    meta_server.reset()
    telegram_server.reset()
    monkeypatch.setenv("GRAPH_API_BASE_URL", meta_server.base_url)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", telegram_server.base_url)
    get_settings.cache_clear()
    yield meta_server, telegram_server
    get_settings.cache_clear()


@pytest.fixture
def meta(platforms: tuple[FakeMeta, FakeTelegram]) -> FakeMeta:
    return platforms[0]


@pytest.fixture
def telegram(platforms: tuple[FakeTelegram, FakeTelegram]) -> FakeTelegram:
    return platforms[1]


@pytest.fixture
def worker(api: TestClient, platforms: Any) -> Iterator[QueuePoller]:
    """The worker on the inbound queue, as Lambda's event source would run it."""
    handler = import_handler(CHANNELS_WORKER_FUNCTION.handler)
    poller = QueuePoller(CHANNELS_QUEUE, CHANNELS_WORKER_FUNCTION, handler=handler).start()
    yield poller
    poller.stop()


@pytest.fixture
def owner(api: TestClient) -> User:
    return register(api, "owner@example.com")  # the first user: an admin, with channels.manage


def connect(
    api: TestClient, owner: User, channel_type: str, *, agent_id: str | None = None, **config: str
) -> dict[str, Any]:
    defaults = {
        "whatsapp": {"phoneNumberId": "1065550100", "accessToken": ACCESS_TOKEN, "appSecret": APP_SECRET,
                     "verifyToken": VERIFY_TOKEN},
        "messenger": {"pageId": "1122334455", "pageAccessToken": ACCESS_TOKEN, "appSecret": APP_SECRET,
                      "verifyToken": VERIFY_TOKEN},
        "telegram": {"botToken": BOT_TOKEN, "secretToken": SECRET_TOKEN},
    }  # fmt: skip
    body = {"type": channel_type, "name": f"Support on {channel_type}", "config": {**defaults[channel_type], **config}}
    if agent_id is not None:
        body["agentId"] = agent_id
    response = api.post(CHANNELS, headers=owner.auth, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def whatsapp_delivery(*messages: tuple[str, str, str], name: str = "Zoë") -> bytes:
    """A WhatsApp Cloud API delivery of text messages (message id, sender, text), as Meta serialises it: non-ASCII
    escaped and slashes escaped, so a re-serialisation would not give the same bytes."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100", "phone_number_id": "1065550100"},
            "contacts": [{"profile": {"name": name}, "wa_id": sender} for _, sender, _ in messages],
            "messages": [{"from": sender, "id": message_id, "timestamp": "1700000000", "type": "text",
                          "text": {"body": text}} for message_id, sender, text in messages],
        }}]}],
    }  # fmt: skip
    return json.dumps(payload, ensure_ascii=True).replace("/", "\\/").encode()


def post_meta(api: TestClient, channel: dict[str, Any], body: bytes, secret: str = APP_SECRET, **headers: str) -> Any:
    return api.post(
        f"/api/v1/webhooks/{channel['type']}/{channel['id']}",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": meta_signature(body, secret), **headers},
    )


def telegram_update(update_id: int, chat_id: int, text: str, message_id: int | None = None) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id or update_id,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ada", "last_name": "L."},
            "chat": {"id": chat_id, "type": "private", "first_name": "Ada"},
            "date": 1700000000,
            "text": text,
        },
    }


def post_telegram(api: TestClient, channel: dict[str, Any], update: dict[str, Any], secret: str = SECRET_TOKEN) -> Any:
    return api.post(
        f"/api/v1/webhooks/telegram/{channel['id']}",
        json=update,
        headers={"x-telegram-bot-api-secret-token": secret},
    )


def eventually(count: Callable[[], int], expected: int) -> None:
    """Wait until `count()` reaches `expected` (the worker runs on its own thread), then require exactly it."""
    deadline = time.monotonic() + WAIT_SECONDS
    while count() < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count() == expected


def queued_messages() -> int:
    attributes = client("sqs").get_queue_attributes(
        QueueUrl=get_settings().channels_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def conversations_of(api: TestClient, owner: User) -> list[dict[str, Any]]:
    return list(api.get("/api/v1/conversations", headers=owner.auth).json()["items"])


def messages_of(api: TestClient, owner: User, conversation_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/conversations/{conversation_id}/messages", headers=owner.auth)
    return list(response.json()["items"])


# The registry -----------------------------------------------------------------------------------------------


def test_a_channel_keeps_its_secrets_sealed_and_shows_them_masked(api: TestClient, owner: User) -> None:
    channel = connect(api, owner, "whatsapp")
    assert channel["webhookUrl"].endswith(f"/api/v1/webhooks/whatsapp/{channel['id']}")
    assert channel["config"] == {
        "phoneNumberId": "1065550100", "accessToken": "••••1234", "appSecret": "••••0001",
        "verifyToken": "••••0001",
    }  # fmt: skip
    for secret in (ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret not in json.dumps(channel)
        assert secret not in api.get(CHANNELS, headers=owner.auth).text
    stored = client("dynamodb").get_item(
        TableName="stratus-test-channels", Key={"pk": {"S": f"CHANNEL#{channel['id']}"}, "sk": {"S": "META"}}
    )["Item"]
    assert ACCESS_TOKEN not in json.dumps(stored)

    # Sent back as shown, a secret keeps its value; a new one replaces it.
    changed = api.put(
        f"{CHANNELS}/{channel['id']}",
        headers=owner.auth,
        json={"name": "Renamed", "config": {**channel["config"], "accessToken": "EAAGanewtokenvalue5678"}},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["config"]["accessToken"] == "••••5678"
    assert changed.json()["config"]["appSecret"] == "••••0001"
    assert api.get(f"{CHANNELS}/{channel['id']}", headers=owner.auth).json()["name"] == "Renamed"

    assert api.delete(f"{CHANNELS}/{channel['id']}", headers=owner.auth).status_code == 204
    assert api.get(f"{CHANNELS}/{channel['id']}", headers=owner.auth).status_code == 404


def test_channels_need_channels_manage_and_are_their_owners_alone(api: TestClient, owner: User) -> None:
    channel = connect(api, owner, "telegram")
    member = register(api, "member@example.com")
    refused = api.post(CHANNELS, headers=member.auth, json={"type": "telegram", "name": "x", "config": {}})
    assert refused.status_code in {403, 422}
    assert api.get(f"{CHANNELS}/{channel['id']}", headers=member.auth).status_code == 403
    wrong = api.post(
        CHANNELS, headers=owner.auth, json={"type": "telegram", "name": "x", "config": {"phoneNumberId": "1"}}
    )
    assert wrong.status_code == 422


def test_the_credentials_test_asks_the_platform_and_points_telegram_at_the_webhook(
    api: TestClient, owner: User, meta: FakeMeta, telegram: FakeTelegram
) -> None:
    whatsapp = connect(api, owner, "whatsapp")
    answer = api.post(f"{CHANNELS}/{whatsapp['id']}/test", headers=owner.auth).json()
    assert answer == {"ok": True, "details": {"verified_name": "Stratus Test", "display_phone_number": "+1 555-0100",
                                              "quality_rating": "GREEN", "id": "1065550100"}}  # fmt: skip
    assert meta.last_request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"

    bot = connect(api, owner, "telegram")
    answer = api.post(f"{CHANNELS}/{bot['id']}/test", headers=owner.auth).json()
    assert answer["ok"] is True
    assert answer["details"]["username"] == "stratus_test_bot"
    assert telegram.webhooks[BOT_TOKEN]["url"] == bot["webhookUrl"]
    assert telegram.webhooks[BOT_TOKEN]["secret_token"] == SECRET_TOKEN

    meta.tokens = {"some-other-token"}
    try:
        answer = api.post(f"{CHANNELS}/{whatsapp['id']}/test", headers=owner.auth).json()
    finally:
        meta.tokens = set()
    assert answer == {"ok": False, "error": "Invalid OAuth access token."}


# Webhooks ---------------------------------------------------------------------------------------------------


def test_the_subscription_check_returns_the_challenge_for_the_right_verify_token_only(
    api: TestClient, owner: User
) -> None:
    channel = connect(api, owner, "whatsapp")
    url = f"/api/v1/webhooks/whatsapp/{channel['id']}"
    check = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    answer = api.get(url, params=check)
    assert answer.status_code == 200
    assert answer.text == "1158201444"
    assert answer.headers["content-type"].startswith("text/plain")
    assert api.get(url, params={**check, "hub.verify_token": "wrong"}).status_code == 403
    assert api.get(url, params={**check, "hub.mode": "unsubscribe"}).status_code == 403
    assert api.get(f"/api/v1/webhooks/messenger/{channel['id']}", params=check).status_code == 403
    assert api.get("/api/v1/webhooks/whatsapp/01J00000000000000000000000", params=check).status_code == 403


def test_a_signed_message_is_answered_once_to_its_sender(
    api: TestClient, owner: User, meta: FakeMeta, worker: QueuePoller
) -> None:
    channel = connect(api, owner, "whatsapp")
    body = whatsapp_delivery(("wamid.A1", "15551230001", "Où est ma commande? https://shop/x"))
    assert b"\\u00f9" in body
    assert b"\\/" in body
    answer = post_meta(api, channel, body)
    assert answer.status_code == 200

    eventually(lambda: len(meta.delivered), 1)
    recipient, text = meta.delivered[0]
    assert recipient == "15551230001"
    assert "Où est ma commande? https://shop/x" in text  # the offline model quotes what it answers
    send = next(request for request in meta.requests if request.path == "/1065550100/messages")
    assert send.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert send.body == {"messaging_product": "whatsapp", "to": "15551230001", "type": "text", "text": {"body": text}}

    # The platform delivers the same message again, then the contact's next one: only the next one is answered.
    assert post_meta(api, channel, body).status_code == 200
    assert post_meta(api, channel, whatsapp_delivery(("wamid.A2", "15551230001", "second"))).status_code == 200
    eventually(lambda: len(meta.delivered), 2)
    assert "second" in meta.delivered[1][1]


def test_the_same_message_id_delivered_again_later_is_answered_once(
    api: TestClient, owner: User, meta: FakeMeta
) -> None:
    """Past SQS's five minutes of FIFO deduplication, the worker's own record of the message id holds."""
    from functions.channels.models import InboundMessage
    from functions.channels.worker import answer_inbound

    channel = connect(api, owner, "whatsapp")
    message = InboundMessage(channel_id=channel["id"], type="whatsapp", message_id="wamid.D1",
                             contact_id="15551230009", text="hello")  # fmt: skip
    answer_inbound(message)
    answer_inbound(message.model_copy(update={"text": "hello again"}))
    assert len(meta.delivered) == 1
    assert "hello" in meta.delivered[0][1]
    (conversation,) = conversations_of(api, owner)
    assert len(messages_of(api, owner, conversation["id"])) == 2


def test_a_wrong_signature_or_secret_is_refused_and_nothing_is_stored(
    api: TestClient, owner: User, meta: FakeMeta, telegram: FakeTelegram
) -> None:
    whatsapp = connect(api, owner, "whatsapp")
    bot = connect(api, owner, "telegram")
    body = whatsapp_delivery(("wamid.X1", "15551230002", "hi"))
    assert post_meta(api, whatsapp, body, secret="not-the-app-secret").status_code == 403
    unsigned = api.post(f"/api/v1/webhooks/whatsapp/{whatsapp['id']}", content=body)
    assert unsigned.status_code == 403
    # One byte changed after signing.
    signature = meta_signature(body, APP_SECRET)
    tampered = api.post(f"/api/v1/webhooks/whatsapp/{whatsapp['id']}", content=body.replace(b"hi", b"ho"),
                        headers={"x-hub-signature-256": signature})  # fmt: skip
    assert tampered.status_code == 403
    assert post_telegram(api, bot, telegram_update(1, 42, "hi"), secret="wrong-secret").status_code == 403
    no_secret = api.post(f"/api/v1/webhooks/telegram/{bot['id']}", json=telegram_update(2, 42, "hi"))
    assert no_secret.status_code == 403
    assert queued_messages() == 0
    assert conversations_of(api, owner) == []


def test_a_channel_changed_after_a_delivery_is_verified_against_what_is_stored_now(
    api: TestClient, owner: User
) -> None:
    """The webhook trusts a channel it read for a few seconds; a secret rotated or a channel re-enabled in those
    seconds is what counts at once."""
    bot = connect(api, owner, "telegram")
    assert post_telegram(api, bot, telegram_update(1, 42, "first")).status_code == 200
    assert queued_messages() == 1

    rotated = api.put(f"{CHANNELS}/{bot['id']}", headers=owner.auth,
                      json={"config": {"secretToken": "a-rotated-secret-token-43"}})  # fmt: skip
    assert rotated.status_code == 200, rotated.text
    assert (
        post_telegram(api, bot, telegram_update(2, 42, "new secret"), secret="a-rotated-secret-token-43").status_code
        == 200
    )
    assert queued_messages() == 2

    # Disabled: the container still trusting the channel may queue a delivery (the worker, which reads the channel
    # itself, answers none); a container that read it disabled drops deliveries until it reads it enabled again.
    secret = "a-rotated-secret-token-43"
    assert api.put(f"{CHANNELS}/{bot['id']}", headers=owner.auth, json={"enabled": False}).status_code == 200
    forget_trusted_channels()
    assert post_telegram(api, bot, telegram_update(3, 42, "while disabled"), secret=secret).status_code == 200
    assert queued_messages() == 2
    assert api.put(f"{CHANNELS}/{bot['id']}", headers=owner.auth, json={"enabled": True}).status_code == 200
    assert post_telegram(api, bot, telegram_update(4, 42, "enabled again"), secret=secret).status_code == 200
    assert queued_messages() == 3


def test_another_channels_id_with_a_signature_valid_for_a_different_channel_is_refused(
    api: TestClient, owner: User
) -> None:
    mine = connect(api, owner, "whatsapp")
    other_owner = register(api, "other@example.com")
    api.put(f"/api/v1/admin/users/{other_owner.id}/roles", headers=owner.auth, json={"roles": ["admin"]})
    from tests.integration.conftest import login

    theirs = connect(api, login(api, "other@example.com"), "whatsapp", appSecret="their-own-app-secret-77")
    body = whatsapp_delivery(("wamid.Y1", "15551230003", "hi"))
    # Signed with their secret, sent to my channel's URL.
    assert post_meta(api, mine, body, secret="their-own-app-secret-77").status_code == 403
    assert post_meta(api, theirs, body, secret=APP_SECRET).status_code == 403
    # A channel id that exists as another type, and one that does not exist.
    assert api.post(f"/api/v1/webhooks/messenger/{mine['id']}", content=body,
                    headers={"x-hub-signature-256": meta_signature(body, APP_SECRET)}).status_code == 403  # fmt: skip
    assert post_meta(api, {"type": "whatsapp", "id": "01J00000000000000000000000"}, body).status_code == 403
    assert queued_messages() == 0


def test_statuses_and_unknown_shapes_are_acknowledged_and_ignored(api: TestClient, owner: User) -> None:
    channel = connect(api, owner, "whatsapp")
    statuses = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "statuses": [{"id": "wamid.S1", "status": "delivered", "recipient_id": "1555"}]}}]}]}).encode()  # fmt: skip
    for body in (statuses, b'{"entry": "not a list"}', b"[1, 2]", b"not json at all"):
        assert post_meta(api, channel, body).status_code == 200
    assert queued_messages() == 0


def test_a_body_api_gateway_hands_over_base64_encoded_is_verified_on_its_raw_bytes(
    api: TestClient, owner: User
) -> None:
    channel = connect(api, owner, "whatsapp")
    body = whatsapp_delivery(("wamid.B1", "15551230004", "naïve café"))
    # Not a text type: API Gateway base64-encodes it (isBase64Encoded), Mangum decodes it.
    answer = post_meta(api, channel, body, **{"content-type": "application/octet-stream"})
    assert answer.status_code == 200
    assert queued_messages() == 1


# The worker -------------------------------------------------------------------------------------------------


@pytest.fixture
def anthropic(anthropic_fake: FakeAnthropic, llm_environment: Callable[..., None]) -> FakeAnthropic:
    llm_environment(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=anthropic_fake.base_url)
    return anthropic_fake


def test_a_long_answer_arrives_as_three_telegram_messages_in_order(
    api: TestClient, owner: User, telegram: FakeTelegram, anthropic: FakeAnthropic, worker: QueuePoller
) -> None:
    anthropic_fake = anthropic
    paragraphs = [
        (f"Paragraph {index}: " + "All work and no play makes a dull answer. " * 20).strip() for index in range(10)
    ]
    long_answer = "\n\n".join(paragraphs)
    assert 8_500 < len(long_answer) < 9_200
    anthropic_fake.reply(long_answer)
    bot = connect(api, owner, "telegram")
    assert post_telegram(api, bot, telegram_update(100, 4242, "Tell me everything")).status_code == 200

    eventually(lambda: len(telegram.delivered), 3)
    parts = telegram.sent_texts(4242)
    assert all(len(part) <= 4096 for part in parts)
    assert "\n\n".join(parts) == long_answer
    assert parts[0].startswith("Paragraph 0:")
    assert parts[-1].endswith("dull answer.")


def test_a_send_the_platform_answers_500_then_200_is_retried_and_sent_once(
    api: TestClient, owner: User, meta: FakeMeta, worker: QueuePoller
) -> None:
    channel = connect(api, owner, "whatsapp")
    meta.fail(500)
    assert post_meta(api, channel, whatsapp_delivery(("wamid.R1", "15551230005", "retry me"))).status_code == 200
    eventually(lambda: len(meta.delivered), 1)
    sends = [request for request in meta.requests if request.path.endswith("/messages")]
    assert len(sends) == 2
    assert sends[0].body == sends[1].body


def test_a_send_refused_for_good_is_noted_on_the_conversation(
    api: TestClient, owner: User, meta: FakeMeta, worker: QueuePoller
) -> None:
    channel = connect(api, owner, "whatsapp")
    meta.fail(400, message="(#131030) Recipient phone number not in allowed list")
    assert post_meta(api, channel, whatsapp_delivery(("wamid.F1", "15551230006", "hello"))).status_code == 200
    eventually(lambda: worker.failures, 1)
    (conversation,) = conversations_of(api, owner)
    note = messages_of(api, owner, conversation["id"])[-1]
    assert note["role"] == "system"
    assert "Recipient phone number not in allowed list" in note["content"]
    assert note["metadata"]["channelDelivery"]["status"] == "failed"
    assert meta.delivered == []


def test_messenger_messages_are_answered_and_echoes_ignored(
    api: TestClient, owner: User, meta: FakeMeta, worker: QueuePoller
) -> None:
    channel = connect(api, owner, "messenger")
    payload = {"object": "page", "entry": [{"id": "1122334455", "time": 1700000000, "messaging": [
        {"sender": {"id": "1122334455"}, "recipient": {"id": "9000"}, "message": {"mid": "m_echo", "text": "echo",
                                                                                   "is_echo": True}},
        {"sender": {"id": "9000"}, "recipient": {"id": "1122334455"}, "delivery": {"mids": ["m_1"]}},
        {"sender": {"id": "9000"}, "recipient": {"id": "1122334455"}, "message": {"mid": "m_2", "text": "bonjour"}},
    ]}]}  # fmt: skip
    assert post_meta(api, channel, json.dumps(payload).encode()).status_code == 200
    eventually(lambda: len(meta.delivered), 1)
    recipient, text = meta.delivered[0]
    assert recipient == "9000"
    assert "bonjour" in text
    send = next(request for request in meta.requests if request.path == "/me/messages")
    assert send.body == {"recipient": {"id": "9000"}, "messaging_type": "RESPONSE", "message": {"text": text}}


def test_a_hundred_messages_from_twenty_contacts_get_a_hundred_answers_each_contacts_in_order(
    api: TestClient, owner: User, telegram: FakeTelegram, worker: QueuePoller
) -> None:
    bot = connect(api, owner, "telegram")
    contacts = [5000 + index for index in range(20)]

    def send_all(contact: int) -> None:
        for number in range(5):
            update = telegram_update(contact * 10 + number, contact, f"contact {contact} message {number}")
            assert post_telegram(api, bot, update).status_code == 200

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(send_all, contacts))
    eventually(lambda: len(telegram.delivered), 100)
    for contact in contacts:
        answers = telegram.sent_texts(contact)
        assert len(answers) == 5
        for number, answer in enumerate(answers):
            assert f"contact {contact} message {number}" in answer


def test_channel_conversations_appear_in_the_owners_list_with_their_source(
    api: TestClient, owner: User, meta: FakeMeta, worker: QueuePoller
) -> None:
    channel = connect(api, owner, "whatsapp")
    post_meta(api, channel, whatsapp_delivery(("wamid.C1", "15551230007", "first"), name="Zoë"))
    eventually(lambda: len(meta.delivered), 1)
    post_meta(api, channel, whatsapp_delivery(("wamid.C2", "15551230007", "second"), name="Zoë"))
    eventually(lambda: len(meta.delivered), 2)

    (conversation,) = conversations_of(api, owner)
    assert conversation["source"] == {"channelId": channel["id"], "type": "whatsapp", "contactId": "15551230007",
                                      "contactName": "Zoë"}  # fmt: skip
    assert conversation["ownerId"] == owner.id
    messages = messages_of(api, owner, conversation["id"])
    assert [message["role"] for message in messages] == ["user", "assistant", "user", "assistant"]
    assert [messages[0]["content"], messages[2]["content"]] == ["first", "second"]
    assert messages[3]["content"] == meta.delivered[1][1]


# Jobs -------------------------------------------------------------------------------------------------------


def test_the_account_export_has_the_channels_masked_and_deletion_removes_them_with_their_maps(
    api: TestClient, owner: User, meta: FakeMeta
) -> None:
    from functions.channels import jobs
    from functions.channels.models import InboundMessage
    from functions.channels.worker import answer_inbound
    from tests.integration.jobs_pages import delete_all, export_all

    channels = [connect(api, owner, "whatsapp"), connect(api, owner, "telegram"), connect(api, owner, "messenger")]
    answer_inbound(InboundMessage(channel_id=channels[0]["id"], type="whatsapp", message_id="wamid.J1",
                                  contact_id="15551230010", text="hello"))  # fmt: skip
    exported, pages = export_all(jobs.export_page, owner.id, jobs.EXPORT_STEM, 2)
    assert pages == 2
    assert sorted(record["id"] for record in exported) == sorted(channel["id"] for channel in channels)
    for secret in (ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN, BOT_TOKEN, SECRET_TOKEN):
        assert secret not in json.dumps(exported)

    deleted, _ = delete_all(jobs.delete_page, owner.id, 10)
    # Three channels, the contact's conversation map and its processed message id.
    assert deleted == 5
    assert api.get(CHANNELS, headers=owner.auth).json()["items"] == []
    partition = client("dynamodb").query(
        TableName="stratus-test-channels",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"CHANNEL#{channels[0]['id']}"}},
    )
    assert partition["Items"] == []


# Answered by an agent ---------------------------------------------------------------------------------------


def test_a_channel_is_answered_by_its_agent_and_a_new_agent_starts_a_new_conversation(
    api: TestClient, owner: User, telegram: FakeTelegram, anthropic: FakeAnthropic, worker: QueuePoller
) -> None:
    def agent(instructions: str) -> str:
        created = api.post("/api/v1/agents", headers=owner.auth, json={"name": "Desk", "instructions": instructions})
        assert created.status_code == 201, created.text
        return str(created.json()["agentId"])

    refused = api.post(
        CHANNELS, headers=owner.auth,
        json={"type": "telegram", "name": "Bot", "agentId": "01J00000000000000000000000", "enabled": True,
              "config": {"botToken": BOT_TOKEN, "secretToken": SECRET_TOKEN}},
    )  # fmt: skip
    assert refused.status_code == 422
    assert error_code(refused) == "validation_error"
    first = agent("You are the front desk of the Hotel Aurora.")
    bot = connect(api, owner, "telegram", agent_id=first)
    anthropic.reply("Check-in starts at 15:00.")
    assert post_telegram(api, bot, telegram_update(300, 77, "When is check-in?")).status_code == 200
    eventually(lambda: len(telegram.sent_texts(77)), 1)
    system = anthropic.last_request.body["system"]  # type: ignore[index]
    assert "front desk of the Hotel Aurora" in (system if isinstance(system, str) else system[0]["text"])
    (conversation,) = conversations_of(api, owner)
    assert conversation["agentId"] == first

    second = agent("You are the concierge of the Hotel Borealis.")
    changed = api.put(f"{CHANNELS}/{bot['id']}", headers=owner.auth, json={"agentId": second})
    assert changed.status_code == 200, changed.text
    assert post_telegram(api, bot, telegram_update(301, 77, "And check-out?")).status_code == 200
    eventually(lambda: len(telegram.sent_texts(77)), 2)
    system = anthropic.last_request.body["system"]  # type: ignore[index]
    assert "concierge of the Hotel Borealis" in (system if isinstance(system, str) else system[0]["text"])
    assert sorted(c["agentId"] for c in conversations_of(api, owner)) == sorted([first, second])


@pytest.mark.usefixtures("worker")
def test_no_log_line_carries_a_channels_secret(
    api: TestClient, owner: User, telegram: FakeTelegram, anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    """Telegram's API puts the bot's token in every URL: answering a message logs none of it."""
    caplog.set_level(logging.DEBUG)
    anthropic.reply("Hello there.")
    bot = connect(api, owner, "telegram")
    assert api.post(f"{CHANNELS}/{bot['id']}/test", headers=owner.auth).json()["ok"] is True
    assert post_telegram(api, bot, telegram_update(400, 99, "Hi")).status_code == 200
    eventually(lambda: len(telegram.sent_texts(99)), 1)

    assert caplog.records
    assert BOT_TOKEN not in caplog.text
    assert SECRET_TOKEN not in caplog.text
