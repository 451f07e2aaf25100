"""What a stage keeps: a DynamoDB table per context in `shared.tables`, the payload bucket, the export bucket (jobs'
archives and import uploads, kept 7 days), the vector bucket (agents' document chunks, an S3 Vectors index per
agent), the secrets (the token signing-key ring, the LLM provider keys) and the
KMS key that seals secrets stored in tables (shared.secrets). Tenant stages retain all of it when the stack goes."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3vectors as s3vectors
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.catalog import EXPORTS_PREFIX, IMPORTS_PREFIX, pascal
from infra.local.provision import vector_bucket_name
from infra.nag import acknowledge
from infra.queues import stage_queues
from infra.stage import StageConfig, StageConstruct
from shared.http import cors
from shared.tables import TABLES, TableSpec

# Large message bodies live under this prefix of the payload bucket; it is all a function may touch there.
PAYLOAD_PREFIX = "conversations/"
# Export archives and import uploads are deleted this long after they were written (API.md, Jobs).
EXPORT_RETENTION_DAYS = 7


class Storage(StageConstruct):
    """The stage's tables (by context), payload bucket and secrets."""

    def __init__(self, scope: Construct, construct_id: str, config: StageConfig) -> None:
        super().__init__(scope, construct_id, config)
        self.tables = {spec.context: self._table(spec) for spec in TABLES}
        self.signing_keys = self._secret(
            "SigningKeys",
            "signing-keys",
            "ES256 key ring that signs and verifies access and refresh tokens",
            rotation="The key ring rotates by adding a key in front (every listed key still verifies) and dropping "
            "the oldest later; a scheduled rotation Lambda is future work.",
        )
        self.payload_bucket = self._payload_bucket()
        self.export_bucket = self._export_bucket()
        self.documents_bucket = self._documents_bucket()
        self.vector_bucket_name = vector_bucket_name(config.stage)
        self.vector_bucket = self._vector_bucket()
        # One key for every context's stored secrets; encryption contexts keep them apart (infra/functions.py).
        self.secrets_key = kms.Key(
            self.stack,
            "SecretsKey",
            alias=f"alias/stratus-{config.stage}-secrets",
            description=f"Stratus {config.stage}: seals secrets stored in tables (MCP headers, channel tokens)",
            enable_key_rotation=True,
            removal_policy=self.config.removal_policy,
        )
        # Inbound channel messages (FIFO, with dead-letter queues): infra/queues.py.
        self.queues = stage_queues(self)
        self.provider_keys = self._secret(
            "ProviderKeys",
            "provider-keys",
            "LLM provider API keys, JSON by provider name; set by the operator",
            rotation="Provider API keys are issued by the providers and rotated in their consoles; the operator "
            "updates the secret, which chat reads on its next cold start.",
        )

        CfnOutput(
            self.stack,
            "SigningKeysSecretArn",
            value=self.signing_keys.secret_arn,
            description="Secret holding the token signing key ring",
        )
        CfnOutput(
            self.stack,
            "VectorBucketName",
            value=self.vector_bucket_name,
            description="S3 Vectors bucket of the agents' document chunks",
        )
        for spec in TABLES:
            CfnOutput(
                self.stack,
                f"{pascal(spec.context)}TableName",
                value=self.tables[spec.context].table_name,
                description=f"DynamoDB table of the {spec.context} context",
            )

    def _table(self, spec: TableSpec) -> dynamodb.Table:
        table = dynamodb.Table(
            self.stack,
            f"{pascal(spec.context)}Table",
            table_name=spec.physical_name(self.config.stage),
            partition_key=dynamodb.Attribute(name=spec.partition_key, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=spec.sort_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=spec.ttl_attribute,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES if spec.stream else None,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # AWS managed key: its use shows in CloudTrail and there is no key policy to maintain. A customer
            # managed key would add cost and a policy without narrowing who may read: grants are per table.
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=not self.config.is_dev,
            removal_policy=self.config.removal_policy,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=dynamodb.Attribute(name=index.partition_key, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=index.sort_key, type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return table

    def _secret(self, construct_id: str, name: str, holds: str, *, rotation: str) -> secretsmanager.Secret:
        """A secret named `stratus/<stage>/<name>`; `rotation` says how it is rotated without a rotation Lambda."""
        stage = self.config.stage
        secret = secretsmanager.Secret(
            self.stack,
            construct_id,
            secret_name=f"stratus/{stage}/{name}",
            description=f"Stratus {stage}: {holds}",
            removal_policy=self.config.removal_policy,
        )
        acknowledge(secret, "AwsSolutions-SMG4", rotation)
        return secret

    def _payload_bucket(self) -> s3.Bucket:
        """Message bodies too large for a DynamoDB item: private, encrypted, TLS only."""
        return self._private_bucket(
            "PayloadBucket",
            "Objects are reached only through the conversations function, whose every call is logged with its "
            "request id; server access logs would add a second bucket without a reader.",
        )

    def _export_bucket(self) -> s3.Bucket:
        """Export archives (and their parts) and import uploads: private, encrypted, TLS only, unversioned, each
        object gone after 7 days. Browsers reach it only through presigned URLs, from the stage's origins."""
        return self._private_bucket(
            "ExportBucket",
            "Objects are written and presigned only by the jobs functions, whose every call is logged with its job "
            "id; they expire after 7 days. Server access logs would add a second bucket without a reader.",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id=f"expire-{prefix.rstrip('/')}",
                    prefix=prefix,
                    expiration=Duration.days(EXPORT_RETENTION_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
                for prefix in (EXPORTS_PREFIX, IMPORTS_PREFIX)
            ],
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.PUT],
                    allowed_origins=self.config.cors_origins,
                    allowed_headers=["content-type"],
                    exposed_headers=["etag"],
                    max_age=600,
                )
            ],
        )

    def _documents_bucket(self) -> s3.Bucket:
        """Agents' documents (`documents/<agentId>/<documentId>`): private, encrypted, TLS only. Browsers upload to
        it only through presigned PUTs, from the stage's origins; kept until their document is deleted."""
        return self._private_bucket(
            "DocumentsBucket",
            "Objects are written only through presigned uploads the agents function issues and read only by the "
            "document processor, both logging every call with the agent and document id; server access logs "
            "would add a second bucket without a reader.",
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.PUT],
                    allowed_origins=self.config.cors_origins,
                    allowed_headers=["content-type"],
                    exposed_headers=["etag"],
                    max_age=cors.MAX_AGE_SECONDS,
                )
            ],
        )

    def _vector_bucket(self) -> s3vectors.CfnVectorBucket:
        """Agents' chunk vectors, one index per agent (functions.agents.vectors), named so an operator finds it.
        Encrypted with S3-managed keys (SSE-S3), as the document and payload buckets are: the chunks are no more
        sensitive than the documents they come from, and SSE-KMS with the stage's key would have to open that key's
        policy to the S3 Vectors service and every reader, when it is kept for secrets sealed by context. Vector
        buckets are private by construction: no public access, reached only through IAM."""
        bucket = s3vectors.CfnVectorBucket(
            self.stack,
            "VectorBucket",
            vector_bucket_name=self.vector_bucket_name,
            encryption_configuration=s3vectors.CfnVectorBucket.EncryptionConfigurationProperty(sse_type="AES256"),
        )
        bucket.apply_removal_policy(self.config.removal_policy)
        return bucket

    def _private_bucket(
        self,
        construct_id: str,
        no_access_logs: str,
        *,
        lifecycle_rules: list[s3.LifecycleRule] | None = None,
        cors: list[s3.CorsRule] | None = None,
    ) -> s3.Bucket:
        """A bucket no one outside the stage reaches: public access blocked, encrypted, TLS only, unversioned, owned
        by the account; `no_access_logs` says why it keeps no server access logs."""
        bucket = s3.Bucket(
            self.stack,
            construct_id,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=lifecycle_rules,
            cors=cors,
            removal_policy=self.config.removal_policy,
        )
        acknowledge(bucket, "AwsSolutions-S1", no_access_logs)
        return bucket
