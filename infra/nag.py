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
