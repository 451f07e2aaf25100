"""What every construct of one stage shares: its validated settings, how long its data and logs live, its CORS
and throttle, and the base class that keeps each resource's logical ID independent of the construct building it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_logs as logs
from constructs import Construct
from pydantic import ValidationError

from shared.settings import Settings

DEFAULT_THROTTLE_RATE = 100
DEFAULT_THROTTLE_BURST = 200
# Request headers a browser may send, on the HTTP API and on the streaming Function URLs alike.


class ConfigurationError(Exception):
    """The stage or its context values cannot make a safe deployment; the message says what to pass."""


@dataclass(frozen=True)
class StageConfig:
    """One stage's deployment choices, read once from the CDK context (`-c name=value`): `corsOrigins` (required
    outside dev stages), `throttleRateLimit` and `throttleBurstLimit` (requests per second across an API),
    `bedrock` (true lets the functions that call models use Bedrock with their own role),
    `archiveConversationsAfterDays` (the stage's `ARCHIVE_CONVERSATIONS_AFTER_DAYS`; 0 turns archiving off),
    `enhanceFieldTypes` (the stage's own text-enhancement field types, JSON: its `ENHANCE_FIELD_TYPES`),
    `auditRetentionDays` (the stage's `AUDIT_RETENTION_DAYS`: how long the audit log keeps an event)."""

    settings: Settings
    bedrock_enabled: bool = False
    throttle_rate: float = DEFAULT_THROTTLE_RATE
    throttle_burst: int = DEFAULT_THROTTLE_BURST

    @classmethod
    def from_context(cls, scope: Construct, stage: str) -> StageConfig:
        context = scope.node.try_get_context
        return cls(
            settings=deployment_settings(
                stage,
                context("corsOrigins"),
                context("archiveConversationsAfterDays"),
                enhance_field_types=context("enhanceFieldTypes"),
                audit_retention_days=context("auditRetentionDays"),
            ),
            bedrock_enabled=str(context("bedrock") or "").lower() == "true",
            throttle_rate=float(context("throttleRateLimit") or DEFAULT_THROTTLE_RATE),
            throttle_burst=int(context("throttleBurstLimit") or DEFAULT_THROTTLE_BURST),
        )

    @property
    def stage(self) -> str:
        return self.settings.stage

    @property
    def is_dev(self) -> bool:
        return self.settings.is_dev_stage

    @property
    def removal_policy(self) -> RemovalPolicy:
        """Dev data is disposable; a tenant's tables, secrets and logs outlive its stack."""
        return RemovalPolicy.DESTROY if self.is_dev else RemovalPolicy.RETAIN

    @property
    def log_retention(self) -> logs.RetentionDays:
        return logs.RetentionDays.ONE_MONTH if self.is_dev else logs.RetentionDays.ONE_YEAR

    @property
    def cors_origins(self) -> list[str]:
        return list(self.settings.cors_allow_origins)

    @property
    def cors_allows_credentials(self) -> bool:
        # Browsers refuse credentials with a wildcard origin, so only named origins get them.
        return "*" not in self.settings.cors_allow_origins

    @property
    def throttle(self) -> apigwv2.ThrottleSettings:
        return apigwv2.ThrottleSettings(rate_limit=self.throttle_rate, burst_limit=self.throttle_burst)


class StageConstruct(Construct):
    """One concern of the stage's stack (storage, an API, ...).

    Its resources are created in the stack's own scope (`self.stack`), never under the construct, so a resource's
    logical ID is its own id alone: moving a table or an API from one construct to another, or splitting a
    construct, never makes CloudFormation replace it (a replaced table or bucket loses its data; a replaced API
    changes its URL). Ids are therefore unique across the whole stack, which CDK enforces at synth.
    """

    def __init__(self, scope: Construct, construct_id: str, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.stack = Stack.of(self)
        self.config = config


def deployment_settings(
    stage: str,
    cors_origins: str | None,
    archive_after_days: object = None,
    *,
    enhance_field_types: object = None,
    audit_retention_days: object = None,
) -> Settings:
    """The stage's settings given at deploy (CORS origins, the archiving cutoff, its enhancement field types),
    validated by the same rules the functions apply at cold start."""
    try:
        dev = Settings(stage=stage).is_dev_stage
        if not cors_origins and not dev:
            raise ConfigurationError(
                f"stage {stage!r} needs its frontends' origins: -c corsOrigins=https://app.example.com[,...]"
            )
        chosen: dict[str, object] = {}
        if archive_after_days is not None:
            chosen["archive_conversations_after_days"] = archive_after_days
        if enhance_field_types is not None:
            chosen["enhance_field_types"] = enhance_field_types
        if audit_retention_days is not None:
            chosen["audit_retention_days"] = audit_retention_days
        settings = Settings(stage=stage, cors_allow_origins=cors_origins or "*", **chosen)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        where = f"{location}: " if location else ""
        problem = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(f"stage {stage!r}: {where}{problem}") from None
    if len(enhance_field_types_environment(settings)) > MAX_FIELD_TYPES_ENVIRONMENT_BYTES:
        raise ConfigurationError(
            f"stage {stage!r}: enhanceFieldTypes is longer than {MAX_FIELD_TYPES_ENVIRONMENT_BYTES} bytes of JSON:"
            " a Lambda function's whole environment must fit in 4 KB"
        )
    return settings


# What the stage's own field types may take of the chat function's environment (4 KB in all, for every variable).
MAX_FIELD_TYPES_ENVIRONMENT_BYTES = 2_500


def enhance_field_types_environment(settings: Settings) -> str:
    """The stage's own field types as `ENHANCE_FIELD_TYPES` carries them: compact JSON, defaults left out."""
    import json

    return json.dumps(
        {
            name: field_type.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            for name, field_type in settings.enhance_field_types.items()
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
