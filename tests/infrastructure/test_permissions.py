"""Least privilege: each function may write its own logs and traces and touch exactly what its spec lists."""

from __future__ import annotations

from typing import Any

import pytest

from infra.catalog import (
    AGENTS_FUNCTION,
    AUTHORIZER_FUNCTION,
    CHAT_FUNCTION,
    HEALTH_FUNCTION,
    HTTP_FUNCTIONS,
    JOB_TASK_FUNCTIONS,
    KNOWLEDGE_FUNCTIONS,
    MCP_FUNCTION,
    STREAMING_FUNCTIONS,
    WEBSOCKET_FUNCTIONS,
    WEBSOCKET_WORKER_FUNCTION,
    FunctionSpec,
)
from infra.functions import SIGNING_KEYS_FUNCTION
from shared.auth.api_keys import API_KEY_RESOLUTION_ATTRIBUTES, API_KEY_RESOLUTION_PARTITIONS
from shared.tables import IDENTITY
from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infra

CATALOG_FUNCTIONS = (
    *HTTP_FUNCTIONS, AUTHORIZER_FUNCTION, *STREAMING_FUNCTIONS, *JOB_TASK_FUNCTIONS, *KNOWLEDGE_FUNCTIONS,
)  # fmt: skip
WRITE_ACTIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
READ_ACTIONS = {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"}
SECRET_READ_ACTIONS = {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
TRACE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _name(spec: FunctionSpec) -> str:
    return spec.name


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(synth: Synthesized, spec: FunctionSpec) -> list[dict[str, Any]]:
    """Every statement of the function's role, from its attached and inline policies."""
    _, function = synth.function(spec)
    role_id = function["Role"]["Fn::GetAtt"][0]
    statements = []
    for policy in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    for policy in synth.resources[role_id]["Properties"].get("Policies", []):
        statements += policy["PolicyDocument"]["Statement"]
    assert all(statement["Effect"] == "Allow" for statement in statements)
    return statements


def _target(resource: Any) -> str:
    """The logical id an IAM resource points at (`Ref`, `Fn::GetAtt`, or one joined into an ARN); '*' for none."""
    if isinstance(resource, dict):
        if "Ref" in resource:
            return str(resource["Ref"])
        if "Fn::GetAtt" in resource:
            return str(resource["Fn::GetAtt"][0])
        if "Fn::Join" in resource:
            # Pseudo parameters (AWS::Partition, AWS::AccountId) are part of the ARN, not what it points at.
            targets = {_target(part) for part in resource["Fn::Join"][1] if isinstance(part, dict)}
            (target,) = {name for name in targets if not name.startswith("AWS::")} or {"*"}
            return target
    return "*"


def _grants(synth: Synthesized, spec: FunctionSpec, service: str) -> dict[str, set[str]]:
    """The actions of one service the function may perform on whole resources, by the logical id they apply to
    (statements narrowed by a condition are checked on their own, e.g. the revocation reads)."""
    grants: dict[str, set[str]] = {}
    for statement in _statements(synth, spec):
        if service == "dynamodb" and "Condition" in statement:
            continue
        actions = {action for action in _listed(statement["Action"]) if action.startswith(f"{service}:")}
        for resource in _listed(statement["Resource"]) if actions else ():
            grants.setdefault(_target(resource), set()).update(actions)
    return grants


def _partition_grant_statements(synth: Synthesized, spec: FunctionSpec) -> list[dict[str, Any]]:
    return [
        {
            "Action": grant.actions[0] if len(grant.actions) == 1 else list(grant.actions),
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [synth.table_id(grant.table), "Arn"]},
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{grant.prefix}*"]}},
        }
        for grant in spec.partition_grants
    ]


@pytest.mark.parametrize("spec", CATALOG_FUNCTIONS, ids=_name)
def test_role_has_no_wildcard_actions_and_no_managed_policies(synth: Synthesized, spec: FunctionSpec) -> None:
    _, function = synth.function(spec)
    role = synth.resources[function["Role"]["Fn::GetAtt"][0]]["Properties"]
    actions = [action for statement in _statements(synth, spec) for action in _listed(statement["Action"])]

    assert "ManagedPolicyArns" not in role
    assert [action for action in actions if "*" in action] == []


@pytest.mark.parametrize("spec", CATALOG_FUNCTIONS, ids=_name)
def test_function_may_use_only_its_logs_traces_tables_and_the_signing_keys(
    synth: Synthesized, spec: FunctionSpec
) -> None:
    services = {
        action.split(":")[0] for statement in _statements(synth, spec) for action in _listed(statement["Action"])
    }
    _, function = synth.function(spec)

    allowed = {"logs", "xray", "dynamodb", "secretsmanager"}
    if spec.uses_payload_bucket or spec.export_bucket or spec.documents_bucket:
        allowed.add("s3")
    if spec in (AGENTS_FUNCTION, *KNOWLEDGE_FUNCTIONS):  # reprocessing hands documents to the processor
        allowed.add("lambda")
    if spec.starts_workflows:
        allowed.add("states")
    if spec.vector_access:
        allowed.add("s3vectors")
    if spec.calls_models and synth.stack.config.bedrock_enabled:
        allowed.add("bedrock")
    if spec.secret_contexts or spec.unsealed_secret_contexts:
        allowed.add("kms")
    if spec.vector_access:
        allowed.add("s3vectors")
    if spec.queue_accesses:
        allowed.add("sqs")

    assert services <= allowed
    assert _grants(synth, spec, "logs") == {function["LoggingConfig"]["LogGroup"]["Ref"]: LOG_ACTIONS}
    assert _grants(synth, spec, "xray") == {"*": TRACE_ACTIONS}


@pytest.mark.parametrize("spec", CATALOG_FUNCTIONS, ids=_name)
def test_function_reaches_only_the_tables_its_spec_lists(synth: Synthesized, spec: FunctionSpec) -> None:
    grants = _grants(synth, spec, "dynamodb")
    writable = {synth.table_id(table) for table in spec.tables}
    readable = {synth.table_id(table) for table in spec.read_only_tables} - writable
    described = {synth.table_id(table) for table in spec.described_tables} - writable - readable

    assert set(grants) == writable | readable | described
    for table_id in writable:
        assert grants[table_id] >= WRITE_ACTIONS | READ_ACTIONS
    for table_id in readable:
        assert grants[table_id] >= READ_ACTIONS
        assert not grants[table_id] & WRITE_ACTIONS
    for table_id in described:
        assert grants[table_id] == {"dynamodb:DescribeTable"}
    # No request path scans a table (DESIGN), so no role may: a Scan added by mistake fails in AWS, not silently.
    assert all("dynamodb:Scan" not in actions for actions in grants.values())


@pytest.mark.parametrize("spec", [AUTHORIZER_FUNCTION, HEALTH_FUNCTION], ids=_name)
def test_authorizer_and_health_cannot_write_anything(synth: Synthesized, spec: FunctionSpec) -> None:
    actions = {action for statement in _statements(synth, spec) for action in _listed(statement["Action"])}

    assert not actions & (WRITE_ACTIONS | {"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret"})


@pytest.mark.parametrize("spec", CATALOG_FUNCTIONS, ids=_name)
def test_function_reads_the_signing_keys_only_if_its_spec_says_so(synth: Synthesized, spec: FunctionSpec) -> None:
    expected = {synth.signing_secret_id: SECRET_READ_ACTIONS} if spec.reads_signing_keys else {}
    if spec.describes_signing_keys:  # readiness: that the secret exists, never its keys
        expected[synth.signing_secret_id] = {"secretsmanager:DescribeSecret"}
    if spec.calls_models:  # only the functions that call providers (chat, embeddings) read their keys
        expected[synth.provider_keys_secret_id] = SECRET_READ_ACTIONS

    assert _grants(synth, spec, "secretsmanager") == expected


def test_key_initializer_may_only_read_and_put_the_signing_secret(synth: Synthesized) -> None:
    services = {
        action.split(":")[0]
        for statement in _statements(synth, SIGNING_KEYS_FUNCTION)
        for action in _listed(statement["Action"])
    }

    assert services == {"logs", "xray", "secretsmanager"}
    assert _grants(synth, SIGNING_KEYS_FUNCTION, "secretsmanager") == {
        synth.signing_secret_id: {"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"}
    }


@pytest.mark.parametrize("spec", CATALOG_FUNCTIONS, ids=_name)
def test_payload_objects_are_reached_only_under_their_prefix_by_functions_that_store_them(
    synth: Synthesized, spec: FunctionSpec
) -> None:
    s3_statements = [
        statement
        for statement in _statements(synth, spec)
        if any(action.startswith("s3:") for action in _listed(statement["Action"]))
        and _target(statement["Resource"]) == synth.payload_bucket_id
    ]
    if not spec.uses_payload_bucket:
        assert s3_statements == []
        return
    objects, listing = sorted(s3_statements, key=lambda statement: "Condition" in statement)
    assert sorted(_listed(objects["Action"])) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert objects["Resource"]["Fn::Join"][1][-1] == "/conversations/*"
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["conversations/*"]}}


