"""The synthesized stacks the infrastructure tests read: each stage is synthesized once per session.

A synth costs ~10 s and ~1 GB in the jsii node process, so there are two: `dev` (disposable data, wildcard
CORS) and `acme` (a tenant stage: retained data, named origins). Both use the real cdk.json feature flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from functions.jobs.contexts import Workflow
from infra.app import add_stage
from infra.catalog import FunctionSpec, pascal
from infra.stack import StratusStack
from shared.tables import TableSpec

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"
ACME_ORIGINS = "https://app.acme.example,https://admin.acme.example"
# The tenant's own text-enhancement field type, as `-c enhanceFieldTypes=...` gives it.
ACME_FIELD_TYPES = (
    '{"ticket_reply": {"label": "Ticket reply", "system": "You answer support tickets.",'
    ' "contextKeys": ["customerName"], "maxTokens": 1024}}'
)
# A tenant stage in a real account and region, as `cdk synth` resolves them: ARNs hold them, not their tokens.
ACME_ENVIRONMENT = {"CDK_DEFAULT_ACCOUNT": "123456789012", "CDK_DEFAULT_REGION": "eu-west-1"}

Resource = dict[str, Any]


@dataclass(frozen=True)
class Synthesized:
    stage: str
    stack: StratusStack
    template: Template
    outdir: Path

    @cached_property
    def resources(self) -> dict[str, Resource]:
        return self.template.to_json()["Resources"]  # type: ignore[no-any-return]

    def of_type(self, resource_type: str) -> dict[str, Resource]:
        return {lid: r for lid, r in self.resources.items() if r["Type"] == resource_type}

    def table_id(self, spec: TableSpec) -> str:
        (logical_id,) = (
            lid
            for lid, table in self.of_type("AWS::DynamoDB::Table").items()
            if table["Properties"]["TableName"] == spec.physical_name(self.stage)
        )
        return logical_id

    def function(self, spec: FunctionSpec) -> tuple[str, Resource]:
        """The one Lambda function that runs `spec`'s handler as `spec` (the jobs' context tasks share a handler):
        its logical id and properties."""
        (found,) = (
            (lid, function["Properties"])
            for lid, function in self.of_type("AWS::Lambda::Function").items()
            if function["Properties"].get("Handler") == spec.handler
            and function["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == spec.name
        )
        return found

    @property
    def payload_bucket_id(self) -> str:
        return self._bucket("PayloadBucket")

    @property
    def export_bucket_id(self) -> str:
        return self._bucket("ExportBucket")

    @property
    def documents_bucket_id(self) -> str:
        return self._bucket("DocumentsBucket")

    def _bucket(self, construct_id: str) -> str:
        (logical_id,) = (lid for lid in self.of_type("AWS::S3::Bucket") if lid.startswith(construct_id))
        return logical_id

    def workflow_id(self, workflow: Workflow) -> str:
        """The logical id of a jobs workflow's state machine."""
        (logical_id,) = (
            lid
            for lid in self.of_type("AWS::StepFunctions::StateMachine")
            if lid.startswith(f"{pascal(workflow)}Workflow")
        )
        return logical_id

    @property
    def secrets_key_id(self) -> str:
        (logical_id,) = self.of_type("AWS::KMS::Key")
        return logical_id

    @property
    def signing_secret_id(self) -> str:
        return self._secret_named("signing-keys")

    @property
    def provider_keys_secret_id(self) -> str:
        return self._secret_named("provider-keys")

    def _secret_named(self, suffix: str) -> str:
        (logical_id,) = (
            logical_id
            for logical_id, secret in self.of_type("AWS::SecretsManager::Secret").items()
            if secret["Properties"]["Name"].endswith(f"/{suffix}")
        )
        return logical_id


def _synthesize(root: Path, stage: str, environment: dict[str, str], **context: str) -> Synthesized:
    """Synthesize `stage` as `cdk synth` would, the CLI having resolved `environment` (CDK_DEFAULT_*)."""
    layers = {}
    for name in ("base", "ai", "mcp-servers"):
        layers[name] = root / "layers" / name / "build"
        (layers[name] / "python").mkdir(parents=True)
    outdir = root / "cdk.out"
    flags = json.loads(CDK_JSON.read_text())["context"]
    app = App(outdir=str(outdir), context={**flags, "stage": stage, **context})
    with pytest.MonkeyPatch.context() as patch:
        for name in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
            patch.delenv(name, raising=False)
        for name, value in environment.items():
            patch.setenv(name, value)
        stack = add_stage(app, stage, layers)
    return Synthesized(stage, stack, Template.from_stack(stack), outdir)


# Every stage-independent assertion runs on both: a dev stage with no environment (tokens in every ARN) and a
# tenant stage in a known account and region (literal values in its ARNs).
STAGES = ("dev", "acme")


@pytest.fixture(params=STAGES)
def synth(request: pytest.FixtureRequest) -> Synthesized:
    """Each stage in turn, synthesized once per session."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return _synthesize(tmp_path_factory.mktemp("dev"), "dev", {})


@pytest.fixture(scope="session")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return _synthesize(
        tmp_path_factory.mktemp("acme"),
        "acme",
        ACME_ENVIRONMENT,
        corsOrigins=ACME_ORIGINS,
        bedrock="true",
        archiveConversationsAfterDays="30",
        enhanceFieldTypes=ACME_FIELD_TYPES,
    )
