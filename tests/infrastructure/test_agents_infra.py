"""Agents' resources: the documents bucket (private, TLS only, browser PUTs from the stage's origins, retained
outside dev stages), its ObjectCreated notification on `documents/` to the processor, and grants on that prefix
alone: the agents function presigns, checks and deletes; the processor reads (and removes late uploads)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.catalog import AGENTS_FUNCTION, AGENTS_PROCESSOR_FUNCTION, WEBSOCKET_FUNCTIONS, FunctionSpec
from tests.infrastructure.conftest import ACME_ORIGINS, Synthesized
from tests.infrastructure.test_permissions import CATALOG_FUNCTIONS, _listed, _statements, _target

EVERY_FUNCTION = (*CATALOG_FUNCTIONS, *WEBSOCKET_FUNCTIONS)

pytestmark = pytest.mark.infra


def _documents_statements(synth: Synthesized, spec: FunctionSpec) -> list[dict[str, Any]]:
    return [
        statement
        for statement in _statements(synth, spec)
        if any(action.startswith("s3:") for action in _listed(statement["Action"]))
        and _target(statement["Resource"]) == synth.documents_bucket_id
    ]


def test_the_documents_bucket_is_private_tls_only_and_takes_browser_puts_from_the_stages_origins(
    dev: Synthesized, acme: Synthesized
) -> None:
    for synth, origins in ((dev, ["*"]), (acme, ACME_ORIGINS.split(","))):
        bucket = synth.resources[synth.documents_bucket_id]
        properties = bucket["Properties"]
        assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
        assert "BucketEncryption" in properties
        (rule,) = properties["CorsConfiguration"]["CorsRules"]
        assert rule["AllowedMethods"] == ["PUT"]
        assert rule["AllowedOrigins"] == origins
        assert rule["AllowedHeaders"] == ["content-type"]
        (policy,) = (
            policy
            for policy in synth.of_type("AWS::S3::BucketPolicy").values()
            if policy["Properties"]["Bucket"] == {"Ref": synth.documents_bucket_id}
        )
        denials = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denials)
    assert dev.resources[dev.documents_bucket_id]["DeletionPolicy"] == "Delete"
    assert acme.resources[acme.documents_bucket_id]["DeletionPolicy"] == "Retain"


def test_an_object_created_under_documents_invokes_the_processor(synth: Synthesized) -> None:
    processor_id, _ = synth.function(AGENTS_PROCESSOR_FUNCTION)
    ((_, notifications),) = synth.of_type("Custom::S3BucketNotifications").items()
    properties = notifications["Properties"]
    assert properties["BucketName"] == {"Ref": synth.documents_bucket_id}
    (configuration,) = properties["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    assert configuration["Events"] == ["s3:ObjectCreated:*"]
    assert configuration["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": "documents/"}]}}
    assert configuration["LambdaFunctionArn"] == {"Fn::GetAtt": [processor_id, "Arn"]}
    (permission,) = (
        permission["Properties"]
        for permission in synth.of_type("AWS::Lambda::Permission").values()
        if permission["Properties"]["Principal"] == "s3.amazonaws.com"
    )
    assert permission["FunctionName"] == {"Fn::GetAtt": [processor_id, "Arn"]}
    assert permission["SourceArn"] == {"Fn::GetAtt": [synth.documents_bucket_id, "Arn"]}


def test_documents_are_reached_only_under_their_prefix_and_only_by_the_agents_functions(synth: Synthesized) -> None:
    expected = {
        AGENTS_FUNCTION.name: {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"},
        AGENTS_PROCESSOR_FUNCTION.name: {"s3:GetObject", "s3:DeleteObject"},
    }
    for spec in EVERY_FUNCTION:
        statements = _documents_statements(synth, spec)
        if spec.name not in expected:
            assert statements == [], spec.name
            continue
        objects = [statement for statement in statements if "Condition" not in statement]
        listing = [statement for statement in statements if "Condition" in statement]
        assert {action for statement in objects for action in _listed(statement["Action"])} == expected[spec.name]
        assert all(statement["Resource"]["Fn::Join"][1][-1] == "/documents/*" for statement in objects)
        if "list" in spec.documents_bucket:
            (listed,) = listing
            assert listed["Action"] == "s3:ListBucket"
            assert listed["Condition"] == {"StringLike": {"s3:prefix": ["documents/*"]}}
        else:
            assert listing == []


def test_the_processor_is_invoked_by_the_agents_function_and_itself_and_by_no_other(synth: Synthesized) -> None:
    processor_id, processor = synth.function(AGENTS_PROCESSOR_FUNCTION)
    _, agents = synth.function(AGENTS_FUNCTION)
    invokers = set()
    for spec in EVERY_FUNCTION:
        for statement in _statements(synth, spec):
            if "lambda:InvokeFunction" in _listed(statement["Action"]) and any(
                _target(resource) == processor_id for resource in _listed(statement["Resource"])
            ):
                invokers.add(spec.name)
    assert invokers == {AGENTS_FUNCTION.name, AGENTS_PROCESSOR_FUNCTION.name}
    assert agents["Environment"]["Variables"]["PROCESSOR_FUNCTION"] == {"Ref": processor_id}
    assert (processor["MemorySize"], processor["Timeout"]) == (2048, 300)