def test_payload_bucket_is_private_encrypted_and_tls_only(synth: Synthesized) -> None:
    bucket = synth.resources[synth.payload_bucket_id]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    (policy,) = (
        policy
        for policy in synth.of_type("AWS::S3::BucketPolicy").values()
        if policy["Properties"]["Bucket"] == {"Ref": synth.payload_bucket_id}
    )
    denials = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denials)


@pytest.mark.parametrize("spec", STREAMING_FUNCTIONS, ids=_name)
def test_streaming_function_answers_through_a_response_streaming_function_url(
    synth: Synthesized, spec: FunctionSpec
) -> None:
    function_id, function = synth.function(spec)
    (url,) = (
        resource["Properties"]
        for resource in synth.of_type("AWS::Lambda::Url").values()
        if resource["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    )
    assert url["InvokeMode"] == "RESPONSE_STREAM"
    # No IAM auth on the URL: the app verifies every request's bearer credential with the shared verification.
    assert url["AuthType"] == "NONE"
    adapter = [layer for layer in function["Layers"] if "LambdaAdapterLayerArm64" in str(layer)]
    assert len(adapter) == 1
    assert len(function["Layers"]) == 4  # base, ai, mcp-servers and the adapter


def test_only_a_stage_that_enables_bedrock_lets_chat_invoke_it(dev: Synthesized, acme: Synthesized) -> None:
    (chat,) = STREAMING_FUNCTIONS
    assert "bedrock" not in {action.split(":")[0] for s in _statements(dev, chat) for action in _listed(s["Action"])}
    bedrock = [s for s in _statements(acme, chat) if any(a.startswith("bedrock:") for a in _listed(s["Action"]))]
    assert [_listed(statement["Action"]) for statement in bedrock] == [["bedrock:InvokeModelWithResponseStream"]]
    _, function = acme.function(chat)
    assert function["Environment"]["Variables"]["BEDROCK_ENABLED"] == "true"


@pytest.mark.parametrize("spec", [*CATALOG_FUNCTIONS, *WEBSOCKET_FUNCTIONS], ids=_name)
def test_functions_that_accept_a_principal_read_only_the_revocations_and_what_an_api_key_resolves_through(
    dev: Synthesized, spec: FunctionSpec
) -> None:
    narrowed = [
        statement
        for statement in _statements(dev, spec)
        if "Condition" in statement and any(a.startswith("dynamodb:") for a in _listed(statement["Action"]))
    ]
    # A spec's partition grants are narrowed too; they are asserted where they are given (test_audit_infra).
    narrowed = [statement for statement in narrowed if statement not in _partition_grant_statements(dev, spec)]
    _, function = dev.function(spec)
    if not spec.checks_revocations:
        assert narrowed == []
        return
    identity = {"Fn::GetAtt": [dev.table_id(IDENTITY), "Arn"]}
    assert sorted(narrowed, key=lambda statement: str(statement["Action"])) == [
        {
            "Action": "dynamodb:GetItem",
            "Effect": "Allow",
            "Resource": identity,
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(API_KEY_RESOLUTION_PARTITIONS)},
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(API_KEY_RESOLUTION_ATTRIBUTES)},
                "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
            },
        },
        {
            "Action": "dynamodb:Query",
            "Effect": "Allow",
            "Resource": identity,
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["REVOCATIONS"]}},
        },
    ]
    # Never the attributes that hold secrets, whatever the item.
    assert not {"passwordHash", "currentJti"} & set(API_KEY_RESOLUTION_ATTRIBUTES)
    assert function["Environment"]["Variables"][IDENTITY.env_var] == {"Ref": dev.table_id(IDENTITY)}


