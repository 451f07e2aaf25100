"""Settings read from the environment once per container and validated at cold start.

A misconfigured function fails on init with a message naming the setting, never on its hundredth request.
"""

from __future__ import annotations

import json
import os
import re
import string
from decimal import Decimal
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

# Stages where data is disposable: no deletion protection, cheaper password hashing allowed.
_DEV_STAGES = frozenset({"local", "dev", "test"})
_STAGE = re.compile(r"^[a-z][a-z0-9-]{1,23}$")
# scrypt's N = 2**cost. 17 is OWASP's recommendation (128 MiB of memory per hash).
PRODUCTION_PASSWORD_HASH_COST = 17
# The stdio MCP servers a stage ships with; `python` names the function's own interpreter.
DEFAULT_MCP_STDIO_ALLOWED: tuple[tuple[str, ...], ...] = (
    ("python", "-m", "mcp_server_time"),
    ("python", "-m", "mcp_server_fetch"),
)
MINIMUM_DEPLOYED_PASSWORD_HASH_COST = 15


# The embedders of agents' documents (shared.llm.embeddings), by the id EMBEDDING_MODEL names one with.
EMBEDDER_IDS = (
    "openai/text-embedding-3-small",
    "bedrock/amazon.titan-embed-text-v2:0",
    "offline/wordllama",
    "offline/hashing",
)


def is_dev_stage(stage: str) -> bool:
    return stage in _DEV_STAGES or stage.startswith("dev-")


# Text enhancement: what a field type's prompt template may name, each filled with one part of the request (the
# enhancement service renders them; an absent part is an empty string).
ENHANCE_TEMPLATE_PARTS = frozenset({"text", "context", "instructions", "tone", "language"})
ENHANCE_DEFAULT_PROMPT = "{context}\n\n{instructions}\n{tone}\n{language}\n\nThe text:\n{text}"
_FIELD_TYPE_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ContextKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]


