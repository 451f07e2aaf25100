"""The one source of truth for every DynamoDB table: CDK, local mode, tests and the storage models read it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Index:
    """A global secondary index keyed by two string attributes, projecting every attribute."""

    name: str
    partition_key: str
    sort_key: str


@dataclass(frozen=True)
class TableSpec:
    """A context's table: single-table design on string `pk`/`sk`, a GSI per access pattern."""

    context: str
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = "ttl"
    partition_key: str = "pk"
    sort_key: str = "sk"
    stream: bool = False
    key_attributes: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [self.partition_key, self.sort_key]
        for index in self.indexes:
            names += [index.partition_key, index.sort_key]
        object.__setattr__(self, "key_attributes", tuple(dict.fromkeys(names)))

    def index(self, name: str) -> Index:
        return next(index for index in self.indexes if index.name == name)

    @property
    def env_var(self) -> str:
        """The environment variable that carries the table's name into a function."""
        return f"{self.context.upper()}_TABLE"

    def physical_name(self, stage: str) -> str:
        return f"stratus-{stage}-{self.context}"

    def name_from_env(self) -> str:
        name = os.environ.get(self.env_var)
        if not name:
            raise RuntimeError(f"{self.env_var} is not set: the function was deployed without its table")
        return name

    def create_table_request(self, table_name: str) -> dict[str, Any]:
        """The `CreateTable` arguments local mode and tests use (CDK builds the same table from this spec)."""
        request: dict[str, Any] = {
            "TableName": table_name,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in self.key_attributes],
            "KeySchema": [
                {"AttributeName": self.partition_key, "KeyType": "HASH"},
                {"AttributeName": self.sort_key, "KeyType": "RANGE"},
            ],
        }
        if self.indexes:
            request["GlobalSecondaryIndexes"] = [
                {
                    "IndexName": index.name,
                    "KeySchema": [
                        {"AttributeName": index.partition_key, "KeyType": "HASH"},
                        {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for index in self.indexes
            ]
        return request


IDENTITY = TableSpec(
    context="identity",
    # gsi1: users in sign-up order (admin listing), a user's API keys, the stage's custom roles.
    indexes=(Index("gsi1", "gsi1pk", "gsi1sk"),),
)

CONVERSATIONS = TableSpec(
    context="conversations",
    indexes=(
        # gsi1: a user's conversations by last activity (one partition for active, one for archived), a user's
        # projects (owned and shared), a user's saved prompts.
        Index("gsi1", "gsi1pk", "gsi1sk"),
        # gsi2: a project's conversations by last activity.
        Index("gsi2", "gsi2pk", "gsi2sk"),
        # gsi3: every message of a user's own conversations, for search.
        Index("gsi3", "gsi3pk", "gsi3sk"),
        # gsi4 (sparse): unarchived conversations by day of last activity, sharded, for the archiving run; and
        # the messages a user wrote in others' conversations, for their account's deletion.
        Index("gsi4", "gsi4pk", "gsi4sk"),
    ),
)

MEMORIES = TableSpec(
    context="memories",
    indexes=(
        # gsi1: a user's active, unarchived memories by priority (sparse: only those memories carry its keys).
        Index("gsi1", "gsi1pk", "gsi1sk"),
        # gsi2: unarchived memories with an expiry, by expiry day (sparse), for the daily archiving run.
        Index("gsi2", "gsi2pk", "gsi2sk"),
    ),
)

CHAT = TableSpec(context="chat")

REALTIME = TableSpec(
    context="realtime",
    # gsi1: a user's open WebSocket connections. A room's members are one partition of the base table.
    indexes=(Index("gsi1", "gsi1pk", "gsi1sk"),),
)

# The MCP server registry: the stage's servers are one partition, each user's own servers another, so either
# listing is one Query; the names taken (unique among what one user can see) are items of their own.
MCP = TableSpec(context="mcp")

# Export, import, deletion and archiving jobs: a job is one item; gsi1 lists a user's jobs newest first, gsi2 the
# stage's (the admin view).
JOBS = TableSpec(context="jobs", indexes=(Index("gsi1", "gsi1pk", "gsi1sk"), Index("gsi2", "gsi2pk", "gsi2sk")))

# Agents and their documents: the stage's agents are one partition, each agent's documents another; gsi1 lists the
# agents a user created (their export), sparse.
AGENTS = TableSpec(context="agents", indexes=(Index("gsi1", "gsi1pk", "gsi1sk"),))

# Messaging channels (WhatsApp, Messenger, Telegram): a channel and everything of it is one partition (the channel,
# its (contact -> conversation) map, the platform message ids it has processed, kept a week by TTL); gsi1 lists a
# user's channels.
CHANNELS = TableSpec(context="channels", indexes=(Index("gsi1", "gsi1pk", "gsi1sk"),))

# The audit log, append-only: a user's events are one partition; gsi1 is the stage's events by time, in partitions of
# one time bucket each (so a page is one Query), for the auditor's view. Each user's event-encryption key is an item of
# its own, deleted with the account (the events stay, pseudonymised).
AUDIT = TableSpec(context="audit", indexes=(Index("gsi1", "gsi1pk", "gsi1sk"),))

# Outbound webhooks: subscriptions (a user's own in their partition, the stage's in one), each one's deliveries; gsi1
# finds the subscriptions an event type reaches.
WEBHOOKS = TableSpec(context="webhooks", indexes=(Index("gsi1", "gsi1pk", "gsi1sk"),))

# Per-day counters of the stage, by dimension (model, agent, channel, conversation length), sharded where hot.
ANALYTICS = TableSpec(context="analytics")


@dataclass(frozen=True)
class PartitionGrant:
    """DynamoDB actions on the items of one table whose partition key starts with `prefix` only (IAM's
    `dynamodb:LeadingKeys`): the audit log's keys, deleted with an account while its events stay."""

    table: TableSpec
    prefix: str
    actions: tuple[str, ...]


# The audit log's per-user data keys (functions.audit.store): `KEY#<user>` partitions.
AUDIT_KEY_PREFIX = "KEY#"

TABLES: tuple[TableSpec, ...] = (
    IDENTITY, CONVERSATIONS, MEMORIES, CHAT, REALTIME, MCP, JOBS, AGENTS, CHANNELS, AUDIT, WEBHOOKS, ANALYTICS,
)  # fmt: skip


def create_tables(dynamodb_client: Any, stage: str) -> dict[str, str]:
    """Create every table (local mode and tests); returns the environment that points functions at them."""
    env = {}
    for spec in TABLES:
        name = spec.physical_name(stage)
        dynamodb_client.create_table(**spec.create_table_request(name))
        if spec.ttl_attribute:
            dynamodb_client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute}
            )
        env[spec.env_var] = name
    return env