@pytest.mark.parametrize("spec", [*CATALOG_FUNCTIONS, *WEBSOCKET_FUNCTIONS], ids=_name)
def test_the_secrets_key_is_used_only_for_the_contexts_a_function_seals_or_unseals(
    synth: Synthesized, spec: FunctionSpec
) -> None:
    kms_statements = [
        statement
        for statement in _statements(synth, spec)
        if any(action.startswith("kms:") for action in _listed(statement["Action"]))
    ]
    granted = {
        (tuple(sorted(_listed(statement["Action"]))), _target(statement["Resource"]),
         tuple(statement["Condition"]["StringEquals"]["kms:EncryptionContext:context"]))
        for statement in kms_statements
    }  # fmt: skip
    expected = set()
    if spec.secret_contexts:
        expected.add((("kms:Decrypt", "kms:Encrypt"), synth.secrets_key_id, tuple(sorted(spec.secret_contexts))))
    unsealed_only = tuple(sorted(set(spec.unsealed_secret_contexts) - set(spec.secret_contexts)))
    if unsealed_only:
        expected.add((("kms:Decrypt",), synth.secrets_key_id, unsealed_only))
    assert granted == expected
    assert all(set(statement["Condition"]) == {"StringEquals"} for statement in kms_statements)


def test_mcp_seals_its_secrets_and_chat_only_unseals_them(synth: Synthesized) -> None:
    assert MCP_FUNCTION.secret_contexts == ("mcp",)
    for spec in (CHAT_FUNCTION, WEBSOCKET_WORKER_FUNCTION):
        assert spec.unsealed_secret_contexts == ("mcp",)
        assert spec.secret_contexts == ()
        decrypt_only = [
            statement for statement in _statements(synth, spec) if "kms:Decrypt" in _listed(statement["Action"])
        ]
        assert [_listed(statement["Action"]) for statement in decrypt_only] == [["kms:Decrypt"]]


def test_the_secrets_key_rotates_and_is_kept_like_the_tables(dev: Synthesized, acme: Synthesized) -> None:
    for synth, kept in ((dev, False), (acme, True)):
        key = synth.resources[synth.secrets_key_id]
        assert key["Properties"]["EnableKeyRotation"] is True
        assert (key.get("DeletionPolicy") == "Retain") is kept
