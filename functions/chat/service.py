"""Chat's answers that are not a reply: a user approving or refusing a tool call (HTTP route and WebSocket frame)."""

from __future__ import annotations

from typing import Any

from functions.chat import store
from shared.auth.principal import Principal
from shared.errors import Conflict, NotFound


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
