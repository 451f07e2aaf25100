"""Create on the AWS the clients point at (moto, in local mode and tests) what CDK creates for a stage."""

from __future__ import annotations

from shared.tables import create_tables


def signing_keys_secret_name(stage: str) -> str:
    return f"stratus/{stage}/signing-keys"


def payload_bucket_name(stage: str) -> str:
    return f"stratus-{stage}-payloads"


def provision_stage(stage: str) -> dict[str, str]:
    """Tables, the signing key secret with its first key, and the payload bucket; returns the environment that
    points functions at them (the names CDK passes in a deployed stage)."""
    from functions.identity.signing_keys import ensure_signing_keys
    from shared.aws import client

    environment = create_tables(client("dynamodb"), stage)
    secret_id = signing_keys_secret_name(stage)
    # A placeholder, as CloudFormation creates it; ensure_signing_keys replaces it with a key ring.
    client("secretsmanager").create_secret(Name=secret_id, SecretString="placeholder")
    ensure_signing_keys(secret_id)
    bucket = payload_bucket_name(stage)
    client("s3").create_bucket(Bucket=bucket)
    return {**environment, "SIGNING_KEYS_SECRET": secret_id, "PAYLOAD_BUCKET": bucket}
