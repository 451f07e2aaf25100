"""The jobs workflows in AWS: the export bucket, one state machine per workflow that may invoke exactly its task
functions, the daily archiving schedule, and who may start which workflow."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from functions.jobs.contexts import job_contexts
from infra.catalog import (
    HTTP_FUNCTIONS,
    JOB_CONTEXTS,
    JOB_IMPORT_FUNCTION,
    JOB_STEPS_FUNCTION,
    JOB_TASK_FUNCTIONS,
    WORKFLOWS,
    FunctionSpec,
    Workflow,
    job_task_function,
)
from infra.storage import EXPORT_RETENTION_DAYS
from tests.infrastructure.conftest import ACME_ORIGINS, Synthesized
from tests.infrastructure.test_permissions import _listed, _statements, _target

pytestmark = pytest.mark.infra

_SUBSTITUTION = re.compile(r"\$\{(\w+)\}")


def _name(spec: FunctionSpec) -> str:
    return spec.name


def _machine(synth: Synthesized, workflow: Workflow) -> dict[str, Any]:
    return synth.resources[synth.workflow_id(workflow)]["Properties"]  # type: ignore[no-any-return]


def _function_ids(synth: Synthesized, specs: tuple[FunctionSpec, ...] | list[FunctionSpec]) -> set[str]:
    return {synth.function(spec)[0] for spec in specs}


def _invoked_functions(synth: Synthesized, workflow: Workflow) -> set[str]:
    """The logical ids of the functions the workflow's definition names, through its substitutions."""
    machine = _machine(synth, workflow)
    substitutions = machine["DefinitionSubstitutions"]
    keys = set(_SUBSTITUTION.findall(machine["DefinitionString"]))
    assert keys == set(substitutions)  # every ${...} is substituted, and nothing else is
    return {substitutions[key]["Fn::GetAtt"][0] for key in keys}


def _expected_invoked(workflow: Workflow) -> list[FunctionSpec]:
    tasks = [job_task_function(context) for context in job_contexts(workflow)]
    if workflow == "import":
        tasks = [JOB_IMPORT_FUNCTION]
    return [*tasks, JOB_STEPS_FUNCTION]


def test_export_bucket_is_private_encrypted_tls_only_and_unversioned(synth: Synthesized) -> None:
    bucket = synth.resources[synth.export_bucket_id]["Properties"]

    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert "VersioningConfiguration" not in bucket
    (policy,) = (
        policy
        for policy in synth.of_type("AWS::S3::BucketPolicy").values()
        if policy["Properties"]["Bucket"] == {"Ref": synth.export_bucket_id}
    )
    denials = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert [s["Condition"] for s in denials] == [{"Bool": {"aws:SecureTransport": "false"}}]
    assert all(s["Principal"] == {"AWS": "*"} for s in denials)


def test_export_archives_and_import_uploads_expire_after_seven_days(synth: Synthesized) -> None:
    rules = synth.resources[synth.export_bucket_id]["Properties"]["LifecycleConfiguration"]["Rules"]

    assert EXPORT_RETENTION_DAYS == 7
    assert {rule["Prefix"]: rule["ExpirationInDays"] for rule in rules} == {"exports/": 7, "imports/": 7}
    assert all(rule["Status"] == "Enabled" for rule in rules)
    # An upload abandoned half-way leaves no parts to pay for either.
    assert all(rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1} for rule in rules)


def test_browsers_may_put_and_get_presigned_urls_from_the_stages_origins_only(
    dev: Synthesized, acme: Synthesized
) -> None:
    for synth, origins in ((dev, ["*"]), (acme, ACME_ORIGINS.split(","))):
        (rule,) = synth.resources[synth.export_bucket_id]["Properties"]["CorsConfiguration"]["CorsRules"]
        assert sorted(rule["AllowedMethods"]) == ["GET", "PUT"]
        assert rule["AllowedOrigins"] == origins


def test_one_state_machine_per_workflow_logs_every_event_without_data_and_traces(synth: Synthesized) -> None:
    machines = synth.of_type("AWS::StepFunctions::StateMachine")

    assert len(machines) == len(WORKFLOWS)
    for workflow in WORKFLOWS:
        machine = _machine(synth, workflow)
        logging = machine["LoggingConfiguration"]
        assert logging["Level"] == "ALL"
        assert logging["IncludeExecutionData"] is False
        (destination,) = logging["Destinations"]
        log_group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        assert synth.resources[log_group_id]["Type"] == "AWS::Logs::LogGroup"
        assert machine["TracingConfiguration"] == {"Enabled": True}


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_workflow_invokes_exactly_the_task_functions_of_its_contexts(synth: Synthesized, workflow: Workflow) -> None:
    assert _invoked_functions(synth, workflow) == _function_ids(synth, _expected_invoked(workflow))


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_workflow_role_may_invoke_only_the_functions_its_definition_names(
    synth: Synthesized, workflow: Workflow
) -> None:
    role_id = _machine(synth, workflow)["RoleArn"]["Fn::GetAtt"][0]
    role = synth.resources[role_id]["Properties"]
    statements = [
        statement
        for policy in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    invoking = [s for s in statements if "lambda:InvokeFunction" in _listed(s["Action"])]

    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}
    assert "ManagedPolicyArns" not in role
    (invoke,) = invoking
    assert _listed(invoke["Action"]) == ["lambda:InvokeFunction"]
    # Exactly the functions' ARNs: no version wildcard, no other function.
    assert {resource["Fn::GetAtt"][0] for resource in invoke["Resource"]} == _invoked_functions(synth, workflow)
    services = {action.split(":")[0] for s in statements for action in _listed(s["Action"])}
    assert services == {"lambda", "logs", "xray"}  # log delivery and traces, on "*" (acknowledged for cdk-nag)