class EnhanceFieldType(BaseModel):
    """One field type's template: how a request's text and context become the prompt of an enhancement.

    `system` is the system prompt; `prompt` the user's turn, where `{text}`, `{context}` (the entity and the
    `related` values named in `contextKeys`), `{instructions}`, `{tone}` and `{language}` are filled in.
    Given as JSON in camelCase (`contextKeys`, `maxTokens`), as `ENHANCE_FIELD_TYPES` takes it."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    label: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    context_keys: Annotated[tuple[ContextKey, ...], Field(max_length=20)] = ()
    system: Annotated[str, StringConstraints(min_length=1, max_length=4_000)]
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=4_000)] = ENHANCE_DEFAULT_PROMPT
    max_tokens: Annotated[int, Field(ge=1, le=8_192)] = 1_024

    @field_validator("prompt")
    @classmethod
    def _prompt_names_known_parts(cls, prompt: str) -> str:
        try:
            named = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
        except ValueError as error:
            raise ValueError(f"is not a valid template ({error}); write a literal brace as {{{{ or }}}}") from None
        unknown = sorted(named - ENHANCE_TEMPLATE_PARTS)
        if unknown:
            raise ValueError(
                f"names {', '.join(unknown) or 'a positional part'}: a template may name only "
                + ", ".join(f"{{{part}}}" for part in sorted(ENHANCE_TEMPLATE_PARTS))
            )
        if "text" not in named:
            raise ValueError("must contain {text}")
        return prompt


def _from_json(value: object, expected: str) -> object:
    """A setting given as JSON text (the environment's form), parsed; any other value as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise ValueError(f"must be {expected}") from None


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    stage: str
    region: str = "us-east-1"
    version: str = "0.1.0"
    # Set by local mode and tests: AWS is the embedded fake, and keys come from its local store.
    local_mode: bool = False

    signing_keys_secret: str = ""
    token_issuer: str = ""
    token_audience: str = "stratus-api"
    access_token_ttl_seconds: Annotated[int, Field(ge=60, le=3600)] = 900
    refresh_token_ttl_seconds: Annotated[int, Field(ge=3600, le=90 * 86400)] = 30 * 86400
    # How often, at most, a container reads the revocations recorded since its last look (shared.auth.revocations).
    revocation_refresh_seconds: Annotated[float, Field(ge=0, le=60)] = 2.0

    password_hash_cost: Annotated[int, Field(ge=10, le=20)] = PRODUCTION_PASSWORD_HASH_COST
    login_max_failures: Annotated[int, Field(ge=1)] = 5
    login_lockout_seconds: Annotated[int, Field(ge=1)] = 900
    password_reset_ttl_seconds: Annotated[int, Field(ge=300)] = 3600

    # S3 bucket for payloads too large for a DynamoDB item (long messages); set by CDK and local mode.
    payload_bucket: str = ""
    memory_limit_per_user: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # The daily archiving run archives conversations idle this many days; 0 turns it off.
    archive_conversations_after_days: Annotated[int, Field(ge=0, le=3650)] = 90
    # The audit log keeps an event this many days (its TTL), then DynamoDB deletes it.
    audit_retention_days: Annotated[int, Field(ge=1, le=3650)] = 365

    # Chat limits, per user and per window, and the stage's daily cost ceiling (USD).
    chat_window_seconds: Annotated[int, Field(ge=60, le=31 * 86400)] = 3600
    chat_requests_per_window: Annotated[int, Field(ge=1)] = 120
    chat_tokens_per_window: Annotated[int, Field(ge=1)] = 500_000
    chat_cost_per_window_usd: Annotated[Decimal, Field(gt=0)] = Decimal("10")
    stage_daily_cost_ceiling_usd: Annotated[Decimal, Field(gt=0)] = Decimal("500")
    # How long one model of a playground comparison may take before its part ends with `model_timeout`.
    playground_model_timeout_seconds: Annotated[float, Field(gt=0, le=280)] = 120.0

    cors_allow_origins: tuple[str, ...] = ()

    # MCP: the argv prefixes a stdio server must start with (JSON), a call's deadline, and (dev stages only)
    # whether HTTP servers on loopback and private addresses may be called.
    mcp_stdio_allowed: tuple[tuple[str, ...], ...] = DEFAULT_MCP_STDIO_ALLOWED
    mcp_call_timeout_seconds: Annotated[float, Field(gt=0, le=900)] = 30.0
    mcp_allow_private: bool = False
    # The KMS key (id, ARN or alias) that seals stored secrets (shared.secrets); set by CDK and local mode.
    secrets_key_id: str = ""
    # Channels: the stage's public API base URL (webhook URLs are built on it; CDK sets the HTTP API's, local mode
    # the gateway's), the platforms' API bases (the fakes' in tests), and the inbound queue.
    public_api_url: str = "http://127.0.0.1:8000/api/v1"
    graph_api_base_url: str = "https://graph.facebook.com/v21.0"
    telegram_api_base_url: str = "https://api.telegram.org"
    channels_queue_url: str = ""
    max_body_bytes: Annotated[int, Field(ge=1024)] = 2 * 1024 * 1024
    # The stage's own text-enhancement field types (JSON: {"<id>": {label, system, prompt?, contextKeys?,
    # maxTokens?}}), added to the built-in ones or replacing one of the same id.
    enhance_field_types: dict[str, EnhanceFieldType] = {}
    # The embedder that indexes and searches agents' documents (shared.llm.embeddings); unset, the stage picks one
    # from the providers it has.
    embedding_model: str = ""
    # Outbound webhooks: the first retry's wait (each next one doubles, with jitter; 0 retries at once, for tests),
    # and (dev stages only) whether subscriptions may point at loopback and private addresses.
    webhook_retry_base_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0
    webhooks_allow_private: bool = False
    webhook_deliveries_queue_url: str = ""
    # Analytics: how many partitions a day's counters are split over (a busy stage's writes spread; the dashboards
    # read days x shards items), and how often a container publishes its request and error counts (0: never).
    analytics_shards: Annotated[int, Field(ge=1, le=32)] = 4
    request_counts_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0

    @field_validator("stage")
    @classmethod
    def _stage_is_a_name(cls, stage: str) -> str:
        if not _STAGE.match(stage):
            raise ValueError("must be lowercase letters, digits and dashes, starting with a letter")
        return stage

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    @field_validator("mcp_stdio_allowed", mode="before")
    @classmethod
    def _parse_stdio_allowed(cls, value: object) -> object:
        value = _from_json(value, 'a JSON list of argv prefixes, e.g. [["python", "-m", "x"]]')
        if not isinstance(value, list | tuple) or not all(
            isinstance(entry, list | tuple) and entry and all(isinstance(part, str) and part for part in entry)
            for entry in value
        ):
            raise ValueError("must be a list of non-empty lists of non-empty strings")
        return value

    @field_validator("embedding_model")
    @classmethod
    def _known_embedder(cls, model: str) -> str:
        if model and model not in EMBEDDER_IDS:
            raise ValueError(f"must be one of {', '.join(EMBEDDER_IDS)}")
        return model

    @field_validator("enhance_field_types", mode="before")
    @classmethod
    def _parse_field_types(cls, value: object) -> object:
        value = _from_json(value, 'a JSON object, e.g. {"ticket": {"label": "Ticket", "system": "..."}}')
        if not isinstance(value, dict):
            raise ValueError("must be an object of field types by id")
        bad = sorted(str(name) for name in value if not isinstance(name, str) or not _FIELD_TYPE_ID.match(name))
        if bad:
            raise ValueError(f"field type ids must be lowercase letters, digits and underscores: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _safe_outside_dev(self) -> Settings:
        if not self.token_issuer:
            object.__setattr__(self, "token_issuer", f"stratus-{self.stage}")
        if is_dev_stage(self.stage) or self.local_mode:
            return self
        if self.password_hash_cost < MINIMUM_DEPLOYED_PASSWORD_HASH_COST:
            raise ValueError(f"password_hash_cost below {MINIMUM_DEPLOYED_PASSWORD_HASH_COST} is for dev stages only")
        if self.mcp_allow_private:
            raise ValueError("mcp_allow_private is for dev stages only")
        if self.webhooks_allow_private:
            raise ValueError("webhooks_allow_private is for dev stages only")
        if "*" in self.cors_allow_origins:
            raise ValueError("cors_allow_origins may not be '*' outside dev stages: name the frontends")
        return self

    @property
    def is_dev_stage(self) -> bool:
        return is_dev_stage(self.stage)


def settings_from_environ(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from `STAGE`, `SIGNING_KEYS_SECRET`, `CORS_ALLOW_ORIGINS`, ... (upper-case field names)."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    for name in Settings.model_fields:
        raw = environ.get(name.upper())
        if raw is not None and raw != "":
            values[name] = raw
    values.setdefault("region", environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}" for e in error.errors()
        )
        raise RuntimeError(f"invalid Stratus settings: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_environ()
