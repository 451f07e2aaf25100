"""A fake Meta Graph API on localhost, speaking the WhatsApp Cloud API's and Messenger Send API's request and
response shapes: the send routes (`POST /{phoneNumberId}/messages`, `POST /me/messages`) and what a channel's test
asks (`GET /{phoneNumberId}`, `GET /me`). Point `GRAPH_API_BASE_URL` at `.base_url`.

It records every request, refuses unknown access tokens as Graph does (401, OAuthException 190), and serves
scripted failures first (`fake.fail(500)`, `fake.fail(429, retry_after=1)`), then success."""

from __future__ import annotations

import itertools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.scripted import Fail, ScriptedServer, json_response, retry_headers


class FakeMeta(ScriptedServer):
    def __init__(self) -> None:
        super().__init__()
        # Access tokens the fake takes (none listed: any).
        self.tokens: set[str] = set()
        self._ids = itertools.count(1)
        # (recipient, text) of every message a send route accepted.
        self.delivered: list[tuple[str, str]] = []

    def sent_texts(self, recipient: str | None = None) -> list[str]:
        """The texts the send routes accepted, in order (to one recipient, or all)."""
        return [text for to, text in self.delivered if recipient is None or to == recipient]

    def reset(self) -> None:
        super().reset()
        self.delivered.clear()

    def routes(self) -> list[Route]:
        return [
            Route("/me/messages", self.messenger_send, methods=["POST"]),
            Route("/me", self.page, methods=["GET"]),
            Route("/{phone_number_id}/messages", self.whatsapp_send, methods=["POST"]),
            Route("/{phone_number_id}", self.phone_number, methods=["GET"]),
        ]

    def _refusal(self, request: Request) -> Response | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.tokens and token not in self.tokens:
            return json_response(401, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException",
                                                 "code": 190}})  # fmt: skip
        behaviour = self.next_behaviour(only_failures=True)
        if isinstance(behaviour, Fail):
            error = {"error": {"message": behaviour.message, "type": "OAuthException", "code": 2}}
            return json_response(behaviour.status, error, retry_headers(behaviour))
        return None

    async def _recorded(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        body = await self.record(request) or {}
        return body, self._refusal(request)

    async def whatsapp_send(self, request: Request) -> Response:
        body, refusal = await self._recorded(request)
        if refusal is not None:
            return refusal
        to = str(body.get("to"))
        self.delivered.append((to, str((body.get("text") or {}).get("body"))))
        return json_response(200, {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                                   "messages": [{"id": f"wamid.fake{next(self._ids)}"}]})  # fmt: skip

    async def messenger_send(self, request: Request) -> Response:
        body, refusal = await self._recorded(request)
        if refusal is not None:
            return refusal
        recipient = str((body.get("recipient") or {}).get("id"))
        self.delivered.append((recipient, str((body.get("message") or {}).get("text"))))
        return json_response(200, {"recipient_id": recipient, "message_id": f"m_fake{next(self._ids)}"})

    async def phone_number(self, request: Request) -> Response:
        _, refusal = await self._recorded(request)
        if refusal is not None:
            return refusal
        number_id = request.path_params["phone_number_id"]
        return json_response(200, {"verified_name": "Stratus Test", "display_phone_number": "+1 555-0100",
                                   "quality_rating": "GREEN", "id": number_id})  # fmt: skip

    async def page(self, request: Request) -> Response:
        _, refusal = await self._recorded(request)
        if refusal is not None:
            return refusal
        return json_response(200, {"name": "Stratus Test Page", "id": "1122334455"})