def test_archiving_runs_daily_from_the_schedule_with_an_empty_input(synth: Synthesized) -> None:
    (rule,) = synth.of_type("AWS::Events::Rule").values()
    (target,) = rule["Properties"]["Targets"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = (
        policy
        for policy in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
    )

    assert rule["Properties"]["ScheduleExpression"] == "cron(15 3 * * ? *)"
    assert rule["Properties"]["State"] == "ENABLED"
    assert target["Arn"] == {"Ref": synth.workflow_id("archive")}
    assert json.loads(target["Input"]) == {}
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": synth.workflow_id("archive")}}
    ]


@pytest.mark.parametrize("spec", [*HTTP_FUNCTIONS, *JOB_TASK_FUNCTIONS], ids=_name)
def test_only_the_functions_that_start_workflows_may_start_exactly_those(
    synth: Synthesized, spec: FunctionSpec
) -> None:
    starting = [s for s in _statements(synth, spec) if any(a.startswith("states:") for a in _listed(s["Action"]))]

    assert {
        (action, _target(resource))
        for statement in starting
        for action in _listed(statement["Action"])
        for resource in _listed(statement["Resource"])
    } == {("states:StartExecution", synth.workflow_id(workflow)) for workflow in spec.starts_workflows}


def test_the_jobs_function_starts_every_workflow_and_identity_only_the_deletion() -> None:
    starts = {spec.name: set(spec.starts_workflows) for spec in HTTP_FUNCTIONS if spec.starts_workflows}

    assert starts == {"jobs": set(WORKFLOWS), "identity": {"deletion"}}


@pytest.mark.parametrize("spec", [*HTTP_FUNCTIONS, *JOB_TASK_FUNCTIONS], ids=_name)
def test_export_bucket_is_reached_only_under_the_prefixes_and_with_the_actions_the_spec_lists(
    synth: Synthesized, spec: FunctionSpec
) -> None:
    granted: set[tuple[str, str]] = set()
    for statement in _statements(synth, spec):
        if "Condition" in statement:  # listing, narrowed to a prefix
            if _target(statement["Resource"]) == synth.export_bucket_id:
                (prefix,) = statement["Condition"]["StringLike"]["s3:prefix"]
                granted.add(("s3:ListBucket", prefix))
            continue
        for resource in _listed(statement["Resource"]):
            if _target(resource) == synth.export_bucket_id:
                granted |= {(action, resource["Fn::Join"][1][-1]) for action in _listed(statement["Action"])}

    expected = set()
    actions = {
        "read": ["s3:GetObject"],
        "write": ["s3:PutObject", "s3:AbortMultipartUpload"],
        "delete": ["s3:DeleteObject"],
    }
    for access in spec.export_bucket:
        for name in access.actions:
            expected |= {(action, f"/{access.prefix}*") for action in actions.get(name, [])}
        if "list" in access.actions:
            expected.add(("s3:ListBucket", f"{access.prefix}*"))
    assert granted == expected


def test_task_functions_write_archive_parts_and_only_the_jobs_context_deletes_job_files() -> None:
    by_context = {context.name: job_task_function(context) for context in JOB_CONTEXTS}

    for name, spec in by_context.items():
        prefixes = {access.prefix: access.actions for access in spec.export_bucket}
        if name == "jobs":
            assert prefixes == {"exports/": {"delete", "list"}, "imports/": {"delete", "list"}}
        elif "export" in next(c for c in JOB_CONTEXTS if c.name == name).workflows:
            assert prefixes == {"exports/": {"write"}}
        else:
            assert prefixes == {}
    assert {access.prefix: access.actions for access in JOB_IMPORT_FUNCTION.export_bucket} == {"imports/": {"read"}}


@pytest.mark.parametrize("context", JOB_CONTEXTS, ids=lambda context: context.name)
def test_each_context_task_runs_as_its_context_with_exactly_its_tables(synth: Synthesized, context: Any) -> None:
    spec = job_task_function(context)
    _, function = synth.function(spec)

    assert function["Handler"] == "functions.jobs.tasks.context_task"
    assert function["Environment"]["Variables"]["JOB_CONTEXT"] == context.name
    assert spec.tables == context.tables
    assert spec.uses_payload_bucket == context.uses_payload_bucket
    assert function["Timeout"] == 300


def test_the_import_task_may_write_exactly_the_tables_of_the_contexts_that_import() -> None:
    importing = [context for context in JOB_CONTEXTS if context.imports]

    assert {table.context for table in JOB_IMPORT_FUNCTION.tables} == {
        table.context for context in importing for table in context.tables
    }
    assert JOB_IMPORT_FUNCTION.uses_payload_bucket  # conversations keeps large bodies there
