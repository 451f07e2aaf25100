"""The audit log on moto: events recorded by `shared.audit` go through the events queue to the real events function
(`tests.fakes.events.deliver_events`), whose writer stores them; the audit routes serve them through the gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.audit import jobs as audit_jobs
from functions.audit import writer
from infra.catalog import EVENTS_QUEUE
from shared import audit
from shared.audit import Target
from shared.auth.principal import Principal
from shared.aws import client
from shared.events import Event
from shared.ids import new_id
from shared.request_context import RequestOrigin, request_origin_var
from shared.tables import AUDIT
from tests.fakes.events import deliver_events
from tests.integration.conftest import User, error_code, register
from tests.integration.jobs_pages import delete_all, export_all

OWN = "/api/v1/audit"
STAGE = "/api/v1/admin/audit"
IP, AGENT = "203.0.113.77", "curl/8.5-audit-test"


@pytest.fixture(autouse=True)
def fresh_keys(aws: None) -> Iterator[None]:
    writer.forget_keys()
    yield
    writer.forget_keys()


@pytest.fixture
def people(api: TestClient) -> dict[str, User]:
    """An admin (the stage's first account: `*`, so `audit.read`) and two members."""
    return {name: register(api, f"{name}@example.com") for name in ("admin", "alice", "bob")}


def principal(user: User, roles: tuple[str, ...] = ("member",)) -> Principal:
    return Principal(user_id=user.id, roles=roles, permissions=frozenset(), auth_type="token")


def recorded(action: str, **arguments: Any) -> Event:
    """`audit.record` as a request would call it, with the request's origin."""
    token = request_origin_var.set(RequestOrigin(f"req-{new_id()}", IP, AGENT))
    try:
        return audit.record(action, **arguments)
    finally:
        request_origin_var.reset(token)


def at(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_at(when: datetime, action: str, user: User, **data: Any) -> Event:
    """An audit event as `shared.audit` builds it, at a time of the test's choosing."""
    body = {"action": action, "outcome": "success", "actor": {"userId": user.id, "authType": "token"},
            "requestId": "req-x", **data}  # fmt: skip
    return Event(type=action, data=body, user_id=user.id, kind="audit", at=at(when))


def send(*events: Event) -> None:
    """Put events on the queue as the publisher would (twice, where a test repeats one: SQS's redelivery)."""
    queue_url = client("sqs").get_queue_url(QueueName=EVENTS_QUEUE.physical_name("test"))["QueueUrl"]
    for event in events:
        client("sqs").send_message(QueueUrl=queue_url, MessageBody=event.to_message())


def items(api: TestClient, path: str, user: User, **query: Any) -> list[dict[str, Any]]:
    response = api.get(path, params=query, headers=user.auth)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def ours(found: list[dict[str, Any]], *events: Event) -> list[dict[str, Any]]:
    """The events of `found` the test recorded itself (others, like a sign-up's, may be in the log too)."""
    ids = {event.id for event in events}
    return [item for item in found if item["id"] in ids]


def raw_items(partition: str) -> list[dict[str, Any]]:
    answer = client("dynamodb").query(
        TableName=AUDIT.name_from_env(), KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": partition}}, ConsistentRead=True,
    )  # fmt: skip
    return list(answer["Items"])


def test_a_recorded_event_reaches_its_users_log_in_the_apis_shape(api: TestClient, people: dict[str, User]) -> None:
    alice = people["alice"]
    event = recorded("apikey.created", actor=principal(alice), target=Target("apikey", "01KEY"), details={"name": "ci"})

    delivered = deliver_events()

    assert event.id in {each.id for each in delivered}
    (shown,) = ours(items(api, OWN, alice), event)
    assert shown == {
        "id": event.id,
        "at": event.at,
        "action": "apikey.created",
        "outcome": "success",
        "actor": {"userId": alice.id, "authType": "token", "ip": IP, "userAgent": AGENT},
        "target": {"type": "apikey", "id": "01KEY"},
        "requestId": event.data["requestId"],
        "details": {"name": "ci"},
    }
    assert ours(items(api, OWN, people["bob"]), event) == []


def test_a_redelivered_event_is_stored_once_and_changes_nothing(api: TestClient, people: dict[str, User]) -> None:
    alice = people["alice"]
    event = recorded("agent.created", actor=principal(alice), target=Target("agent", "01AGENT"))
    deliver_events()
    before = raw_items(f"USER#{alice.id}")

    send(event, event)
    deliver_events()

    assert raw_items(f"USER#{alice.id}") == before
    assert len(ours(items(api, OWN, alice), event)) == 1
    assert len(ours(items(api, STAGE, people["admin"]), event)) == 1


def test_an_event_done_to_another_user_is_in_both_logs_and_once_in_the_stages(
    api: TestClient, people: dict[str, User]
) -> None:
    admin, bob = people["admin"], people["bob"]
    event = recorded(
        "user.roles_changed", actor=principal(admin, ("admin",)), user_id=bob.id, target=Target("user", bob.id),
        details={"roles": "viewer"},
    )  # fmt: skip
    deliver_events()

    assert [item["action"] for item in ours(items(api, OWN, bob), event)] == ["user.roles_changed"]
    assert len(ours(items(api, OWN, admin), event)) == 1
    assert len(ours(items(api, STAGE, admin), event)) == 1
    assert len(ours(items(api, STAGE, admin, userId=bob.id), event)) == 1
    assert ours(items(api, OWN, people["alice"]), event) == []


def test_the_stages_events_page_newest_first_across_days(api: TestClient, people: dict[str, User]) -> None:
    admin, alice = people["admin"], people["alice"]
    now = datetime.now(UTC)
    # Seven events over five days, two empty days among them.
    moments = [now - timedelta(days=days, minutes=minutes) for days, minutes in
               ((0, 1), (0, 2), (1, 5), (3, 1), (3, 9), (3, 30), (6, 0))]  # fmt: skip
    sent = [event_at(moment, "channel.created", alice) for moment in moments]
    send(*sent)
    deliver_events()

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        response = api.get(STAGE, params={"action": "channel.created", "limit": 2, **({"cursor": cursor} if cursor
                           else {})}, headers=admin.auth)  # fmt: skip
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        if not (cursor := page.get("nextCursor")):
            break

    assert seen == [event.id for event in sent]
    own = items(api, OWN, alice, action="channel.created", limit=100)
    assert [item["id"] for item in own] == [event.id for event in sent]


def test_filters_by_action_and_time_in_both_views(api: TestClient, people: dict[str, User]) -> None:
    admin, alice = people["admin"], people["alice"]
    now = datetime.now(UTC)
    old = event_at(now - timedelta(days=2), "mcp_server.created", alice)
    recent = event_at(now - timedelta(hours=1), "mcp_server.created", alice)
    other = event_at(now - timedelta(hours=1), "mcp_server.deleted", alice)
    send(old, recent, other)
    deliver_events()
    since = at(now - timedelta(days=1))

    for path, user, extra in ((OWN, alice, {}), (STAGE, admin, {}), (STAGE, admin, {"userId": alice.id})):
        found = items(api, path, user, action="mcp_server.created", **extra)
        assert ours(found, old, recent, other) == ours(found, recent, old)
        found = items(api, path, user, **{"from": since, **extra})
        assert {item["id"] for item in ours(found, old, recent, other)} == {recent.id, other.id}
        found = items(api, path, user, to=at(now - timedelta(days=1)), **extra)
        assert [item["id"] for item in ours(found, old, recent, other)] == [old.id]
        # A time without a zone is UTC.
        naive = (now - timedelta(days=1)).replace(tzinfo=None).isoformat()
        found = items(api, path, user, **{"from": naive, **extra})
        assert {item["id"] for item in ours(found, old, recent, other)} == {recent.id, other.id}


@pytest.mark.parametrize(
    "query",
    [{"from": "yesterday"}, {"to": "2026-13-45"}, {"from": "2026-02-02T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
     {"action": "user.teleported"}, {"limit": "0"}, {"from": "0001-01-01T00:00:00+01:00"},
     {"to": "0.5"}],
)  # fmt: skip
def test_bad_filters_are_422_in_the_error_shape(
    api: TestClient, people: dict[str, User], query: dict[str, str]
) -> None:
    for path in (OWN, STAGE):
        response = api.get(path, params=query, headers=people["admin"].auth)

        assert response.status_code == 422, response.text
        assert error_code(response) == "validation_error"


def test_a_member_may_not_read_the_stages_log(api: TestClient, people: dict[str, User]) -> None:
    response = api.get(STAGE, headers=people["alice"].auth)

    assert response.status_code == 403
    assert error_code(response) == "permission_denied"
    assert api.get(OWN).status_code == 401


def test_a_cursor_cannot_reach_another_users_log(api: TestClient, people: dict[str, User]) -> None:
    alice, bob = people["alice"], people["bob"]
    send(*(event_at(datetime.now(UTC) - timedelta(minutes=n), "agent.updated", bob) for n in range(3)))
    deliver_events()
    response = api.get(STAGE, params={"userId": bob.id, "limit": 1}, headers=people["admin"].auth)
    bobs_cursor = response.json()["nextCursor"]

    for path, user in ((OWN, alice), (STAGE, people["admin"])):
        response = api.get(path, params={"cursor": bobs_cursor}, headers=user.auth)
        assert response.status_code == 400, response.text
        assert error_code(response) == "invalid_cursor"
    assert api.get(STAGE, params={"cursor": "bm90LW91cnM"}, headers=people["admin"].auth).status_code == 400


def test_personal_fields_are_stored_encrypted_and_read_in_clear(api: TestClient, people: dict[str, User]) -> None:
    admin, alice = people["admin"], people["alice"]
    event = recorded("user.invited", actor=principal(admin, ("admin",)), target=Target("user", alice.id),
                     details={"email": "alice@example.com", "roles": "member"})  # fmt: skip
    deliver_events()

    stored = json.dumps(raw_items(f"USER#{alice.id}") + raw_items(f"USER#{admin.id}"))
    assert IP not in stored
    assert AGENT not in stored
    assert "alice@example.com" not in stored
    (shown,) = ours(items(api, STAGE, admin, userId=alice.id), event)
    assert shown["actor"] == {"userId": admin.id, "authType": "token", "ip": IP, "userAgent": AGENT}
    assert shown["details"] == {"email": "alice@example.com", "roles": "member"}


def test_account_deletion_shreds_the_personal_fields_and_keeps_the_events_unchanged(
    api: TestClient, people: dict[str, User]
) -> None:
    admin, alice = people["admin"], people["alice"]
    own = recorded("apikey.created", actor=principal(alice), target=Target("apikey", "01K"),
                   details={"permissions": "ai.chat", "name": "Alice's laptop"})  # fmt: skip
    invited = recorded("user.invited", actor=principal(admin, ("admin",)), target=Target("user", alice.id),
                       details={"email": "alice@example.com"})  # fmt: skip
    requested = recorded("account.deletion_requested", actor=principal(alice), target=Target("user", alice.id))
    deliver_events()
    before = raw_items(f"USER#{alice.id}")

    deleted, _ = delete_all(audit_jobs.delete_page, alice.id, 2000)
    writer.forget_keys()  # another container of the writer, which never opened her key
    late = recorded("apikey.revoked", actor=principal(alice), target=Target("apikey", "01K"))
    deliver_events()

    assert deleted == 1
    assert delete_all(audit_jobs.delete_page, alice.id, 2000) == (0, 1)
    after = raw_items(f"USER#{alice.id}")
    assert [item for item in after if item["eventId"]["S"] != late.id] == before
    found = {item["id"]: item for item in items(api, STAGE, admin, userId=alice.id)}
    assert found[own.id]["actor"] == {"userId": alice.id, "authType": "token"}
    assert found[own.id]["details"] == {"permissions": "ai.chat"}  # a name may name a person: it was sealed
    assert "details" not in found[invited.id]  # the email named her: it was sealed with her key
    assert found[invited.id]["actor"]["ip"] == IP  # the admin's address is the admin's, still there
    assert found[requested.id]["actor"] == {"userId": alice.id, "authType": "token"}
    # Recorded after her key was gone: no new key was made, nothing personal kept.
    assert found[late.id]["actor"] == {"userId": alice.id, "authType": "token"}
    assert not [item for item in raw_items(f"KEY#{alice.id}") if item["sk"]["S"] == "KEY"]
    assert IP not in json.dumps([item for item in after if item["eventId"]["S"] == late.id])


def test_the_export_holds_the_users_own_events_as_the_api_shows_them(api: TestClient, people: dict[str, User]) -> None:
    alice = people["alice"]
    sent = [recorded("agent.deleted", actor=principal(alice), target=Target("agent", str(n))) for n in range(5)]
    deliver_events()

    exported, pages = export_all(audit_jobs.export_page, alice.id, "audit", 2)

    assert pages >= 3
    assert ours(exported, *sent) == ours(items(api, OWN, alice, limit=100), *sent)
    assert ours(exported, *sent)[0]["actor"]["ip"] == IP


def test_domain_events_and_events_of_an_unknown_shape_are_not_stored(api: TestClient, people: dict[str, User]) -> None:
    alice = people["alice"]
    broken = Event(type="agent.created", data={"outcome": "success"}, user_id=alice.id, kind="audit")
    send(Event(type="conversation.created", data={"id": "c"}, user_id=alice.id), broken)

    deliver_events()

    assert not [item for item in raw_items(f"USER#{alice.id}") if item["eventId"]["S"] == broken.id]
