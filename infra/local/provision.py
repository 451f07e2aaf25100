"""Create on the AWS the clients point at (moto, in local mode and tests) what CDK creates for a stage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.tables import create_tables

if TYPE_CHECKING:
    from infra.catalog import QueueSpec


def signing_keys_secret_name(stage: str) -> str:
    return f"stratus/{stage}/signing-keys"


def payload_bucket_name(stage: str) -> str:
    return f"stratus-{stage}-payloads"


def export_bucket_name(stage: str) -> str:
    return f"stratus-{stage}-exports"


def documents_bucket_name(stage: str) -> str:
    return f"stratus-{stage}-documents"


def processor_function_name(stage: str) -> str:
    from infra.catalog import AGENTS_PROCESSOR_FUNCTION
    from infra.local.stepfunctions import function_name

    return function_name(stage, AGENTS_PROCESSOR_FUNCTION)


def vector_bucket_name(stage: str) -> str:
    """S3 Vectors' bucket names: 3-63 lowercase letters, digits and hyphens, as a stage name already is."""
    return f"stratus-{stage}-vectors"


def secrets_key_alias(stage: str) -> str:
    return f"alias/stratus-{stage}-secrets"


def queue_url(stage: str, region: str, spec: QueueSpec, *, dead_letter: bool = False) -> str:
    """The URL moto gives a stage's queue (as CDK passes a deployed queue's URL)."""
    from infra.local.stepfunctions import ACCOUNT_ID

    return f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{spec.physical_name(stage, dead_letter=dead_letter)}"


def queue_environment(stage: str, region: str) -> dict[str, str]:
    from infra.catalog import QUEUES

    return {spec.env_var: queue_url(stage, region, spec) for spec in QUEUES}


def create_queues(stage: str, region: str) -> dict[str, str]:
    """Every catalog queue with its dead-letter queue and redrive policy, as CDK builds them."""
    import json

    from infra.catalog import QUEUES
    from shared.aws import client

    sqs = client("sqs")
    for spec in QUEUES:
        fifo = {"FifoQueue": "true"} if spec.fifo else {}
        dead_letter = sqs.create_queue(
            QueueName=spec.physical_name(stage, dead_letter=True),
            Attributes={**fifo, "MessageRetentionPeriod": str(spec.dead_letter_retention_days * 86400)},
        )
        dead_letter_arn = sqs.get_queue_attributes(QueueUrl=dead_letter["QueueUrl"], AttributeNames=["QueueArn"])
        sqs.create_queue(
            QueueName=spec.physical_name(stage),
            Attributes={
                **fifo,
                "VisibilityTimeout": str(spec.visibility_timeout_seconds),
                "MessageRetentionPeriod": str(spec.retention_days * 86400),
                "RedrivePolicy": json.dumps(
                    {
                        "deadLetterTargetArn": dead_letter_arn["Attributes"]["QueueArn"],
                        "maxReceiveCount": spec.max_receive_count,
                    }
                ),
            },
        )
    return queue_environment(stage, region)


def attached_stage(stage: str) -> dict[str, str]:
    """The environment `provision_stage` returned, for a stage already provisioned on the AWS the clients point
    at: what a second local gateway sharing the first one's moto (another "container") runs with."""
    import os

    from infra.local.stepfunctions import state_machine_arns
    from shared.tables import TABLES

    return {
        **{spec.env_var: spec.physical_name(stage) for spec in TABLES},
        "SIGNING_KEYS_SECRET": signing_keys_secret_name(stage),
        "PAYLOAD_BUCKET": payload_bucket_name(stage),
        "SECRETS_KEY_ID": secrets_key_alias(stage),
        "EXPORT_BUCKET": export_bucket_name(stage),
        "DOCUMENTS_BUCKET": documents_bucket_name(stage),
        "PROCESSOR_FUNCTION": processor_function_name(stage),
        "VECTOR_BUCKET": vector_bucket_name(stage),
        **state_machine_arns(stage),
        **queue_environment(stage, os.environ.get("AWS_REGION") or "us-east-1"),
    }


def provision_stage(stage: str) -> dict[str, str]:
    """Tables, the signing key secret with its first key, the payload, export, documents and vector buckets, the
    secrets key and the jobs workflows; returns the environment that points functions at them (the names CDK passes
    in a deployed stage)."""
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
    documents = provision_documents_bucket(stage, os.environ.get("AWS_REGION") or "us-east-1")
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
        "DOCUMENTS_BUCKET": documents,
        "PROCESSOR_FUNCTION": processor_function_name(stage),
        "VECTOR_BUCKET": vectors,
        **create_state_machines(stage, os.environ.get("AWS_REGION") or "us-east-1"),
        **create_queues(stage, os.environ.get("AWS_REGION") or "us-east-1"),
    }


def provision_documents_bucket(stage: str, region: str) -> str:
    """Agents' documents bucket: browsers PUT to it from any local frontend, and an object created under
    `documents/` notifies the document processor (delivered by infra.local.s3events)."""
    from functions.agents import DOCUMENTS_PREFIX
    from infra.catalog import AGENTS_PROCESSOR_FUNCTION
    from infra.local.stepfunctions import function_arn
    from shared.aws import client

    s3 = client("s3")
    bucket = documents_bucket_name(stage)
    s3.create_bucket(Bucket=bucket)
    rule = {"AllowedMethods": ["PUT"], "AllowedOrigins": ["*"], "AllowedHeaders": ["content-type"]}
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "Id": "documents-to-processor",
                    "LambdaFunctionArn": function_arn(stage, AGENTS_PROCESSOR_FUNCTION, region),
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": DOCUMENTS_PREFIX}]}},
                }
            ]
        },
    )
    return bucket
