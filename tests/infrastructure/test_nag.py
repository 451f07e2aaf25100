"""cdk-nag's AWS Solutions rules find nothing the stack has not acknowledged with a reason.

cdk-nag 3 reports through CDK's policy validation (a failed `cdk synth`), not through annotations, so the tests
run the same pack the app registers directly on each synthesized stack.
"""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk.assertions import Annotations, Match
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from tests.infrastructure.conftest import Synthesized

pytestmark = pytest.mark.infra


def _findings(scope: IConstruct) -> list[str]:
    report = AwsSolutionsChecks(verbose=True).validate_scope(scope)
    return [
        f"{violation.rule_name} ({violation.severity}) at {resource.construct_path}: {violation.description}"
        for violation in report.violations
        for resource in violation.violating_resources
    ]


def test_aws_solutions_rules_find_nothing_unacknowledged(synth: Synthesized) -> None:
    findings = _findings(synth.stack)

    assert not findings, "\n".join(findings)


def test_synth_raises_no_cdk_errors_or_warnings(synth: Synthesized) -> None:
    annotations = Annotations.from_stack(synth.stack)
    problems = [
        f"{message.id}: {message.entry.data}"
        for message in (
            *annotations.find_error("*", Match.any_value()),
            *annotations.find_warning("*", Match.any_value()),
        )
    ]

    assert not problems, "\n".join(problems)


def test_the_rules_do_catch_a_table_without_point_in_time_recovery() -> None:
    """Guards the test above: an empty report must mean a clean stack, not a checker that checks nothing."""
    stack = Stack(App(), "Unsafe")
    dynamodb.Table(stack, "Table", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING))

    assert any(finding.startswith("AwsSolutions-DDB3") for finding in _findings(stack))
