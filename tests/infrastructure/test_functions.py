"""Lambda functions: one per catalog spec, configured as the catalog and DESIGN say, shipping only our code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from functions.jobs.contexts import workflow_env_var
from infra.catalog import (
    AGENTS_FUNCTION,
    AGENTS_PROCESSOR_FUNCTION,
    AUTHORIZER_FUNCTION,
    HTTP_FUNCTIONS,
    JOB_TASK_FUNCTIONS,
    KNOWLEDGE_FUNCTIONS,
    STREAMING_FUNCTIONS,
    WEBSOCKET_FUNCTIONS,
    FunctionSpec,
)
from infra.functions import SIGNING_KEYS_FUNCTION
from shared.settings import settings_from_environ
from shared.tables import IDENTITY
from tests.infrastructure.conftest import ACME_ORIGINS, Synthesized

pytestmark = pytest.mark.infra

CATALOG_FUNCTIONS = (
    *HTTP_FUNCTIONS, AUTHORIZER_FUNCTION, *STREAMING_FUNCTIONS, *JOB_TASK_FUNCTIONS, *KNOWLEDGE_FUNCTIONS,
)  # fmt: skip
OUR_FUNCTIONS = (*CATALOG_FUNCTIONS, SIGNING_KEYS_FUNCTION)


def _name(spec: FunctionSpec) -> str:
    return spec.name


def _expected_environment(synth: Synthesized, spec: FunctionSpec) -> dict[str, Any]:
    dev = synth.stage == "dev"
    environment: dict[str, Any] = {
        "STAGE": synth.stage,
        "POWERTOOLS_SERVICE_NAME": spec.name,
        "POWERTOOLS_METRICS_NAMESPACE": "Stratus",
        "CORS_ALLOW_ORIGINS": "*" if dev else ACME_ORIGINS,
        # The tenant fixture archives after 30 days; dev keeps the default.
        "ARCHIVE_CONVERSATIONS_AFTER_DAYS": "90" if dev else "30",
    }
    for table in (*spec.tables, *spec.read_only_tables, *spec.described_tables):
        environment[table.env_var] = {"Ref": synth.table_id(table)}
    if spec.checks_revocations:  # the revocations are in the identity table
        environment[IDENTITY.env_var] = {"Ref": synth.table_id(IDENTITY)}
    if spec.reads_signing_keys or spec.describes_signing_keys:
        environment["SIGNING_KEYS_SECRET"] = {"Ref": synth.signing_secret_id}
    if spec.uses_payload_bucket:
        environment["PAYLOAD_BUCKET"] = {"Ref": synth.payload_bucket_id}
    if spec.secret_contexts or spec.unsealed_secret_contexts:
        environment["SECRETS_KEY_ID"] = {"Fn::GetAtt": [synth.secrets_key_id, "Arn"]}
    if spec.export_bucket:
        environment["EXPORT_BUCKET"] = {"Ref": synth.export_bucket_id}
    environment |= _knowledge_environment(synth, spec)
    for workflow in spec.starts_workflows:
        environment[workflow_env_var(workflow)] = {"Ref": synth.workflow_id(workflow)}
    environment |= dict(spec.environment)
    if spec.streaming:
        environment |= {
            "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
            "AWS_LWA_INVOKE_MODE": "response_stream",
            "AWS_LWA_PORT": "8080",
        }
    if spec.calls_models:
        environment["PROVIDER_KEYS_SECRET"] = {"Ref": synth.provider_keys_secret_id}
        if synth.stage == "acme":  # the tenant fixture enables Bedrock
            environment["BEDROCK_ENABLED"] = "true"
    if spec.enhances_text and synth.stage == "acme":  # and has a field type of its own (defaults left out)
        environment["ENHANCE_FIELD_TYPES"] = (
            '{"ticket_reply":{"label":"Ticket reply","contextKeys":["customerName"],'
            '"system":"You answer support tickets."}}'
        )
    environment |= _queues_and_public_url(synth, spec)
    if dev:
        environment["PASSWORD_HASH_COST"] = "14"
    return environment


def _knowledge_environment(synth: Synthesized, spec: FunctionSpec) -> dict[str, Any]:
    environment: dict[str, Any] = {}
    if spec.vector_access:
        environment["VECTOR_BUCKET"] = f"stratus-{synth.stage}-vectors"
    if spec.documents_bucket:
        environment["DOCUMENTS_BUCKET"] = {"Ref": synth.documents_bucket_id}
    if spec is AGENTS_FUNCTION:  # it hands documents to the processor
        environment["PROCESSOR_FUNCTION"] = {"Ref": synth.function(AGENTS_PROCESSOR_FUNCTION)[0]}
    return environment


def _queues_and_public_url(synth: Synthesized, spec: FunctionSpec) -> dict[str, Any]:
    environment: dict[str, Any] = {}
    for access in spec.queue_accesses:
        queue_id = next(
            resource_id
            for resource_id, queue in synth.of_type("AWS::SQS::Queue").items()
            if queue["Properties"]["QueueName"] == access.queue.physical_name(synth.stage)
        )
        environment[access.queue.env_var] = {"Ref": queue_id}
    if spec.names_public_url:
        environment["PUBLIC_API_URL"] = _HttpApiUrl()
    return environment


class _HttpApiUrl:
    """Equal to the HTTP API's default stage URL plus `api/v1`, as CloudFormation joins it."""

    def __eq__(self, value: object) -> bool:
        if not isinstance(value, dict) or "Fn::Join" not in value:
            return False
        parts = value["Fn::Join"][1]
        return str(parts[-1]).endswith("api/v1") and any("execute-api" in str(part) for part in parts)

    __hash__ = None  # type: ignore[assignment]


