"""cdk-nag acknowledgements, each with the reason an auditor reads, matched to the stage as it synthesizes.

A wildcard resource is acknowledged by the very value its policy statement grants, rendered the way cdk-nag
renders it: a stage in a known account and region gets ARNs holding them, not `<AWS::Region>` tokens, and its
acknowledgement follows without anyone writing either form by hand.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Accept a cdk-nag finding on `scope` and everything under it."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_wildcard_resource(scope: IConstruct, resource: str, reason: str) -> None:
    """Accept AwsSolutions-IAM5 for `resource` (the ARN, tokens and all, that a statement on `scope` grants)."""
    rendered = nag_resource(Stack.of(scope).resolve(resource))
    acknowledge(scope, f"AwsSolutions-IAM5[Resource::{rendered}]", reason)


def nag_resource(resolved: Any) -> str:
    """A resolved CloudFormation value as cdk-nag names it in a finding: `Ref` as `<Id>`, `Fn::GetAtt` as
    `<Id.Attribute>`, `Fn::Join` joined (cdk-nag's `flattenCfnReference`)."""
    match resolved:
        case str():
            rendered = resolved.replace("${", "<").replace("}", ">")
        case {"Fn::Join": [str() as delimiter, list() as parts]}:
            rendered = delimiter.join(nag_resource(part) for part in parts)
        case {"Fn::GetAtt": [logical_id, attribute]}:
            rendered = f"<{nag_resource(logical_id)}.{nag_resource(attribute)}>"
        case {"Ref": reference}:
            rendered = f"<{nag_resource(reference)}>"
        case {"Fn::Sub": value} | {"Fn::ImportValue": value}:
            rendered = nag_resource(value)
        case _:
            rendered = json.dumps(resolved, separators=(",", ":"))
    return rendered


# CDK's singleton function that puts buckets' notification configurations (Custom::S3BucketNotifications).
BUCKET_NOTIFICATIONS_HANDLER = "BucketNotificationsHandler"


def acknowledge_bucket_notifications_handler(stack: Stack) -> None:
    """Accept the findings on CDK's bucket notifications handler, whose role and runtime CDK writes."""
    for child in stack.node.children:
        if not child.node.id.startswith(BUCKET_NOTIFICATIONS_HANDLER):
            continue
        acknowledge(
            child,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's bucket notifications handler writes its logs under AWSLambdaBasicExecutionRole; it runs only at "
            "deployment, to put the documents bucket's notification configuration.",
        )
        acknowledge(
            child,
            "AwsSolutions-IAM5",
            "CDK's bucket notifications handler may put the notification configuration of any bucket (s3:"
            "PutBucketNotification on *, as CDK writes it); it runs only at deployment.",
        )
        acknowledge(
            child,
            "AwsSolutions-L1",
            "CDK's bucket notifications handler pins its own runtime; it runs only at deployment.",
        )
