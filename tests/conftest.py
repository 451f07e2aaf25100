"""Test environment: a `test` stage on moto, cheap password hashing, no tracing, no real AWS credentials."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shared.tables import TABLES

TEST_STAGE = "test"
SIGNING_SECRET = f"stratus/{TEST_STAGE}/signing-keys"

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
        "SIGNING_KEYS_SECRET": SIGNING_SECRET,
        "CORS_ALLOW_ORIGINS": "https://app.example.com",
    }
)
for _spec in TABLES:
    os.environ[_spec.env_var] = _spec.physical_name(TEST_STAGE)
# Never let a test reach a real endpoint or a developer's profile.
for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)


@pytest.fixture
def aws() -> Iterator[None]:
    """Fresh moto AWS with every table and the signing key secret, as a deployed stage has them."""
    from moto import mock_aws

    from functions.identity.signing_keys import ensure_signing_keys
    from infra.local.atomic_dynamodb import make_moto_dynamodb_atomic
    from shared.auth.keys import forget_key_ring
    from shared.aws import client, reset_clients
    from shared.tables import create_tables

    make_moto_dynamodb_atomic()
    with mock_aws():
        reset_clients()
        forget_key_ring()
        create_tables(client("dynamodb"), TEST_STAGE)
        client("secretsmanager").create_secret(Name=SIGNING_SECRET, SecretString="placeholder")
        ensure_signing_keys(SIGNING_SECRET)
        yield
        forget_key_ring()
        reset_clients()