def _code_asset(synth: Synthesized) -> Path:
    _, function = synth.function(HTTP_FUNCTIONS[0])
    return synth.outdir / f"asset.{function['Code']['S3Key'].removesuffix('.zip')}"


@pytest.mark.parametrize("spec", OUR_FUNCTIONS, ids=_name)
def test_function_runs_its_handler_on_python312_arm64_as_sized_in_the_catalog(
    synth: Synthesized, spec: FunctionSpec
) -> None:
    _, function = synth.function(spec)

    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["arm64"]
    assert function["MemorySize"] == spec.memory_mb
    assert function["Timeout"] == spec.timeout_seconds


@pytest.mark.parametrize("spec", OUR_FUNCTIONS, ids=_name)
def test_function_traces_and_logs_json_to_its_own_log_group(synth: Synthesized, spec: FunctionSpec) -> None:
    _, function = synth.function(spec)
    log_group = synth.resources[function["LoggingConfig"]["LogGroup"]["Ref"]]

    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == (30 if synth.stage == "dev" else 365)


def test_tenant_logs_are_kept_for_a_year(acme: Synthesized) -> None:
    retention = {group["Properties"]["RetentionInDays"] for group in acme.of_type("AWS::Logs::LogGroup").values()}

    assert retention == {365}


@pytest.mark.parametrize("spec", CATALOG_FUNCTIONS, ids=_name)
def test_function_environment_names_its_stage_tables_and_secret(synth: Synthesized, spec: FunctionSpec) -> None:
    _, function = synth.function(spec)

    assert function["Environment"]["Variables"] == _expected_environment(synth, spec)


@pytest.mark.parametrize("spec", CATALOG_FUNCTIONS, ids=_name)
def test_function_environment_passes_the_settings_check_the_function_runs_at_cold_start(
    synth: Synthesized, spec: FunctionSpec
) -> None:
    _, function = synth.function(spec)
    # References (table names, the secret ARN) resolve at deploy time; any non-empty string stands in for them.
    environ = {
        name: value if isinstance(value, str) else "resolved-at-deploy"
        for name, value in function["Environment"]["Variables"].items()
    }

    settings = settings_from_environ(environ)

    assert settings.stage == synth.stage
    assert settings.is_dev_stage == (synth.stage == "dev")


def test_every_function_gets_the_base_layer_built_for_python312_on_arm64(synth: Synthesized) -> None:
    layers = synth.of_type("AWS::Lambda::LayerVersion")
    (base_id,) = (lid for lid, layer in layers.items() if "layers/base/" in layer["Properties"]["Description"])

    assert len(layers) == 3  # base, ai and mcp-servers, as conftest maps them
    for layer in layers.values():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    for spec in OUR_FUNCTIONS:
        assert {"Ref": base_id} in synth.function(spec)[1]["Layers"]


def test_the_functions_that_run_tools_get_the_stdio_servers_layer_and_no_others(synth: Synthesized) -> None:
    layers = synth.of_type("AWS::Lambda::LayerVersion")
    (servers_id,) = (lid for lid, layer in layers.items() if "mcp-servers" in layer["Properties"]["Description"])

    functions = (*OUR_FUNCTIONS, *WEBSOCKET_FUNCTIONS)
    with_servers = {spec.name for spec in functions if {"Ref": servers_id} in synth.function(spec)[1]["Layers"]}

    assert with_servers == {spec.name for spec in functions if "mcp-servers" in spec.layers}
    assert {"chat", "realtime-worker"} <= with_servers


def test_code_asset_ships_only_functions_and_shared(synth: Synthesized) -> None:
    asset = _code_asset(synth)
    shipped = list(asset.rglob("*"))

    assert sorted(path.name for path in asset.iterdir()) == ["functions", "shared"]
    assert not [path for path in shipped if path.name == "__pycache__" or path.suffix in {".pyc", ".md"}]
    assert (asset / "shared" / "settings.py").is_file()


def test_every_function_runs_from_the_one_code_asset_that_holds_its_handler(synth: Synthesized) -> None:
    asset = _code_asset(synth)

    for spec in OUR_FUNCTIONS:
        _, function = synth.function(spec)
        assert function["Code"]["S3Key"] == f"{asset.name.removeprefix('asset.')}.zip"
        if spec.streaming:  # the Web Adapter runs a script that starts the app's server
            script = asset / spec.handler
            assert script.is_file(), spec.handler
            assert os.access(script, os.X_OK), f"{spec.handler} must be executable"
            module = spec.app.split(":")[0] if spec.app else ""
        else:
            module, _ = spec.handler.rsplit(".", 1)
        assert (asset / (module.replace(".", "/") + ".py")).is_file(), spec.handler


def test_custom_resource_puts_the_first_key_into_the_stage_secret_before_functions_start(synth: Synthesized) -> None:
    ((resource_id, initial_key),) = synth.of_type("Custom::SigningKeys").items()
    secret = synth.resources[synth.signing_secret_id]["Properties"]

    assert secret["Name"] == f"stratus/{synth.stage}/signing-keys"
    assert initial_key["Properties"]["SecretId"] == {"Ref": synth.signing_secret_id}
    for spec in CATALOG_FUNCTIONS:
        if spec.reads_signing_keys:
            function_id, _ = synth.function(spec)
            assert resource_id in synth.resources[function_id]["DependsOn"], spec.name
