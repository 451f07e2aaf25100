"""The one publisher (shared.events) and the one audit recorder (shared.audit), on moto's SQS."""

from __future__ import annotations

import pytest

from shared import audit, events
from shared.audit import SecretInAuditError, Target
from shared.auth.principal import Principal
from shared.errors import NotFound
from shared.request_context import RequestOrigin, request_origin_var
from tests.fakes.events import published

pytestmark = pytest.mark.usefixtures("aws")

ALICE = Principal(user_id="01ALICE", roles=("member",), permissions=frozenset({"ai.chat"}), auth_type="api_key",
                  api_key_id="01KEY")  # fmt: skip


def test_published_events_reach_the_queue_in_order_once_flushed() -> None:
    sent = [events.publish("conversation.created", {"conversationId": str(n)}, user_id="01ALICE") for n in range(23)]

    received = published()

    assert [event.id for event in received] == [event.id for event in sent]
    assert received[0] == sent[0]
    assert events.flush(timeout=0)


def test_an_audit_event_names_its_actor_from_the_request_and_its_target() -> None:
    token = request_origin_var.set(RequestOrigin("req-1", "203.0.113.9", "curl/8.5"))
    try:
        audit.record("apikey.created", actor=ALICE, target=Target("apikey", "01KEY2"), details={"name": "ci"})
    finally:
        request_origin_var.reset(token)

    (event,) = published()

    assert event.kind == "audit"
    assert event.type == "apikey.created"
    assert event.user_id == "01ALICE"
    assert event.data == {
        "action": "apikey.created",
        "outcome": "success",
        "actor": {"ip": "203.0.113.9", "userAgent": "curl/8.5", "userId": "01ALICE", "authType": "api_key",
                  "apiKeyId": "01KEY"},
        "requestId": "req-1",
        "target": {"type": "apikey", "id": "01KEY2"},
        "details": {"name": "ci"},
    }  # fmt: skip


def test_recorded_records_success_or_the_refusals_code_once() -> None:
    with audit.recorded("agent.updated", actor=ALICE) as entry:
        entry.target = Target("agent", "01AGENT")
    with pytest.raises(NotFound), audit.recorded("agent.deleted", actor=ALICE, target=Target("agent", "01NONE")):
        raise NotFound("Agent not found")
    with pytest.raises(RuntimeError), audit.recorded("agent.created", actor=ALICE):
        raise RuntimeError("a bug, not a refusal")

    updated, deleted = published()

    assert (updated.type, updated.data["outcome"], updated.data["target"]) == (
        "agent.updated", "success", {"type": "agent", "id": "01AGENT"},
    )  # fmt: skip
    assert (deleted.type, deleted.data["outcome"], deleted.data["details"]) == (
        "agent.deleted", "failure", {"error": "not_found"},
    )  # fmt: skip


@pytest.mark.parametrize("name", ["password", "newPassword", "refreshToken", "secret", "Authorization", "cookie"])
def test_details_that_name_a_secret_are_refused(name: str) -> None:
    with pytest.raises(SecretInAuditError):
        audit.record("user.login", user_id="01ALICE", details={name: "hunter2"})


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="not an audit action"):
        audit.record("user.teleported", actor=ALICE)
