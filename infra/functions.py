"""Lambda functions built from their `FunctionSpec`: one code asset, the stage's layers, and for each function its
own log group and role, granted exactly the tables, secrets, bucket prefix, vector indexes and models its spec
lists.

The API constructs ask for the functions they serve (`Functions.catalog_function`); what a function may touch is
decided here alone, from its spec, so a new context's function needs a catalog entry and nothing in this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from aws_cdk import Aws, CustomResource, Duration, IgnoreMode, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from functions.agents import DOCUMENTS_PREFIX
from functions.jobs.contexts import Workflow, workflow_env_var
from infra.catalog import BucketAccess, BucketAction, FunctionSpec, QueueAccess, pascal
from infra.nag import acknowledge, acknowledge_wildcard_resource
from infra.observability import METRICS_NAMESPACE, WRITE_LOG_ACTIONS, log_group
from infra.stage import StageConfig, StageConstruct, enhance_field_types_environment
from infra.storage import PAYLOAD_PREFIX, Storage
from shared.auth.api_keys import API_KEY_RESOLUTION_ATTRIBUTES, API_KEY_RESOLUTION_PARTITIONS
from shared.auth.revocations import REVOCATIONS_PARTITION
from shared.tables import IDENTITY

REPO_ROOT = Path(__file__).resolve().parent.parent

# Gitignore syntax, read as an allowlist: the function asset is `functions/` and `shared/`, nothing else, so a
# new top-level folder (or a developer's .venv, cdk.out, layer builds) can never leak into a deployment.
CODE_ASSET_EXCLUDE = ("/*", "!/functions/", "!/shared/", "__pycache__/", "*.py[cod]", "*.md")

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
# Dev stages hash passwords at a lower scrypt cost so sign-ups in demos and end-to-end runs stay fast;
# Settings refuses anything below its deployed minimum outside dev stages.
DEV_PASSWORD_HASH_COST = 14
# Exact DynamoDB actions instead of CDK's grant_read_data/grant_read_write_data, which include Scan: no request
# path may scan a table (DESIGN), so no function role can.
TABLE_READ_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query")
TABLE_WRITE_ACTIONS = ("dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
# What each export-bucket action of a spec grants on its prefix's objects (`list` is ListBucket of the prefix).
BUCKET_OBJECT_ACTIONS = {
    "read": ("s3:GetObject",),
    "write": ("s3:PutObject", "s3:AbortMultipartUpload"),
    "delete": ("s3:DeleteObject",),
}

# S3 Vectors actions by a spec's `vector_access`, on the vector bucket's indexes. QueryVectors returns metadata (the
# chunk's text) only with GetVectors too.
VECTOR_READ_ACTIONS = ("s3vectors:GetIndex", "s3vectors:GetVectors", "s3vectors:QueryVectors")
VECTOR_WRITE_ACTIONS = (
    *VECTOR_READ_ACTIONS,
    "s3vectors:CreateIndex",
    "s3vectors:DeleteIndex",
    "s3vectors:DeleteVectors",
    "s3vectors:ListVectors",
    "s3vectors:PutVectors",
)

SIGNING_KEYS_FUNCTION = FunctionSpec(
    name="signing-keys",
    handler="functions.identity.signing_keys.on_event",
    description="Custom resource: puts the stage's first token signing key into its secret",
    memory_mb=256,
    timeout_seconds=60,
)


class Functions(StageConstruct):
    """Builds the stage's functions; first of all the custom resource that puts the first signing key into its
    secret, which every function that reads the key ring waits for."""

    def __init__(
        self, scope: Construct, construct_id: str, config: StageConfig, storage: Storage, layer_dirs: Mapping[str, Path]
    ) -> None:
        super().__init__(scope, construct_id, config)
        self.storage = storage
        self.code = lambda_.Code.from_asset(
            str(REPO_ROOT), exclude=list(CODE_ASSET_EXCLUDE), ignore_mode=IgnoreMode.GIT
        )
        # Every function gets the base layer. The AI layer (provider SDKs, mcp) is only for functions that call
        # models: its imports cost seconds of cold start.
        self.layers = {name: self._layer(name, path) for name, path in layer_dirs.items()}
        self.signing_keys_initialized = self._signing_keys_initializer()
        # The jobs workflows' state machines, once built (infra.jobs): functions that start them need their ARNs.
        self.workflows: dict[Workflow, sfn.StateMachine] = {}

    def catalog_function(
        self,
        spec: FunctionSpec,
        *,
        extra_layers: tuple[lambda_.ILayerVersion, ...] = (),
        extra_environment: Mapping[str, str] | None = None,
    ) -> lambda_.Function:
        """A catalog function, granted exactly the tables, secrets and bucket its spec lists."""
        function = self._function(spec, {**self._environment(spec), **(extra_environment or {})}, extra_layers)
        self._grant_tables(spec, function)
        if spec.uses_payload_bucket:
            self._grant_payloads(function)
        for access in spec.export_bucket:
            self._grant_export_bucket(access, function)
        if spec.documents_bucket:
            self._grant_documents_bucket(spec.documents_bucket, function)
        for workflow in spec.starts_workflows:
            self.workflows[workflow].grant_start_execution(function)
        signing_keys = self.storage.signing_keys
        if spec.reads_signing_keys:
            signing_keys.grant_read(function)
            # The first request must find a key ring, not the placeholder CloudFormation created.
            function.node.add_dependency(self.signing_keys_initialized)
        elif spec.describes_signing_keys:
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["secretsmanager:DescribeSecret"], resources=[signing_keys.secret_arn])
            )
        if spec.calls_models:
            self.storage.provider_keys.grant_read(function)
            if self.config.bedrock_enabled:
                self._grant_bedrock(function)
        if spec.checks_revocations:
            self._grant_revocation_reads(function)
        if spec.vector_access:
            self._grant_vectors(spec.vector_access, function)
        if spec.secret_contexts or spec.unsealed_secret_contexts:
            self._grant_secret_contexts(spec, function)
        for queue_access in spec.queue_accesses:
            self._grant_queue(queue_access, function)
        return function

    def _layer(self, name: str, path: Path) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self.stack,
            f"{pascal(name)}Layer",
            code=lambda_.Code.from_asset(str(path)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=f"Stratus {name} dependencies (layers/{name}/requirements.txt)",
            removal_policy=self.config.removal_policy,
        )

    def _function(
        self, spec: FunctionSpec, environment: Mapping[str, str], extra_layers: tuple[lambda_.ILayerVersion, ...] = ()
    ) -> lambda_.Function:
        """A function with its own role that may write its own log group and traces, and nothing else yet."""
        construct_id = pascal(spec.name)
        logs = log_group(self, f"{construct_id}Logs")
        # Our own role instead of the default's AWSLambdaBasicExecutionRole, which may write any log group.
        role = iam.Role(
            self.stack,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Stratus {self.config.stage} {spec.name} function",
        )
        role.add_to_policy(iam.PolicyStatement(actions=list(WRITE_LOG_ACTIONS), resources=[logs.log_group_arn]))
        function = lambda_.Function(
            self.stack,
            f"{construct_id}Function",
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=self.code,
            handler=spec.handler,
            layers=[self.layers[name] for name in spec.layers if name in self.layers] + list(extra_layers),
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_seconds),
            ephemeral_storage_size=Size.mebibytes(spec.tmp_storage_mb) if spec.tmp_storage_mb > 512 else None,
            role=role,
            log_group=logs,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "STAGE": self.config.stage,
                "POWERTOOLS_SERVICE_NAME": spec.name,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                **environment,
            },
        )
        # Tracing.ACTIVE grants the X-Ray writes on "*".
        acknowledge_wildcard_resource(
            role,
            "*",
            "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.",
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "The project pins python3.12 (DESIGN decision 1): its layers are built for 3.12 and the code is "
            "tested on it; moving runtime is a deliberate upgrade of layers and tests together.",
        )
        return function

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        """What a function needs to find its resources, named as `shared.settings` and `shared.tables` read them."""
        storage = self.storage
        environment = {
            "CORS_ALLOW_ORIGINS": ",".join(self.config.cors_origins),
            "ARCHIVE_CONVERSATIONS_AFTER_DAYS": str(self.config.settings.archive_conversations_after_days),
            **{
                table.env_var: storage.tables[table.context].table_name
                for table in (
                    *spec.tables,
                    *spec.read_only_tables,
                    *spec.described_tables,
                    *spec.append_only_tables,
                    *(grant.table for grant in spec.partition_grants),
                )
            },
        }
        environment |= self._storage_environment(spec)
        for workflow in spec.starts_workflows:
            if workflow not in self.workflows:
                raise LookupError(f"{spec.name} starts the {workflow} workflow, which is not built yet (infra.jobs)")
            environment[workflow_env_var(workflow)] = self.workflows[workflow].state_machine_arn
        environment.update(dict(spec.environment))
        if spec.append_only_tables:
            environment["AUDIT_RETENTION_DAYS"] = str(self.config.settings.audit_retention_days)
        if self.config.is_dev:
            environment["PASSWORD_HASH_COST"] = str(DEV_PASSWORD_HASH_COST)
        if spec.enhances_text and self.config.settings.enhance_field_types:
            environment["ENHANCE_FIELD_TYPES"] = enhance_field_types_environment(self.config.settings)
        if spec.calls_models:
            environment["PROVIDER_KEYS_SECRET"] = storage.provider_keys.secret_arn
            if self.config.bedrock_enabled:
                environment["BEDROCK_ENABLED"] = "true"
        return environment

    def _storage_environment(self, spec: FunctionSpec) -> dict[str, str]:
        """The names of the stage's secrets, buckets and queues the function uses."""
        storage = self.storage
        environment: dict[str, str] = {}
        if spec.reads_signing_keys or spec.describes_signing_keys:
            environment["SIGNING_KEYS_SECRET"] = storage.signing_keys.secret_arn
        if spec.secret_contexts or spec.unsealed_secret_contexts:
            environment["SECRETS_KEY_ID"] = storage.secrets_key.key_arn
        if spec.uses_payload_bucket:
            environment["PAYLOAD_BUCKET"] = storage.payload_bucket.bucket_name
        if spec.export_bucket:
            environment["EXPORT_BUCKET"] = storage.export_bucket.bucket_name
        if spec.documents_bucket:
            environment["DOCUMENTS_BUCKET"] = storage.documents_bucket.bucket_name
        for queue_access in spec.queue_accesses:
            environment[queue_access.queue.env_var] = storage.queues[queue_access.queue.name].queue_url
        if spec.vector_access:
            environment["VECTOR_BUCKET"] = storage.vector_bucket_name
        return environment

    def _grant_tables(self, spec: FunctionSpec, function: lambda_.Function) -> None:
        tables = self.storage.tables
        for table in spec.tables:
            tables[table.context].grant(function, *TABLE_READ_ACTIONS, *TABLE_WRITE_ACTIONS)
        for table in spec.read_only_tables:
            tables[table.context].grant(function, *TABLE_READ_ACTIONS)
        for table in spec.append_only_tables:
            # PutItem alone, on the table itself (not its indexes): the function adds items and can neither change
            # nor delete one. That each put is conditional (attribute_not_exists) is the code's to keep: IAM has no
            # condition key for a request's ConditionExpression.
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[tables[table.context].table_arn])
            )
        for grant in spec.partition_grants:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=list(grant.actions),
                    resources=[tables[grant.table.context].table_arn],
                    conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{grant.prefix}*"]}},
                )
            )
        if spec.described_tables:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["dynamodb:DescribeTable"],
                    resources=[tables[table.context].table_arn for table in spec.described_tables],
                )
            )
        role = function.role
        assert role is not None  # _function gives every function its own role
        for context in sorted({table.context for table in (*spec.tables, *spec.read_only_tables)}):
            # Table.grant names the table's indexes as its ARN plus /index/*.
            acknowledge_wildcard_resource(
                role,
                f"{tables[context].table_arn}/index/*",
                "Queries the GSIs of a table its spec lists; index ARNs are the table ARN plus /index/*.",
            )

    def _grant_revocation_reads(self, function: lambda_.Function) -> None:
        """Query the identity table's revocation partition only, and get the items an API key resolves through
        (the key, its owner's roles and status, their roles), nothing else of that table (shared.auth.revocations)."""
        identity = self.storage.tables[IDENTITY.context]
        function.add_environment(IDENTITY.env_var, identity.table_name)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[identity.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [REVOCATIONS_PARTITION]}},
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem"],
                resources=[identity.table_arn],
                conditions={
                    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(API_KEY_RESOLUTION_PARTITIONS)},
                    "ForAllValues:StringEquals": {"dynamodb:Attributes": list(API_KEY_RESOLUTION_ATTRIBUTES)},
                    "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
                },
            )
        )

    def _grant_secret_contexts(self, spec: FunctionSpec, function: lambda_.Function) -> None:
        """Encrypt and decrypt with the secrets key for the spec's own contexts, decrypt only for those it unseals:
        KMS checks the encryption context of every call, so no role opens another context's secrets."""
        key_arn = self.storage.secrets_key.key_arn
        for actions, contexts in (
            (["kms:Decrypt", "kms:Encrypt"], spec.secret_contexts),
            (["kms:Decrypt"], tuple(c for c in spec.unsealed_secret_contexts if c not in spec.secret_contexts)),
        ):
            if contexts:
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        actions=actions,
                        resources=[key_arn],
                        conditions={"StringEquals": {"kms:EncryptionContext:context": sorted(contexts)}},
                    )
                )

    def _grant_queue(self, access: QueueAccess, function: lambda_.Function) -> None:
        """A sender may SendMessage (batches too) to the queue and nothing else; a consumer is the queue's event
        source, reporting failed items, with what the mapping needs (receive, delete, change visibility, read the
        queue's attributes and URL) on that queue alone."""
        from aws_cdk.aws_lambda_event_sources import SqsEventSource

        queue = self.storage.queues[access.queue.name]
        if access.action == "send":
            function.add_to_role_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn]))
            return
        # The event source grants the consumer's actions on this queue alone (grant_consume_messages).
        function.add_event_source(
            SqsEventSource(queue, batch_size=access.batch_size, report_batch_item_failures=True, enabled=True)
        )

    def _grant_bedrock(self, function: lambda_.Function) -> None:
        """Stream replies from Bedrock's models, on demand or through cross-region inference profiles."""
        models = f"arn:{Aws.PARTITION}:bedrock:*::foundation-model/*"
        profiles = f"arn:{Aws.PARTITION}:bedrock:*:{Aws.ACCOUNT_ID}:inference-profile/*"
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["bedrock:InvokeModelWithResponseStream"], resources=[models, profiles])
        )
        role = function.role
        assert role is not None
        acknowledge_wildcard_resource(
            role,
            models,
            "The stage may use any model the operator enables in Bedrock; invocation is the only action granted.",
        )
        acknowledge_wildcard_resource(
            role,
            profiles,
            "Cross-region inference profiles route a model to any region of the profile; invocation only.",
        )

    def _grant_vectors(self, access: Literal["read", "write"], function: lambda_.Function) -> None:
        """Search the vector bucket's indexes ("read"), or also write, list and delete their vectors and create and
        delete indexes ("write"): on the indexes of that one bucket, nothing else."""
        statement = vector_index_statement(access, self.storage.vector_bucket.attr_vector_bucket_arn)
        function.add_to_role_policy(statement)
        role = function.role
        assert role is not None
        acknowledge_wildcard_resource(
            role,
            statement.resources[0],
            "An index per agent, created as agents are: the indexes of the stage's one vector bucket are granted.",
        )

    def _grant_payloads(self, function: lambda_.Function) -> None:
        """Get, put and delete objects under the payload prefix, and list that prefix: nothing else."""
        bucket = self.storage.payload_bucket
        objects = bucket.arn_for_objects(f"{PAYLOAD_PREFIX}*")
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources=[objects])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{PAYLOAD_PREFIX}*"]}},
            )
        )
        role = function.role
        assert role is not None
        acknowledge_wildcard_resource(
            role,
            objects,
            "Message payload objects are named by conversation and message id under one prefix.",
        )

    def _grant_export_bucket(self, access: BucketAccess, function: lambda_.Function) -> None:
        """Exactly the spec's actions on the objects under one prefix of the export bucket (and listing it)."""
        self._grant_bucket_prefix(
            self.storage.export_bucket, access.prefix, access.actions, function,
            f"Job files are named by user and job id under {access.prefix}; only that prefix is granted.",
        )  # fmt: skip

    def _grant_documents_bucket(self, actions: frozenset[BucketAction], function: lambda_.Function) -> None:
        """Exactly the spec's actions on the objects under `documents/` (and listing that prefix)."""
        self._grant_bucket_prefix(
            self.storage.documents_bucket, DOCUMENTS_PREFIX, actions, function,
            f"Documents are named by agent and document id under {DOCUMENTS_PREFIX}; only that prefix is granted.",
        )  # fmt: skip

    def _grant_bucket_prefix(
        self, bucket: s3.IBucket, prefix: str, actions: frozenset[BucketAction], function: lambda_.Function, why: str
    ) -> None:
        """`actions` on the objects under `prefix` of `bucket` (`why` says so to cdk-nag), and listing that prefix."""
        objects = bucket.arn_for_objects(f"{prefix}*")
        granted = [action for name in sorted(actions) for action in BUCKET_OBJECT_ACTIONS.get(name, ())]
        if granted:
            function.add_to_role_policy(iam.PolicyStatement(actions=granted, resources=[objects]))
            role = function.role
            assert role is not None
            acknowledge_wildcard_resource(role, objects, why)
        if "list" in actions:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
                )
            )

    def _signing_keys_initializer(self) -> CustomResource:
        """Puts the first key into the secret on create; later deploys leave the key ring alone."""
        signing_keys = self.storage.signing_keys
        function = self._function(SIGNING_KEYS_FUNCTION, {})
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
                resources=[signing_keys.secret_arn],
            )
        )
        framework_logs = log_group(self, "SigningKeysProviderLogs")
        framework_role = iam.Role(
            self.stack,
            "SigningKeysProviderRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Stratus {self.config.stage} custom resource framework for the signing keys",
        )
        framework_role.add_to_policy(
            iam.PolicyStatement(actions=list(WRITE_LOG_ACTIONS), resources=[framework_logs.log_group_arn])
        )
        provider = cr.Provider(
            self.stack,
            "SigningKeysProvider",
            on_event_handler=function,
            framework_on_event_role=framework_role,
            log_group=framework_logs,
        )
        # The Provider grants lambda:InvokeFunction on its handler's ARN and on every version (ARN:*).
        acknowledge_wildcard_resource(
            framework_role,
            f"{function.function_arn}:*",
            "The CDK Provider framework may invoke any version of its on_event handler (ARN:*).",
        )
        return CustomResource(
            self.stack,
            "SigningKeysInitialKey",
            service_token=provider.service_token,
            resource_type="Custom::SigningKeys",
            properties={"SecretId": signing_keys.secret_arn},
        )


def vector_index_statement(access: Literal["read", "write"], vector_bucket_arn: str) -> iam.PolicyStatement:
    """The one statement `vector_access` grants: its actions on every index of the bucket (`<arn>/index/*`)."""
    actions = VECTOR_READ_ACTIONS if access == "read" else VECTOR_WRITE_ACTIONS
    return iam.PolicyStatement(actions=list(actions), resources=[f"{vector_bucket_arn}/index/*"])
