"""Posting to WebSocket connections through API Gateway's `@connections` management API.

A connection that is gone (`GoneException`: closed, or never existed) is removed with its room memberships
and never retried: the client reconnects and joins again. Its rooms are told it left (`announce_departures`),
as `$disconnect` would have: once it is removed, its `$disconnect` finds nothing left to announce.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from functions.realtime import frames, store
from shared.aws import client
from shared.concurrency import together
from shared.observability import logger


def management_endpoint(request_context: Mapping[str, Any]) -> str:
    """The management API of the connection's stage: `WEBSOCKET_MANAGEMENT_URL` (local mode, a custom
    domain) or `https://{domainName}/{stage}` from the event."""
    configured = os.environ.get("WEBSOCKET_MANAGEMENT_URL")
    if configured:
        return configured.rstrip("/")
    return f"https://{request_context['domainName']}/{request_context['stage']}"


def management_client(endpoint: str) -> Any:
    """The `apigatewaymanagementapi` client of one stage's endpoint, kept for the container's life."""
    return client("apigatewaymanagementapi", endpoint_url=endpoint)


class Poster:
    """Sends server frames to connections of one stage."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._departures: list[store.Departure] = []
        self._departures_lock = threading.Lock()

    def post(self, connection_id: str, data: bytes) -> bool:
        """Deliver one frame; False (and the connection removed) when the connection is gone."""
        from botocore.exceptions import ClientError

        try:
            management_client(self.endpoint).post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "GoneException":
                raise
            logger.info("connection gone", extra={"connectionId": connection_id})
            departure = store.remove_connection(connection_id)
            if departure.user_id is not None:
                connection_closed(connection_id, departure.user_id)
            with self._departures_lock:
                self._departures.append(departure)
            return False
        return True

    def send(self, connection_id: str, event: str, data: dict[str, Any]) -> bool:
        """One event, split into several frames when it is over the frame limit."""
        return all(self.post(connection_id, frame) for frame in frames.split_event(event, data))

    def error(
        self,
        connection_id: str,
        code: str,
        message: str,
        action: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> bool:
        return self.post(connection_id, frames.error_frame(code, message, action, details))

    def broadcast(self, connection_ids: Iterable[str], event: str, data: dict[str, Any]) -> None:
        """One event to many connections at once: a room's fan-out costs one round trip, not one per member."""
        pieces = frames.split_event(event, data)
        together(*(partial(self._post_all, connection_id, pieces) for connection_id in connection_ids))

    def presence(self, room: str, user_id: str, status: str) -> None:
        """Who is in the room now, to everyone in it: one Query, then one concurrent fan-out."""
        members = store.room_members(room)
        self.broadcast(
            [member.connection_id for member in members], "presence", presence_data(room, user_id, status, members)
        )

    def announce_departures(self) -> None:
        """Tell the rooms of connections found gone that their users left (which may find more gone ones).

        Called once a handler's own posting is done, never from inside `broadcast` (its pool must not nest)."""
        while True:
            with self._departures_lock:
                departures, self._departures = self._departures, []
            if not departures:
                return
            for departure in departures:
                if departure.user_id is not None:
                    for room in departure.rooms:
                        self.presence(room, departure.user_id, "left")

    def _post_all(self, connection_id: str, pieces: list[bytes]) -> bool:
        return all(self.post(connection_id, piece) for piece in pieces)


def presence_data(room: str, user_id: str, status: str, members: list[store.Member]) -> dict[str, Any]:
    users = sorted({member.user_id for member in members})
    return {"conversationId": room, "userId": user_id, "status": status, "members": users}


def connection_opened(connection_id: str, user_id: str) -> None:
    """`connection.opened` for the analytics counters (open WebSocket connections), named by the connection."""
    from shared import events

    events.publish(
        "connection.opened", {"connectionId": connection_id}, user_id=user_id, event_id=f"opened-{connection_id}"
    )


def connection_closed(connection_id: str, user_id: str) -> None:
    """`connection.closed`, named by the connection: found gone by a post and then disconnected by API Gateway, it
    is published twice and counted once."""
    from shared import events

    events.publish(
        "connection.closed", {"connectionId": connection_id}, user_id=user_id, event_id=f"closed-{connection_id}"
    )
