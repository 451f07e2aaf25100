"""The chat worker: streams one reply to a WebSocket connection, invoked asynchronously by the realtime handler.

It consumes the one reply generator (`functions.chat.reply`), exactly as the SSE route does, and posts every
event as a `chat:response` frame with the reply's `messageId`. A connection that goes away stops the stream;
the reply generator then keeps what was produced, marked incomplete.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import anyio

from functions.realtime.connections import Poster
from shared.auth.principal import Principal
from shared.errors import DomainError
from shared.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    # A loop of its own, never installed as the thread's: local mode runs handlers on threads that keep theirs.
    poster = Poster(str(event["endpoint"]))
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run(event, poster))
    finally:
        loop.close()
        poster.announce_departures()


async def run(event: dict[str, Any], poster: Poster) -> dict[str, Any]:
    from pydantic import ValidationError

    from functions.chat import reply
    from functions.chat.models import ChatRequest

    connection_id = str(event["connectionId"])

    def fail(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        poster.error(connection_id, code, message, "chat:send", details)
        return {"status": "refused", "code": code}

    try:
        principal = Principal.from_authorizer_context(event["principal"])
        request = ChatRequest.model_validate(event["request"])
        prepared = await reply.prepare(principal, request)
    except DomainError as error:
        return fail(error.error_code, error.message, error.details)
    except ValidationError:
        return fail("invalid_frame", "The chat request is not valid")
    except Exception:
        logger.exception("chat worker could not start the reply")
        return fail("internal_error", "The reply could not be started")

    sent = 0
    try:
        # Leaving early (a gone connection) keeps the partial reply: the block ends once it is stored.
        async with reply.streaming(prepared) as events:
            async for reply_event in events:
                data = {**reply_event, "messageId": prepared.message_id}
                delivered = await anyio.to_thread.run_sync(poster.send, connection_id, "chat:response", data)
                if not delivered:
                    logger.info("reply abandoned: the connection is gone", extra={"messageId": prepared.message_id})
                    return {"status": "gone", "messageId": prepared.message_id, "events": sent}
                sent += 1
    except Exception:
        # Never raise out of an asynchronous invocation: the reply so far is kept, and the client is told.
        logger.exception("chat worker failed mid-reply", extra={"messageId": prepared.message_id})
        with contextlib.suppress(Exception):
            poster.error(connection_id, "internal_error", "The reply failed; what was produced is kept", "chat:send")
        return {"status": "failed", "messageId": prepared.message_id, "events": sent}
    return {"status": "sent", "messageId": prepared.message_id, "events": sent}
