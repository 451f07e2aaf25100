"""Create on the AWS the clients point at (moto, in local mode and tests) what CDK creates for a stage."""

from __future__ import annotations

from shared.tables import create_tables


def signing_keys_secret_name(stage: str) -> str:
    return f"stratus/{stage}/signing-keys"


def payload_bucket_name(stage: str) -> str:
    return f"stratus-{stage}-payloads"


def export_bucket_name(stage: str) -> str:
    return f"stratus-{stage}-exports"


def vector_bucket_name(stage: str) -> str:
    """S3 Vectors' bucket names: 3-63 lowercase letters, digits and hyphens, as a stage name already is."""
    return f"stratus-{stage}-vectors"


def secrets_key_alias(stage: str) -> str:
    return f"alias/stratus-{stage}-secrets"


def attached_stage(stage: str) -> dict[str, str]:
    """The environment `provision_stage` returned, for a stage already provisioned on the AWS the clients point
    at: what a second local gateway sharing the first one's moto (another "container") runs with."""
    from infra.local.stepfunctions import state_machine_arns
    from shared.tables import TABLES

    return {
        **{spec.env_var: spec.physical_name(stage) for spec in TABLES},
        "SIGNING_KEYS_SECRET": signing_keys_secret_name(stage),
        "PAYLOAD_BUCKET": payload_bucket_name(stage),
        "SECRETS_KEY_ID": secrets_key_alias(stage),
        "EXPORT_BUCKET": export_bucket_name(stage),
        "VECTOR_BUCKET": vector_bucket_name(stage),
        **state_machine_arns(stage),
    }


def provision_stage(stage: str) -> dict[str, str]:
    """Tables, the signing key secret with its first key, the payload, export and vector buckets, the secrets
    key and the jobs workflows; returns the environment that points functions at them (the names CDK passes in a
    deployed stage)."""
    import os

    from functions.identity.signing_keys import ensure_signing_keys
    from infra.local.stepfunctions import create_state_machines
    from shared.aws import client

    environment = create_tables(client("dynamodb"), stage)
    secret_id = signing_keys_secret_name(stage)
    # A placeholder, as CloudFormation creates it; ensure_signing_keys replaces it with a key ring.
    client("secretsmanager").create_secret(Name=secret_id, SecretString="placeholder")
    ensure_signing_keys(secret_id)
    bucket = payload_bucket_name(stage)
    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    exports = export_bucket_name(stage)
    s3.create_bucket(Bucket=exports)
    # The browser uploads imports and downloads exports with presigned URLs, from any local frontend.
    cors_rule = {"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"]}
    s3.put_bucket_cors(
        Bucket=exports,
        CORSConfiguration={"CORSRules": [cors_rule]},
    )
    vectors = vector_bucket_name(stage)
    client("s3vectors").create_vector_bucket(vectorBucketName=vectors)
    kms = client("kms")
    key_id = kms.create_key(Description=f"Stratus {stage}: seals stored secrets")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=secrets_key_alias(stage), TargetKeyId=key_id)
    return {
        **environment,
        "SIGNING_KEYS_SECRET": secret_id,
        "PAYLOAD_BUCKET": bucket,
        "SECRETS_KEY_ID": secrets_key_alias(stage),
        "EXPORT_BUCKET": exports,
        "VECTOR_BUCKET": vectors,
        **create_state_machines(stage, os.environ.get("AWS_REGION") or "us-east-1"),
    }
