"""The stack is composed of one construct per concern, and composing it so changes nothing a deployed stage holds:
the resources are those the catalogs account for, and the stateful ones keep the logical IDs they deployed with."""

from __future__ import annotations

from collections import Counter

import pytest

from infra.catalog import (
    AUTHORIZER_FUNCTION,
    HTTP_FUNCTIONS,
    JOB_TASK_FUNCTIONS,
    KNOWLEDGE_FUNCTIONS,
    QUEUE_FUNCTIONS,
    QUEUES,
    STREAMING_FUNCTIONS,
    WEBSOCKET_ACTIONS,
    WEBSOCKET_FUNCTIONS,
    WORKFLOWS,
    all_routes,
)
from infra.stage import StageConstruct
from shared.tables import TABLES
from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infra

# The logical IDs deployed stages hold. CloudFormation replaces a resource whose logical ID changes: a table or
# bucket would be emptied, a secret's key ring lost (signing everyone out), an API's URL changed under its clients.
DEPLOYED_LOGICAL_IDS = {
    "AWS::DynamoDB::Table": {
        "ChatTable7A2D1C24",
        "ConversationsTableCD91EB96",
        "IdentityTableA085AC59",
        "MemoriesTableD97C7518",
        "McpTableD14CBD3C",
        "RealtimeTable73AED3EE",
    },
    # Replacing the key would leave every sealed secret unreadable.
    "AWS::KMS::Key": {"SecretsKey317DCF94"},
    "AWS::S3::Bucket": {"PayloadBucket357F5869"},
    "AWS::SecretsManager::Secret": {"ProviderKeys2563E0B5", "SigningKeysA56F0358"},
    "AWS::ApiGatewayV2::Api": {"HttpApiF5A9A8A7", "WebSocketApi34BCF99B"},
    "AWS::ApiGatewayV2::Stage": {"HttpApiDefaultStage439BF176", "WebSocketStageC46B7E43"},
    "AWS::Lambda::Url": {"ChatFunctionFunctionUrl85FDC611"},
    "Custom::SigningKeys": {"SigningKeysInitialKey"},
}
# Resources CDK adds alongside the ones counted below: a policy per role, invoke permissions per route and
# authorizer, the bucket's TLS-only policy.
DERIVED_TYPES = {
    "AWS::IAM::Policy", "AWS::Lambda::Permission", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy",
}  # fmt: skip


def _expected_counts(synth: Synthesized) -> dict[str, int]:
    catalog_functions = (
        *HTTP_FUNCTIONS,
        AUTHORIZER_FUNCTION,
        *STREAMING_FUNCTIONS,
        *WEBSOCKET_FUNCTIONS,
        *JOB_TASK_FUNCTIONS,
        *KNOWLEDGE_FUNCTIONS,
        *QUEUE_FUNCTIONS,
    )
    # Plus the signing-key initializer and the custom resource framework that calls it.
    functions = len(catalog_functions) + 2
    # CDK's own function that puts the documents bucket's notification configuration (it has no log group of
    # ours) and its custom resource.
    notifications_handler = 1
    websocket_routes = len(("$connect", "$disconnect", "$default")) + len(WEBSOCKET_ACTIONS)
    workflows = len(WORKFLOWS)
    return {
        "AWS::Lambda::Function": functions + notifications_handler,
        # Each workflow's own role, and the schedule's that starts archiving.
        "AWS::IAM::Role": functions + notifications_handler + workflows + 1,
        # And each API's access logs, each workflow's execution logs.
        "AWS::Logs::LogGroup": functions + 2 + workflows,
        "AWS::Lambda::LayerVersion": len(synth.stack.functions.layers),
        "AWS::Lambda::Url": len(STREAMING_FUNCTIONS),
        "AWS::Lambda::EventInvokeConfig": 1,  # the realtime worker is never retried
        "AWS::DynamoDB::Table": len(TABLES),
        "AWS::S3::Bucket": 3,  # payloads, the jobs' exports and uploads, agents' documents
        "Custom::S3BucketNotifications": 1,  # documents/ to the document processor
        "AWS::S3Vectors::VectorBucket": 1,  # agents' chunks, an index per agent
        "AWS::StepFunctions::StateMachine": workflows,
        "AWS::Events::Rule": 1,  # archiving, daily
        "AWS::SecretsManager::Secret": 2,
        "AWS::KMS::Key": 1,  # seals the secrets stored in tables, with its alias
        "AWS::KMS::Alias": 1,
        "Custom::SigningKeys": 1,
        "AWS::ApiGatewayV2::Api": 2,
        "AWS::ApiGatewayV2::Stage": 2,
        "AWS::ApiGatewayV2::Authorizer": 2,
        "AWS::ApiGatewayV2::Integration": len(HTTP_FUNCTIONS) + 1,  # one per HTTP function, one for realtime
        "AWS::ApiGatewayV2::Route": len(all_routes()) + websocket_routes,
        # Each catalog queue and its dead-letter queue; an event source per consuming function.
        "AWS::SQS::Queue": 2 * len(QUEUES),
        "AWS::Lambda::EventSourceMapping": sum(
            access.action == "consume" for spec in QUEUE_FUNCTIONS for access in spec.queues
        ),
    }


def test_every_resource_is_one_the_catalogs_account_for(synth: Synthesized) -> None:
    counts = Counter(resource["Type"] for resource in synth.resources.values())

    assert {kind: count for kind, count in counts.items() if kind not in DERIVED_TYPES} == _expected_counts(synth)


@pytest.mark.parametrize("resource_type", sorted(DEPLOYED_LOGICAL_IDS))
def test_stateful_resources_keep_the_logical_ids_they_were_deployed_with(
    synth: Synthesized, resource_type: str
) -> None:
    assert DEPLOYED_LOGICAL_IDS[resource_type] <= set(synth.of_type(resource_type))


def test_concern_constructs_put_their_resources_in_the_stack_scope(synth: Synthesized) -> None:
    """What keeps the IDs above: a resource under a construct would take the construct's id into its own."""
    concerns = [child for child in synth.stack.node.children if isinstance(child, StageConstruct)]

    assert sorted(concern.node.id for concern in concerns) == [
        "Functions",
        "Http",
        "Jobs",
        "Knowledge",
        "QueueWorkers",
        "Storage",
        "Streaming",
        "WebSocket",
    ]
    assert {concern.node.id: concern.node.children for concern in concerns} == {
        concern.node.id: [] for concern in concerns
    }
