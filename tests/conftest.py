"""Test environment: a `test` stage on moto, cheap password hashing, no tracing, no real AWS credentials."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import pytest

from functions.jobs.contexts import WORKFLOWS, workflow_env_var
from infra.local.provision import queue_environment
from infra.local.stepfunctions import ACCOUNT_ID, state_machine_name
from shared.tables import TABLES
from tests.fakes.variables import LLM_VARIABLES

pytest_plugins = ["tests.fakes.fixtures"]

TEST_STAGE = "test"

os.environ.update(
    {
        "STAGE": TEST_STAGE,
        "LOCAL_MODE": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "Stratus",
        "PASSWORD_HASH_COST": "12",
        "SIGNING_KEYS_SECRET": f"stratus/{TEST_STAGE}/signing-keys",
        "PAYLOAD_BUCKET": f"stratus-{TEST_STAGE}-payloads",
        "SECRETS_KEY_ID": f"alias/stratus-{TEST_STAGE}-secrets",
        "CORS_ALLOW_ORIGINS": "https://app.example.com",
        # Every check reads the revocations recorded since the last one, so a test sees its own revocations at
        # once; tests of the refresh interval drive a view with a clock of their own.
        "REVOCATION_REFRESH_SECONDS": "0",
        # No `requests.counted` aggregate among the events a test publishes (the analytics tests turn it on).
        "REQUEST_COUNTS_SECONDS": "0",
    }
)
for _spec in TABLES:
    os.environ[_spec.env_var] = _spec.physical_name(TEST_STAGE)
os.environ["EXPORT_BUCKET"] = f"stratus-{TEST_STAGE}-exports"
os.environ["DOCUMENTS_BUCKET"] = f"stratus-{TEST_STAGE}-documents"
os.environ["PROCESSOR_FUNCTION"] = f"stratus-{TEST_STAGE}-agents-processor"
os.environ["VECTOR_BUCKET"] = f"stratus-{TEST_STAGE}-vectors"
for _workflow in WORKFLOWS:
    # The ARN moto gives the workflow's state machine (infra.local.stepfunctions).
    os.environ[workflow_env_var(_workflow)] = (
        f"arn:aws:states:us-east-1:{ACCOUNT_ID}:stateMachine:{state_machine_name(TEST_STAGE, _workflow)}"
    )
# The channels' queue (its URL as moto names it) and platforms: nothing listens on the discard port, so a test that
# forgot its fake platform fails instead of calling Meta or Telegram.
os.environ.update(queue_environment(TEST_STAGE, "us-east-1"))
os.environ["GRAPH_API_BASE_URL"] = "http://127.0.0.1:9/graph"
os.environ["TELEGRAM_API_BASE_URL"] = "http://127.0.0.1:9/telegram"
# Never let a test reach a real endpoint, a developer's profile or their model provider keys (a real, paid call).
for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", *LLM_VARIABLES):
    os.environ.pop(_name, None)


class ScanOnRequestPathError(AssertionError):
    """DESIGN: no request path scans a table; listing is one Query per page."""


@pytest.fixture
def aws() -> Iterator[None]:
    """Fresh moto AWS provisioned as a deployed stage is, with every DynamoDB Scan turned into a failure. Step
    Functions executions really run, their Lambda tasks in this process (the catalog's task handlers); the
    documents bucket's notifications and asynchronous invocations of the processor run it on a thread, as in AWS."""
    from botocore.client import BaseClient
    from moto import mock_aws

    from functions.channels.service import forget_trusted_channels
    from functions.chat.limits import forget_stage_spend
    from functions.chat.tools import forget_enabled_servers
    from infra.catalog import AGENTS_PROCESSOR_FUNCTION
    from infra.local.moto_patches import patch_moto
    from infra.local.provision import provision_stage
    from infra.local.s3events import (
        deliver_s3_notifications,
        route_event_invocations,
        run_in_background,
        wait_for_background_runs,
    )
    from infra.local.stepfunctions import catalog_task_runners, route_task_invocations
    from shared import events
    from shared.auth.keys import forget_key_ring
    from shared.auth.revocations import forget_revocations
    from shared.aws import reset_clients
    from shared.secrets import forget_opened_secrets

    patch_moto()
    make_api_call = BaseClient._make_api_call

    def no_scan(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "Scan":
            raise ScanOnRequestPathError(f"Scan of {params.get('TableName')}")
        return make_api_call(self, operation, params)

    in_background = run_in_background(TEST_STAGE, os.environ["AWS_REGION"], (AGENTS_PROCESSOR_FUNCTION,))
    deliver_s3_notifications(in_background)
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        patch.object(BaseClient, "_make_api_call", no_scan),
        route_task_invocations(catalog_task_runners(TEST_STAGE, os.environ["AWS_REGION"])),
        route_event_invocations(in_background, (AGENTS_PROCESSOR_FUNCTION,), TEST_STAGE),
    ):
        reset_clients()
        forget_key_ring()
        forget_revocations()
        forget_stage_spend()
        forget_trusted_channels()
        forget_opened_secrets()
        forget_enabled_servers()
        environment = provision_stage(TEST_STAGE)
        assert all(os.environ[name] == value for name, value in environment.items())
        yield
        wait_for_background_runs()
        # What the test published reaches this test's queue, never the next test's.
        events.flush()
        forget_key_ring()
        reset_clients()
