"""A Telegram bot connected to the running local stack as the README says: the channel created with curl's
requests, `test` pointing the (fake) Bot API's webhook at the stack, an update delivered to that URL with the
secret token answered through the stack's queue and worker, and a wrong secret refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import LocalStack, running_stack
from tests.fakes.telegram_server import FakeTelegram

BOT_TOKEN = "7000001:AAe2eBotTokenForTheFakeTelegram"
SECRET_TOKEN = "e2e-secret-token"
WAIT_SECONDS = 60.0


@pytest.fixture(scope="module")
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, telegram: FakeTelegram) -> Iterator[LocalStack]:
    log_path: Path = tmp_path_factory.mktemp("channels-stack") / "local.log"
    with running_stack(log_path, {"TELEGRAM_API_BASE_URL": telegram.base_url}) as running:
        yield running


def test_a_telegram_bot_connected_from_the_readme_answers_on_the_running_stack(
    stack: LocalStack, telegram: FakeTelegram
) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        signed_up = http.post("/api/v1/auth/register", json={"email": "ops@example.com", "password": "correct horse"})
        assert signed_up.status_code == 201, signed_up.text
        auth = {"authorization": f"Bearer {signed_up.json()['accessToken']}"}
        created = http.post(
            "/api/v1/channels",
            headers=auth,
            json={"type": "telegram", "name": "Support bot",
                  "config": {"botToken": BOT_TOKEN, "secretToken": SECRET_TOKEN}},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        channel = created.json()
        assert channel["webhookUrl"] == f"{stack.base_url}/api/v1/webhooks/telegram/{channel['id']}"

        tested = http.post(f"/api/v1/channels/{channel['id']}/test", headers=auth).json()
        assert tested["ok"] is True
        assert telegram.webhooks[BOT_TOKEN]["url"] == channel["webhookUrl"]
        assert telegram.webhooks[BOT_TOKEN]["secret_token"] == SECRET_TOKEN

        message = {"message_id": 1, "chat": {"id": 777, "type": "private"}, "from": {"id": 777, "first_name": "Ada"}}
        update = {"update_id": 1, "message": {**message, "text": "Hello bot"}}
        refused = http.post(channel["webhookUrl"], json=update, headers={"x-telegram-bot-api-secret-token": "nope"})
        assert refused.status_code == 403
        accepted = http.post(
            channel["webhookUrl"], json=update, headers={"x-telegram-bot-api-secret-token": SECRET_TOKEN}
        )
        assert accepted.status_code == 200

        deadline = time.monotonic() + WAIT_SECONDS
        while not telegram.sent_texts(777) and time.monotonic() < deadline:
            time.sleep(0.1)
        (answer,) = telegram.sent_texts(777)
        assert "Hello bot" in answer  # the offline model quotes what it answers

        (conversation,) = http.get("/api/v1/conversations", headers=auth).json()["items"]
        assert conversation["source"] == {"channelId": channel["id"], "type": "telegram", "contactId": "777",
                                          "contactName": "Ada"}  # fmt: skip
