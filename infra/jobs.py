"""The jobs workflows in AWS: their task functions, one state machine per workflow (the definitions of
`infra.workflows`, each function's ARN a DefinitionSubstitution) and the daily schedule that runs archiving.

Each state machine's role may invoke exactly the functions its definition names; the functions that start
workflows (the catalog's `starts_workflows`) are granted StartExecution on exactly those machines by `Functions`.
"""

from __future__ import annotations

import json

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.jobs.contexts import WORKFLOWS, Workflow
from infra.catalog import JOB_TASK_FUNCTIONS, pascal
from infra.functions import Functions
from infra.nag import acknowledge_wildcard_resource
from infra.observability import log_group
from infra.stage import StageConfig, StageConstruct
from infra.workflows import referenced_functions, workflow_definitions

# Archiving runs once a day, at a quiet hour (UTC).
ARCHIVE_SCHEDULE = events.Schedule.cron(minute="15", hour="3")


def substitution_key(function_name: str) -> str:
    """The DefinitionSubstitutions key of a task function's ARN (`jobs-steps` → `JobsStepsArn`)."""
    return f"{pascal(function_name)}Arn"


class Jobs(StageConstruct):
    """The task functions and the four workflows; registers the state machines with `functions` so the functions
    built after it (the jobs API, identity) can start them."""

    def __init__(self, scope: Construct, construct_id: str, config: StageConfig, functions: Functions) -> None:
        super().__init__(scope, construct_id, config)
        self.task_functions: dict[str, lambda_.Function] = {
            spec.name: functions.catalog_function(spec) for spec in JOB_TASK_FUNCTIONS
        }
        definitions = workflow_definitions({name: f"${{{substitution_key(name)}}}" for name in self.task_functions})
        self.state_machines: dict[Workflow, sfn.StateMachine] = {
            workflow: self._state_machine(workflow, definitions[workflow]) for workflow in WORKFLOWS
        }
        functions.workflows.update(self.state_machines)
        self.archive_schedule = events.Rule(
            self.stack,
            "ArchiveSchedule",
            description=f"Stratus {config.stage}: archives stale conversations and expired memories daily",
            schedule=ARCHIVE_SCHEDULE,
            targets=[
                targets.SfnStateMachine(self.state_machines["archive"], input=events.RuleTargetInput.from_object({}))
            ],
        )

    def _state_machine(self, workflow: Workflow, definition: dict[str, object]) -> sfn.StateMachine:
        construct_id = f"{pascal(workflow)}Workflow"
        invoked = {
            name: function
            for name, function in self.task_functions.items()
            if f"${{{substitution_key(name)}}}" in referenced_functions(definition)
        }
        role = iam.Role(
            self.stack,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"Stratus {self.config.stage} {workflow} workflow",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[function.function_arn for function in invoked.values()],
            )
        )
        machine = sfn.StateMachine(
            self.stack,
            construct_id,
            comment=f"Stratus {self.config.stage}: the {workflow} job",
            definition_body=sfn.DefinitionBody.from_string(json.dumps(definition)),
            definition_substitutions={
                substitution_key(name): function.function_arn for name, function in invoked.items()
            },
            role=role,
            # Every state's events, without their data: inputs and outputs hold user ids and cursors.
            logs=sfn.LogOptions(
                destination=log_group(self, f"{construct_id}Logs"),
                level=sfn.LogLevel.ALL,
                include_execution_data=False,
            ),
            tracing_enabled=True,
            removal_policy=self.config.removal_policy,
        )
        acknowledge_wildcard_resource(
            role,
            "*",
            "Step Functions' log delivery (logs:CreateLogDelivery and related) and X-Ray's PutTraceSegments support "
            "no resource-level permissions.",
        )
        return machine
