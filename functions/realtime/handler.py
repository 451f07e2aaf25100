"""The WebSocket API's integration for `$connect`, `$disconnect` and every message route.

API Gateway routes messages by `$request.body.action`; this one handler serves every route and dispatches on
the frame's own `action`, so an unknown action (routed to `$default`) gets the same `chat:error` as a
malformed frame, and the connection stays usable. Messages always answer 200: what the client sees is the
frames posted back through the management API.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from functions.realtime import frames, store
from functions.realtime.connections import (
    Poster,
    connection_closed,
    connection_opened,
    management_endpoint,
    presence_data,
)
from shared import events
from shared.auth.principal import Principal
from shared.aws import client
from shared.errors import DomainError
from shared.observability import logger

# The authorizer context kept with the connection. Token expiry is left out on purpose: API Gateway checks
# the token once, at connect, and bounds the connection to 2 h itself. Revocations are checked on every frame.
_PRINCIPAL_KEYS = ("userId", "roles", "permissions", "authType", "sessionId", "apiKeyId", "verifiedAt")


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    try:
        return _handle(event)
    finally:
        events.flush()  # `connection.opened` / `connection.closed`, on the queue before the container may freeze


def _handle(event: dict[str, Any]) -> dict[str, Any]:
    request_context = event.get("requestContext") or {}
    route = request_context.get("routeKey")
    connection_id = str(request_context.get("connectionId") or "")
    logger.append_keys(connectionId=connection_id, route=route)
    if route == "$connect":
        return on_connect(connection_id, request_context)
    poster = Poster(management_endpoint(request_context))
    if route == "$disconnect":
        on_disconnect(connection_id, poster)
    else:
        on_message(connection_id, event.get("body"), poster)
    poster.announce_departures()
    return {"statusCode": 200}


def on_connect(connection_id: str, request_context: Mapping[str, Any]) -> dict[str, Any]:
    authorizer = request_context.get("authorizer") or {}
    user_id = authorizer.get("userId")
    if not user_id:  # only reachable if the route were deployed without its authorizer
        return {"statusCode": 401}
    principal = {key: str(authorizer[key]) for key in _PRINCIPAL_KEYS if authorizer.get(key) not in (None, "")}
    connected_at = request_context.get("connectedAt")
    store.put_connection(connection_id, str(user_id), principal, int(connected_at) // 1000 if connected_at else None)
    connection_opened(connection_id, str(user_id))
    return {"statusCode": 200}


def on_disconnect(connection_id: str, poster: Poster) -> None:
    departure = store.remove_connection(connection_id)
    if departure.user_id is not None:  # None: already removed, and announced, when it was found gone
        connection_closed(connection_id, departure.user_id)
        for room in departure.rooms:
            poster.presence(room, departure.user_id, "left")


def on_message(connection_id: str, body: str | None, poster: Poster) -> None:
    action: str | None = None
    try:
        frame = frames.parse_client_frame(body)
        action = frame.action
        connection = store.get_connection(connection_id)
        if connection is None:
            poster.error(connection_id, "not_connected", "This connection is not known; reconnect", action)
            return
        dispatch(connection, frame, poster)
    except frames.FrameError as error:
        poster.error(connection_id, error.code, error.message, error.action)
    except DomainError as error:
        poster.error(connection_id, error.error_code, error.message, action, error.details)
    except Exception:
        logger.exception("websocket message failed", extra={"action": action})
        poster.error(connection_id, "internal_error", "Something went wrong; try again", action)


def dispatch(connection: store.Connection, frame: frames.ClientFrame, poster: Poster) -> None:
    principal = Principal.from_authorizer_context(connection.principal)
    fields = frame.fields
    if frame.action == "ping":
        poster.send(connection.connection_id, "pong", {})
    elif frame.action == "conversation:join":
        join(principal, connection, str(fields["conversationId"]), poster)
    elif frame.action == "conversation:leave":
        room = str(fields["conversationId"])
        _require_member(connection.connection_id, room, frame.action)
        store.leave_room(connection.connection_id, room)
        poster.send(
            connection.connection_id,
            "presence",
            presence_data(room, principal.user_id, "left", store.room_members(room)),
        )
        poster.presence(room, principal.user_id, "left")
    elif frame.action == "chat:typing":
        room = str(fields["conversationId"])
        _require_member(connection.connection_id, room, frame.action)
        others = [m.connection_id for m in store.room_members(room) if m.user_id != principal.user_id]
        data = {"conversationId": room, "userId": principal.user_id, "isTyping": fields["isTyping"]}
        poster.broadcast(others, "chat:typing", data)
    elif frame.action == "chat:tool-approval":
        from functions.chat import service as chat

        # Answered in silence: the reply's own stream goes on with the call's `tool_result`; a refusal (unknown,
        # someone else's, already answered) is a `chat:error`.
        chat.answer_tool_approval(
            principal, str(fields["messageId"]), str(fields["toolCallId"]), approved=bool(fields["approved"])
        )
    elif frame.action == "chat:resume":
        principal.require("ai.chat")
        invoke_worker(
            {
                "job": "resume",
                "connectionId": connection.connection_id,
                "endpoint": poster.endpoint,
                "principal": connection.principal,
                "messageId": str(fields["messageId"]),
                "after": int(fields.get("after", 0)),
            }
        )
    elif frame.action == "chat:cancel":
        from functions.chat import service as chat

        # Whichever container generates the reply sees the request within a second; its own stream then ends
        # with `end {stopReason: "cancelled"}`. An unknown or someone else's reply is a `chat:error` not_found.
        message_id = str(fields["messageId"])
        cancelled = chat.cancel_reply(principal, message_id)
        poster.send(connection.connection_id, "chat:cancelled", {"messageId": message_id, "cancelled": cancelled})
    elif frame.action == "chat:send":
        principal.require("ai.chat")
        request = {
            key: fields[key] for key in ("message", "conversationId", "agentId", "model") if fields.get(key) is not None
        }
        invoke_worker(
            {
                "connectionId": connection.connection_id,
                "endpoint": poster.endpoint,
                "principal": connection.principal,
                "request": request,
            }
        )


def join(principal: Principal, connection: store.Connection, room: str, poster: Poster) -> None:
    """Join the room of a conversation the user may read (NotFound otherwise), then tell the room."""
    from functions.conversations import service as conversations

    conversations.require_readable(principal, room)
    store.join_room(connection, room)
    poster.presence(room, principal.user_id, "joined")


def invoke_worker(payload: dict[str, Any]) -> None:
    """Hand a reply to the worker, asynchronously: the message route returns at once."""
    client("lambda").invoke(
        FunctionName=os.environ["WORKER_FUNCTION"], InvocationType="Event", Payload=json.dumps(payload).encode()
    )


def _require_member(connection_id: str, room: str, action: str) -> None:
    if not store.is_member(connection_id, room):
        raise frames.FrameError("not_in_room", "Join the conversation first", action)
