"""Chat's answers that are not a reply itself: a user approving or refusing a tool call, stopping a reply, or
picking a reply up again (HTTP routes and WebSocket frames)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from functions.chat import eventlog, store
from shared.auth.principal import Principal
from shared.errors import Conflict, NotFound

Event = dict[str, Any]


def answer_tool_approval(principal: Principal, message_id: str, tool_call_id: str, *, approved: bool) -> dict[str, Any]:
    """Approve or refuse a tool call a reply of the caller's is waiting on. Someone else's or an unknown one is a
    404; one already answered (or given up on) is a 409. The waiting reply sees the answer at its next poll."""
    principal.require("ai.chat")
    try:
        store.answer_approval(message_id, tool_call_id, principal.user_id, approved=approved)
    except store.ApprovalNotPending as refused:
        if refused.found is None:
            raise NotFound("No tool call of yours waits for this answer", code="approval_not_found") from None
        raise Conflict(f"This tool call was already answered ({refused.found})", code="approval_answered") from None
    return {"toolCallId": tool_call_id, "approved": approved}


def cancel_reply(principal: Principal, message_id: str) -> bool:
    """Stop a reply of the caller's wherever it is generated: True if it was running (it ends within a second,
    `stopReason: "cancelled"`, its partial text kept), False if it had already ended; 404 for an unknown,
    expired or someone else's reply."""
    principal.require("ai.chat")
    return eventlog.request_cancel_blocking(message_id, principal.user_id)


async def resumed_reply(principal: Principal, message_id: str, after: int) -> AsyncGenerator[tuple[int, Event], None]:
    """The events of a reply of the caller's after seq `after`, then its live rest until its end: from any
    container, while it runs and for 10 minutes after. 404 (raised before the first event) for an unknown,
    expired or someone else's reply."""
    principal.require("ai.chat")
    record = await eventlog.open_stream(message_id, principal.user_id)
    if record.kind != "chat":
        raise NotFound("No such stream", code="not_found")
    return eventlog.follow(record, after)
