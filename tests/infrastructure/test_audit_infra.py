"""The audit log is append-only in IAM: on the synthesized template no role may change or delete an event, the
events function may only put items, the deletion's audit task may delete only keys, and no route writes."""

from __future__ import annotations

from typing import Any

import pytest

from functions.jobs.contexts import context_named
from infra.catalog import (
    API_PREFIX,
    AUDIT_FUNCTION,
    EVENTS_FUNCTION,
    HTTP_FUNCTIONS,
    STREAMING_FUNCTIONS,
    job_task_function,
)
from shared.tables import AUDIT, AUDIT_KEY_PREFIX
from tests.infrastructure.conftest import Synthesized
from tests.infrastructure.test_permissions import _listed, _statements, _target

pytestmark = pytest.mark.infra

AUDIT_TASK = job_task_function(context_named("audit"))
# Everything that changes or removes an existing item, by any API (PartiQL included).
CHANGING = {"dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:PartiQLUpdate",
            "dynamodb:PartiQLDelete", "dynamodb:TransactWriteItems", "dynamodb:RestoreTableToPointInTime"}  # fmt: skip
KEYS_ONLY = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{AUDIT_KEY_PREFIX}*"]}}


def _every_statement(synth: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """Every statement of every policy of the template, with the logical id of the policy or role holding it."""
    found = []
    for policy_id, policy in synth.of_type("AWS::IAM::Policy").items():
        found += [(policy_id, statement) for statement in policy["Properties"]["PolicyDocument"]["Statement"]]
    for role_id, role in synth.of_type("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found += [(role_id, statement) for statement in policy["PolicyDocument"]["Statement"]]
    return found


def _on_audit(synth: Synthesized, statement: dict[str, Any]) -> bool:
    """Whether the statement's resources reach the audit table (by reference or a wildcard)."""
    audit_id = synth.table_id(AUDIT)
    return any(_target(resource) in {audit_id, "*"} for resource in _listed(statement.get("Resource", "*")))


def _audit_statements(synth: Synthesized, spec: Any) -> list[dict[str, Any]]:
    return [
        statement
        for statement in _statements(synth, spec)
        if any(action.startswith("dynamodb:") for action in _listed(statement["Action"]))
        and _on_audit(synth, statement)
    ]


def test_no_role_may_change_or_delete_an_audit_event(synth: Synthesized) -> None:
    for holder, statement in _every_statement(synth):
        actions = set(_listed(statement["Action"]))
        if not _on_audit(synth, statement) or not any(action.startswith("dynamodb:") for action in actions):
            continue
        assert "dynamodb:*" not in actions, holder
        if actions & CHANGING:
            # Only the keys' partitions, never an event's (USER#, EVENT#).
            assert statement.get("Condition") == KEYS_ONLY, (holder, statement)
            assert actions == {"dynamodb:DeleteItem"}, (holder, statement)


def test_only_the_events_function_may_put_audit_items_and_it_may_do_nothing_else_to_them(synth: Synthesized) -> None:
    table = {"Fn::GetAtt": [synth.table_id(AUDIT), "Arn"]}
    puts = [holder for holder, statement in _every_statement(synth)
            if "dynamodb:PutItem" in _listed(statement["Action"]) and _on_audit(synth, statement)]  # fmt: skip

    assert sorted(_audit_statements(synth, EVENTS_FUNCTION), key=str) == sorted(
        [
            # IAM cannot see the put's condition (attribute_not_exists): the writer always sets it (functions.audit).
            {"Action": "dynamodb:PutItem", "Effect": "Allow", "Resource": table},
            {"Action": "dynamodb:Query", "Effect": "Allow", "Resource": table, "Condition": KEYS_ONLY},
        ],
        key=str,
    )
    assert len(puts) == 1
    _, function = synth.function(EVENTS_FUNCTION)
    assert function["Environment"]["Variables"]["AUDIT_RETENTION_DAYS"] == "365"
    assert function["Environment"]["Variables"][AUDIT.env_var] == {"Ref": synth.table_id(AUDIT)}


def test_the_deletions_audit_task_reads_the_log_and_deletes_only_keys(synth: Synthesized) -> None:
    table = {"Fn::GetAtt": [synth.table_id(AUDIT), "Arn"]}
    statements = _audit_statements(synth, AUDIT_TASK)

    conditioned = [statement for statement in statements if "Condition" in statement]
    assert conditioned == [{"Action": "dynamodb:DeleteItem", "Effect": "Allow", "Resource": table,
                            "Condition": KEYS_ONLY}]  # fmt: skip
    plain = {action for statement in statements if "Condition" not in statement
             for action in _listed(statement["Action"])}  # fmt: skip
    assert plain == {"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"}


def test_the_audit_function_only_reads_and_no_route_writes_the_log() -> None:
    audit_paths = {API_PREFIX + "/audit", API_PREFIX + "/admin/audit"}
    routes = [(route, spec) for spec in (*HTTP_FUNCTIONS, *STREAMING_FUNCTIONS) for route in spec.routes]

    assert {route.route_key for route in AUDIT_FUNCTION.routes} == {f"GET {path}" for path in audit_paths}
    assert [route for route, spec in routes if route.path.startswith(tuple(audit_paths)) and spec is not
            AUDIT_FUNCTION] == []  # fmt: skip
    for spec in (*HTTP_FUNCTIONS, *STREAMING_FUNCTIONS):
        assert AUDIT not in spec.tables
        assert AUDIT not in spec.append_only_tables
        assert not [grant for grant in spec.partition_grants if grant.table == AUDIT]
    assert AUDIT_FUNCTION.read_only_tables == (AUDIT,)
    assert AUDIT_FUNCTION.unsealed_secret_contexts == ("audit",)


def test_only_the_writer_seals_audit_keys_and_the_readers_only_open_them(synth: Synthesized) -> None:
    assert EVENTS_FUNCTION.secret_contexts == ("audit",)
    for spec in (AUDIT_FUNCTION, AUDIT_TASK):
        decrypting = [statement for statement in _statements(synth, spec)
                      if any(action.startswith("kms:") for action in _listed(statement["Action"]))]  # fmt: skip
        assert [(_listed(s["Action"]), s["Condition"]) for s in decrypting] == [
            (["kms:Decrypt"], {"StringEquals": {"kms:EncryptionContext:context": ["audit"]}})
        ]


def test_the_audit_table_expires_events_by_ttl_and_indexes_them_by_day(synth: Synthesized) -> None:
    table = synth.resources[synth.table_id(AUDIT)]["Properties"]

    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["gsi1"]
