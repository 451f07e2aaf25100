"""A fake Telegram Bot API on localhost, speaking its request and response shapes: `sendMessage`, `getMe` and
`setWebhook` under `/bot<token>/`. Point `TELEGRAM_API_BASE_URL` at `.base_url`.

It records every request, answers an unknown token 401 `Unauthorized` as the Bot API does, and serves scripted
failures first (`fake.fail(500)`; a 429 carries `parameters.retry_after` as Telegram's do), then success."""

from __future__ import annotations

import itertools
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.scripted import Fail, ScriptedServer, json_response


class FakeTelegram(ScriptedServer):
    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()
        # What setWebhook set, by bot token.
        self.webhooks: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        # Texts sendMessage accepted, in order: (chat id, text).
        self.delivered: list[tuple[int | str, str]] = []

    def sent_texts(self, chat_id: int | str | None = None) -> list[str]:
        return [text for chat, text in self.delivered if chat_id is None or str(chat) == str(chat_id)]

    def reset(self) -> None:
        super().reset()
        self.webhooks.clear()
        self.delivered.clear()

    def routes(self) -> list[Route]:
        return [Route("/bot{token}/{method}", self.call, methods=["GET", "POST"])]

    async def call(self, request: Request) -> Response:
        body = await self.record(request) or {}
        token, method = request.path_params["token"], request.path_params["method"]
        if self.tokens and token not in self.tokens:
            return json_response(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        if method == "getMe":
            return _ok({"id": 7_000_001, "is_bot": True, "first_name": "Stratus", "username": "stratus_test_bot"})
        if method == "setWebhook":
            self.webhooks[token] = body
            return _ok(True, description="Webhook was set")
        if method != "sendMessage":
            return json_response(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        behaviour = self.next_behaviour(only_failures=True)
        if isinstance(behaviour, Fail):
            answer: dict[str, Any] = {"ok": False, "error_code": behaviour.status, "description": behaviour.message}
            if behaviour.retry_after is not None:
                answer["parameters"] = {"retry_after": behaviour.retry_after}
            return json_response(behaviour.status, answer)
        self.delivered.append((body["chat_id"], body["text"]))
        return _ok({"message_id": next(self._ids), "date": int(time.time()), "chat": {"id": body["chat_id"],
                    "type": "private"}, "text": body["text"]})  # fmt: skip


def _ok(result: Any, **extra: Any) -> Response:
    return json_response(200, {"ok": True, "result": result, **extra})
