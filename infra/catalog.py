"""The functions and routes of Stratus: CDK builds the deployed API from this table, local mode serves it.

Kept free of CDK imports so `make dev` can read it without the CDK toolchain installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from functions.jobs.contexts import JOB_CONTEXTS, WORKFLOWS, JobContext, Workflow
from shared.tables import (
    AGENTS,
    ANALYTICS,
    AUDIT,
    AUDIT_KEY_PREFIX,
    CHANNELS,
    CHAT,
    CONVERSATIONS,
    IDENTITY,
    JOBS,
    MCP,
    MEMORIES,
    REALTIME,
    TABLES,
    WEBHOOKS,
    PartitionGrant,
    TableSpec,
)

API_PREFIX = "/api/v1"

# The export bucket's two prefixes (both expire after 7 days): export archives and their parts, import uploads.
EXPORTS_PREFIX = "exports/"
IMPORTS_PREFIX = "imports/"

BucketAction = Literal["read", "write", "delete", "list"]


@dataclass(frozen=True)
class BucketAccess:
    """What a function may do under one prefix of the export bucket: `read` GetObject (HeadObject, presigned
    downloads), `write` PutObject and multipart uploads (presigned uploads), `delete` DeleteObject, `list`
    ListBucket of that prefix only."""

    prefix: str
    actions: frozenset[BucketAction]


QueueAction = Literal["send", "consume"]


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue of the stage, FIFO when `fifo`, with its dead-letter queue: a message received
    `max_receive_count` times without being deleted moves there. Its URL reaches a function as `env_var`."""

    name: str
    fifo: bool = True
    # At least six times the consumer's timeout (AWS's advice for event sources), so a slow batch is not redelivered.
    visibility_timeout_seconds: int = 1800
    max_receive_count: int = 5
    retention_days: int = 4
    dead_letter_retention_days: int = 14

    @property
    def env_var(self) -> str:
        return f"{self.name.upper().replace('-', '_')}_QUEUE_URL"

    def physical_name(self, stage: str, *, dead_letter: bool = False) -> str:
        return f"stratus-{stage}-{self.name}{'-dlq' if dead_letter else ''}{'.fifo' if self.fifo else ''}"


@dataclass(frozen=True)
class QueueAccess:
    """What a function does with a queue: `send` SendMessage only; `consume` is the queue's event source (receive,
    delete, change visibility, read its attributes), and the function is invoked with its messages."""

    queue: QueueSpec
    action: QueueAction
    # consume: messages a batch holds at most.
    batch_size: int = 10


# Inbound channel messages: one per text message, grouped by (channel, contact), deduplicated by platform id.
CHANNELS_QUEUE = QueueSpec(name="channels")
# What happens in the contexts (shared.events): audit events, webhook events and the analytics' counts, for the
# events function to record, count and fan out. Standard: its consumers are idempotent by event id.
EVENTS_QUEUE = QueueSpec(name="events", fifo=False)
# One webhook delivery (subscription, event, attempt) per message; a retry is the same message sent again with a delay.
WEBHOOK_DELIVERIES_QUEUE = QueueSpec(name="webhook-deliveries", fifo=False)
QUEUES: tuple[QueueSpec, ...] = (CHANNELS_QUEUE, EVENTS_QUEUE, WEBHOOK_DELIVERIES_QUEUE)


@dataclass(frozen=True)
class Route:
    """One API Gateway route. `public` routes skip the authorizer; every other route needs a bearer credential.
    `documented` False: the route's contract is another API's own (the compatible APIs), so it stays out of
    Stratus's OpenAPI document."""

    method: str
    path: str
    public: bool = False
    documented: bool = True

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function: its handler, the routes it serves and exactly the resources it may touch."""

    name: str
    handler: str
    description: str
    routes: tuple[Route, ...] = ()
    # The FastAPI app behind the handler, for the merged OpenAPI document ("module:attribute").
    app: str | None = None
    tables: tuple[TableSpec, ...] = ()
    read_only_tables: tuple[TableSpec, ...] = ()
    # Tables it may only add items to: exactly PutItem, nothing that changes or deletes an item (the audit log's
    # writer). IAM cannot require the put's `attribute_not_exists` condition: the writer's code always sets it.
    append_only_tables: tuple[TableSpec, ...] = ()
    # Actions on the items of some partitions of a table only (dynamodb:LeadingKeys), beyond what `tables` grant.
    partition_grants: tuple[PartitionGrant, ...] = ()
    # Tables the function may only describe (DescribeTable), never read: readiness checks.
    described_tables: tuple[TableSpec, ...] = ()
    reads_signing_keys: bool = False
    # May only describe the signing-key secret, never read it: readiness checks.
    describes_signing_keys: bool = False
    # Reads and writes the stage's payload bucket (content too large for a DynamoDB item).
    uses_payload_bucket: bool = False
    # Served by its ASGI app under uvicorn (Lambda Web Adapter, response streaming) behind a Function URL, not
    # through the HTTP API; the app verifies credentials itself.
    streaming: bool = False
    # Calls LLM providers: reads the provider-key secret (and may call Bedrock where the stage enables it).
    calls_models: bool = False
    # Accepts a principal (verifies a credential, or is handed a verified one): reads the identity table's
    # revocation partition, and the items an API key resolves through (shared.auth.revocations).
    checks_revocations: bool = False
    # Seals and unseals secrets (shared.secrets) of these contexts with the stage's secrets key; only unseals those
    # of `unsealed_secret_contexts`. The key's use is granted for exactly these encryption contexts.
    secret_contexts: tuple[str, ...] = ()
    unsealed_secret_contexts: tuple[str, ...] = ()
    # Prefixes of the stage's export bucket (exports, import uploads) and what it may do under each.
    export_bucket: tuple[BucketAccess, ...] = ()
    # Workflows it starts (states:StartExecution on exactly those state machines; their ARNs in its environment).
    starts_workflows: tuple[Workflow, ...] = ()
    # Searches ("read") or also writes and manages ("write") the indexes of the stage's vector bucket.
    vector_access: Literal["read", "write"] | None = None
    # Serves text enhancement: gets the stage's own field types (`ENHANCE_FIELD_TYPES`) when it has any.
    enhances_text: bool = False
    # The documents bucket (agents' uploads), on `documents/*` only: `read` GetObject (HeadObject), `write`
    # PutObject (presigned uploads), `delete` DeleteObject, `list` ListBucket of that prefix.
    documents_bucket: frozenset[BucketAction] = frozenset()
    # Builds URLs on the stage's public API base URL (channels' webhook URLs): gets `PUBLIC_API_URL`.
    names_public_url: bool = False
    # Queues it sends to or consumes (an SQS event source), as `export_bucket` grants bucket prefixes.
    queues: tuple[QueueAccess, ...] = ()
    # Publishes events (shared.events, shared.audit): may send to the events queue, and nothing else of it.
    publishes_events: bool = False
    # Environment of its own, beyond the resources' names: (name, value) pairs.
    environment: tuple[tuple[str, str], ...] = ()
    layers: tuple[str, ...] = ("base",)
    memory_mb: int = 512
    timeout_seconds: int = 29
    # Lambda's /tmp, where a job's upload is read and its archive assembled (512 MB unless raised).
    tmp_storage_mb: int = 512

    @property
    def queue_accesses(self) -> tuple[QueueAccess, ...]:
        """Its queues, with the events queue's `send` where it publishes events."""
        publishing = (QueueAccess(EVENTS_QUEUE, "send"),) if self.publishes_events else ()
        return (*self.queues, *publishing)


def pascal(name: str) -> str:
    """A catalog name (`realtime-worker`, `read_only`) as a construct id part (`RealtimeWorker`, `ReadOnly`)."""
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def _routes(*specs: tuple[str, str], public: bool = False) -> tuple[Route, ...]:
    return tuple(Route(method, API_PREFIX + path, public) for method, path in specs)


IDENTITY_FUNCTION = FunctionSpec(
    name="identity",
    publishes_events=True,
    handler="functions.identity.handler.lambda_handler",
    app="functions.identity.api:app",
    description="Accounts, sessions, profiles, settings, API keys, users and roles",
    routes=_routes(
        ("POST", "/auth/register"),
        ("POST", "/auth/login"),
        ("POST", "/auth/refresh"),
        ("POST", "/auth/forgot-password"),
        ("POST", "/auth/reset-password"),
        ("GET", "/.well-known/jwks.json"),
        public=True,
    )
    + _routes(
        ("POST", "/auth/logout"),
        ("GET", "/auth/sessions"),
        ("DELETE", "/auth/sessions/{sessionId}"),
        ("GET", "/auth/me"),
        ("GET", "/auth/verify"),
        ("GET", "/users/profile"),
        ("PUT", "/users/profile"),
        ("GET", "/users/settings"),
        ("PUT", "/users/settings"),
        ("GET", "/api-keys"),
        ("POST", "/api-keys"),
        ("DELETE", "/api-keys/{keyId}"),
        ("GET", "/admin/users"),
        ("POST", "/admin/users"),
        ("PUT", "/admin/users/{userId}/roles"),
        ("PUT", "/admin/users/{userId}/status"),
        ("GET", "/admin/roles"),
        ("POST", "/admin/roles"),
        ("DELETE", "/admin/roles/{roleName}"),
        # Checks the password (scrypt wants this function's memory), revokes every credential, then starts the
        # deletion workflow through the jobs context's service.
        ("DELETE", "/users/account"),
    ),
    # The jobs table: the account deletion's job record.
    tables=(IDENTITY, JOBS),
    starts_workflows=("deletion",),
    reads_signing_keys=True,
    checks_revocations=True,
    # scrypt at its production cost takes 128 MiB and ~0.6 s of one core per hash: 1,769 MB is one full vCPU.
    memory_mb=1769,
)

JOBS_FUNCTION = FunctionSpec(
    name="jobs",
    publishes_events=True,
    handler="functions.jobs.handler.lambda_handler",
    app="functions.jobs.api:app",
    description="Export, import, account deletion and archiving jobs: starts their workflows, reports progress",
    routes=_routes(
        ("POST", "/users/export"),
        ("GET", "/users/export/{jobId}"),
        ("GET", "/users/jobs"),
        ("POST", "/users/import"),
        ("POST", "/users/import/{jobId}/start"),
        ("GET", "/users/import/{jobId}"),
        ("GET", "/admin/jobs"),
        ("GET", "/admin/jobs/{jobId}"),
        ("POST", "/admin/jobs/archive"),
    ),
    tables=(JOBS,),
    # Presigns the archive's download and the upload's PUT, and checks the upload's size (HeadObject) at start:
    # without ListBucket on the prefix S3 answers a missing upload 403, not 404.
    export_bucket=(
        BucketAccess(EXPORTS_PREFIX, frozenset({"read"})),
        BucketAccess(IMPORTS_PREFIX, frozenset({"read", "write", "list"})),
    ),
    starts_workflows=WORKFLOWS,
    checks_revocations=True,
)

HEALTH_FUNCTION = FunctionSpec(
    name="health",
    handler="functions.health.handler.lambda_handler",
    app="functions.health.api:app",
    description="Liveness, readiness and dependency health",
    routes=_routes(
        ("GET", "/health"),
        ("GET", "/health/ready"),
        ("GET", "/health/detailed"),
        ("GET", "/health/info"),
        public=True,
    )
    # Today's counters for Prometheus: a scraper's API key needs analytics.read.
    + _routes(("GET", "/health/metrics")),
    described_tables=TABLES,
    read_only_tables=(ANALYTICS,),
    checks_revocations=True,
    describes_signing_keys=True,
    memory_mb=256,
    timeout_seconds=10,
)

CONVERSATIONS_FUNCTION = FunctionSpec(
    name="conversations",
    publishes_events=True,
    handler="functions.conversations.handler.lambda_handler",
    app="functions.conversations.api:app",
    description="Conversations and their messages, projects and their members, saved prompts",
    routes=_routes(
        ("POST", "/conversations"),
        ("GET", "/conversations"),
        ("GET", "/conversations/stats"),
        ("GET", "/conversations/search"),
        ("GET", "/conversations/{conversationId}"),
        ("PUT", "/conversations/{conversationId}"),
        ("DELETE", "/conversations/{conversationId}"),
        ("POST", "/conversations/{conversationId}/archive"),
        ("POST", "/conversations/{conversationId}/unarchive"),
        ("GET", "/conversations/{conversationId}/messages"),
        ("POST", "/conversations/{conversationId}/messages"),
        ("POST", "/projects"),
        ("GET", "/projects"),
        ("GET", "/projects/{projectId}"),
        ("PUT", "/projects/{projectId}"),
        ("DELETE", "/projects/{projectId}"),
        ("POST", "/projects/{projectId}/members"),
        ("GET", "/projects/{projectId}/members"),
        ("DELETE", "/projects/{projectId}/members/{userId}"),
        ("POST", "/prompts"),
        ("GET", "/prompts"),
        ("GET", "/prompts/{promptId}"),
        ("PUT", "/prompts/{promptId}"),
        ("DELETE", "/prompts/{promptId}"),
    ),
    tables=(CONVERSATIONS,),
    # Sharing a project names members by email: identity's service resolves them.
    read_only_tables=(IDENTITY,),
    uses_payload_bucket=True,
    checks_revocations=True,
    memory_mb=1024,
)

MEMORIES_FUNCTION = FunctionSpec(
    name="memories",
    publishes_events=True,
    handler="functions.memories.handler.lambda_handler",
    app="functions.memories.api:app",
    description="Long-term memories injected into prompts",
    routes=_routes(
        ("POST", "/memories"),
        ("GET", "/memories"),
        ("GET", "/memories/active"),
        ("GET", "/memories/stats"),
        ("GET", "/memories/search"),
        ("POST", "/memories/bulk-import"),
        ("GET", "/memories/{memoryId}"),
        ("PUT", "/memories/{memoryId}"),
        ("DELETE", "/memories/{memoryId}"),
        ("POST", "/memories/{memoryId}/archive"),
        ("POST", "/memories/{memoryId}/restore"),
    ),
    tables=(MEMORIES,),
    checks_revocations=True,
)

MCP_FUNCTION = FunctionSpec(
    name="mcp",
    publishes_events=True,
    handler="functions.mcp.handler.lambda_handler",
    app="functions.mcp.api:app",
    description="MCP server registry; live tools, resources, prompts, tool calls and health",
    routes=_routes(
        ("POST", "/mcp/servers"),
        ("GET", "/mcp/servers"),
        ("GET", "/mcp/servers/{serverId}"),
        ("PUT", "/mcp/servers/{serverId}"),
        ("DELETE", "/mcp/servers/{serverId}"),
        ("GET", "/mcp/servers/{serverId}/health"),
        ("GET", "/mcp/servers/{serverId}/tools"),
        ("GET", "/mcp/servers/{serverId}/resources"),
        ("GET", "/mcp/servers/{serverId}/resources/read"),
        ("GET", "/mcp/servers/{serverId}/prompts"),
        ("POST", "/mcp/servers/{serverId}/prompts/{promptName}/get"),
        ("POST", "/mcp/servers/{serverId}/tools/{toolName}/call"),
    ),
    tables=(MCP,),
    checks_revocations=True,
    secret_contexts=("mcp",),
    # It imports mcp (lazily, on the live routes) and spawns the stdio servers the stage ships (the mcp-servers
    # layer, as chat does).
    layers=("base", "ai", "mcp-servers"),
    memory_mb=1024,
    # The HTTP API answers 503 at 30 s whatever the function does, so the function stops at 29 s and the live
    # routes run under tighter MCP deadlines than chat's (functions.mcp.service.ROUTE_LIMITS): a slow server gets
    # our 504 `mcp_timeout`, with a message, before API Gateway cuts the request.
    timeout_seconds=29,
)

CHANNELS_FUNCTION = FunctionSpec(
    name="channels",
    publishes_events=True,
    handler="functions.channels.handler.lambda_handler",
    app="functions.channels.api:app",
    description="Messaging channels (WhatsApp, Messenger, Telegram): connect, change, test",
    routes=_routes(
        ("POST", "/channels"),
        ("GET", "/channels"),
        ("GET", "/channels/{channelId}"),
        ("PUT", "/channels/{channelId}"),
        ("DELETE", "/channels/{channelId}"),
        ("POST", "/channels/{channelId}/test"),
    ),
    tables=(CHANNELS,),
    # A channel's agent must be one of the stage's (the agents context's service reads it).
    read_only_tables=(AGENTS,),
    checks_revocations=True,
    secret_contexts=("channels",),
    names_public_url=True,
    # `test` calls the platforms with httpx2 (the ai layer).
    layers=("base", "ai"),
)

# Public by contract, verified by each platform's own scheme before anything else; it may read channels, open
# their secrets and queue what they received, nothing more.
CHANNEL_WEBHOOKS_FUNCTION = FunctionSpec(
    name="channel-webhooks",
    handler="functions.channels.webhook_handler.lambda_handler",
    app="functions.channels.webhooks:app",
    description="Messaging platforms' webhooks: verified, acknowledged, queued",
    routes=_routes(
        ("GET", "/webhooks/whatsapp/{channelId}"),
        ("GET", "/webhooks/messenger/{channelId}"),
        ("POST", "/webhooks/whatsapp/{channelId}"),
        ("POST", "/webhooks/messenger/{channelId}"),
        ("POST", "/webhooks/telegram/{channelId}"),
        public=True,
    ),
    read_only_tables=(CHANNELS,),
    unsealed_secret_contexts=("channels",),
    queues=(QueueAccess(CHANNELS_QUEUE, "send"),),
    memory_mb=256,
    timeout_seconds=10,
)

USAGE_FUNCTION = FunctionSpec(
    name="usage",
    handler="functions.usage.handler.lambda_handler",
    app="functions.usage.api:app",
    description="Usage statistics and the dashboard",
    routes=_routes(("GET", "/users/usage-stats"), ("GET", "/users/dashboard")),
    # The dashboard counts conversations and memories through their contexts' services.
    read_only_tables=(CHAT, CONVERSATIONS, MEMORIES),
    checks_revocations=True,
)

CHAT_FUNCTION = FunctionSpec(
    name="chat",
    publishes_events=True,
    # The Lambda Web Adapter runs this script, which starts uvicorn on the app.
    handler="functions/chat/run.sh",
    app="functions.chat.api:app",
    description="Chat replies streamed from LLM providers with failover",
    routes=(
        *_routes(
            ("POST", "/ai/chat/stream"),
            ("GET", "/ai/chat/stream/{messageId}"),
            ("POST", "/ai/chat/{messageId}/cancel"),
            ("POST", "/ai/chat"),
            ("POST", "/ai/chat/{messageId}/tool-approvals"),
            ("POST", "/ai/stream-tickets"),
            ("GET", "/ai/models"),
            ("GET", "/ai/health"),
            ("POST", "/ai/playground"),
            ("GET", "/ai/playground/sessions"),
            ("GET", "/ai/playground/sessions/{sessionId}"),
            ("DELETE", "/ai/playground/sessions/{sessionId}"),
            ("GET", "/ai/enhance/field-types"),
            ("POST", "/ai/enhance"),
            ("GET", "/ai/stream/{sessionId}"),
            ("GET", "/ai/session/{sessionId}"),
            ("DELETE", "/ai/session/{sessionId}"),
            ("GET", "/ai/usage"),
            # Trying an agent is a reply: generated here, grounded in the agent's documents.
            ("POST", "/agents/{agentId}/test"),
        ),
        # The OpenAI- and Anthropic-compatible APIs, where their SDKs look for them: `<stage>/v1`.
        *(
            Route(method, path, documented=False)
            for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/v1/messages"))
        ),
    ),
    tables=(CHAT, CONVERSATIONS),
    # The MCP registry and its header secrets: chat connects to the servers a user enabled.
    # The agents table: a reply with an agent reads it (functions.agents.service, through chat's grounding).
    read_only_tables=(IDENTITY, MEMORIES, MCP, AGENTS),
    # A reply grounded in an agent queries the agent's index (`functions.chat.grounding`).
    vector_access="read",
    unsealed_secret_contexts=("mcp",),
    reads_signing_keys=True,
    uses_payload_bucket=True,
    streaming=True,
    calls_models=True,
    enhances_text=True,
    checks_revocations=True,
    # The stdio MCP servers the stage allows by default run from the mcp-servers layer.
    layers=("base", "ai", "mcp-servers"),
    memory_mb=1024,
    # A long reply may stream for minutes; the Function URL has no 30-second integration limit.
    timeout_seconds=300,
)

# The HTTP API's Lambda authorizer: verifies access tokens and API keys with the shared verification.
AUTHORIZER_FUNCTION = FunctionSpec(
    name="authorizer",
    handler="functions.identity.authorizer.lambda_handler",
    description="HTTP API authorizer: access tokens and API keys",
    read_only_tables=(IDENTITY,),
    reads_signing_keys=True,
    checks_revocations=True,
    memory_mb=256,
    timeout_seconds=5,
)

AGENTS_FUNCTION = FunctionSpec(
    name="agents",
    publishes_events=True,
    handler="functions.agents.handler.lambda_handler",
    app="functions.agents.api:app",
    description="Agents, their documents (presigned uploads, status, reprocessing) and semantic search",
    routes=_routes(
        ("POST", "/agents"),
        ("GET", "/agents"),
        ("GET", "/agents/{agentId}"),
        ("PUT", "/agents/{agentId}"),
        ("DELETE", "/agents/{agentId}"),
        ("POST", "/agents/{agentId}/documents"),
        ("GET", "/agents/{agentId}/documents"),
        ("GET", "/agents/{agentId}/documents/{documentId}"),
        ("DELETE", "/agents/{agentId}/documents/{documentId}"),
        ("POST", "/agents/{agentId}/documents/{documentId}/process"),
        ("POST", "/agents/{agentId}/search"),
    ),
    tables=(AGENTS,),
    # An agent's MCP servers must be servers of the stage: read through the MCP registry's store.
    read_only_tables=(MCP,),
    # Presigns uploads, checks an upload landed before reprocessing it, deletes documents' files (an agent's
    # under its prefix). Search embeds the query with the stage's embedder: an OpenAI key or Bedrock.
    documents_bucket=frozenset({"read", "write", "delete", "list"}),
    # Search queries the agent's index; deleting a document or an agent deletes its vectors or its index.
    vector_access="write",
    calls_models=True,
    checks_revocations=True,
    # The embedding providers' SDKs.
    layers=("base", "ai"),
    memory_mb=1024,
)

# Invoked by the documents bucket's ObjectCreated notification (documents/) and, asynchronously, by a reprocess.
AGENTS_PROCESSOR_FUNCTION = FunctionSpec(
    name="agents-processor",
    publishes_events=True,
    handler="functions.agents.processor.lambda_handler",
    description="Processes uploaded documents: extract, chunk, embed, index",
    tables=(AGENTS,),
    documents_bucket=frozenset({"read", "delete"}),
    vector_access="write",
    calls_models=True,
    layers=("base", "ai", "documents"),
    memory_mb=2048,
    timeout_seconds=300,
)

WEBHOOKS_FUNCTION = FunctionSpec(
    name="webhooks",
    publishes_events=True,
    handler="functions.webhooks.handler.lambda_handler",
    app="functions.webhooks.api:app",
    description="Outbound webhook subscriptions, their test ping and delivery log",
    routes=_routes(
        ("POST", "/webhook-subscriptions"),
        ("GET", "/webhook-subscriptions"),
        ("GET", "/webhook-subscriptions/{subscriptionId}"),
        ("PUT", "/webhook-subscriptions/{subscriptionId}"),
        ("DELETE", "/webhook-subscriptions/{subscriptionId}"),
        ("POST", "/webhook-subscriptions/{subscriptionId}/test"),
        ("GET", "/webhook-subscriptions/{subscriptionId}/deliveries"),
    ),
    tables=(WEBHOOKS,),
    # Seals a subscription's secret at creation; unseals it to sign the test ping.
    secret_contexts=("webhooks",),
    checks_revocations=True,
    memory_mb=512,
)

AUDIT_FUNCTION = FunctionSpec(
    name="audit",
    handler="functions.audit.handler.lambda_handler",
    app="functions.audit.api:app",
    description="The audit log: a user's own security events, the stage's for auditors",
    routes=_routes(("GET", "/audit"), ("GET", "/admin/audit")),
    # Read only: the events function's writer alone adds events, and nothing changes them.
    read_only_tables=(AUDIT,),
    # Opens the users' data keys, to show their events' personal fields.
    unsealed_secret_contexts=("audit",),
    checks_revocations=True,
    memory_mb=512,
)

# Functions of the knowledge pipeline (infra.knowledge): invoked by S3 and asynchronously, serving no route.
KNOWLEDGE_FUNCTIONS: tuple[FunctionSpec, ...] = (AGENTS_PROCESSOR_FUNCTION,)

ANALYTICS_FUNCTION = FunctionSpec(
    name="analytics",
    handler="functions.analytics.handler.lambda_handler",
    app="functions.analytics.api:app",
    description="The stage's dashboard and breakdowns, read from the per-day counters",
    routes=_routes(
        ("GET", "/analytics/dashboard"),
        ("GET", "/analytics/models"),
        ("GET", "/analytics/agents"),
        ("GET", "/analytics/channels"),
        ("GET", "/analytics/conversations"),
    ),
    read_only_tables=(ANALYTICS,),
    checks_revocations=True,
    memory_mb=512,
)

# Functions that serve routes, in the order CDK creates them.
HTTP_FUNCTIONS: tuple[FunctionSpec, ...] = (
    IDENTITY_FUNCTION,
    CONVERSATIONS_FUNCTION,
    MEMORIES_FUNCTION,
    MCP_FUNCTION,
    USAGE_FUNCTION,
    JOBS_FUNCTION,
    HEALTH_FUNCTION,
    AGENTS_FUNCTION,
    CHANNELS_FUNCTION,
    CHANNEL_WEBHOOKS_FUNCTION,
    WEBHOOKS_FUNCTION,
    AUDIT_FUNCTION,
    ANALYTICS_FUNCTION,
)

# Functions served by their own ASGI app (response streaming), outside the HTTP API.
STREAMING_FUNCTIONS: tuple[FunctionSpec, ...] = (CHAT_FUNCTION,)

# Seconds API Gateway caches an authorizer answer per Authorization header.
AUTHORIZER_CACHE_SECONDS = 300


# -- WebSocket API ---------------------------------------------------------------------------------------------
# Served by API Gateway's WebSocket API, not the HTTP API: these functions have no HTTP routes.

# Client actions, routed by the route selection expression `$request.body.action` (API.md, WebSocket).
WEBSOCKET_ACTIONS: tuple[str, ...] = (
    "chat:send", "chat:resume", "chat:cancel", "chat:typing", "chat:tool-approval", "conversation:join",
    "conversation:leave", "ping",
)  # fmt: skip
WEBSOCKET_ROUTE_SELECTION = "$request.body.action"
# Where the local gateway accepts WebSocket connections (`ws://127.0.0.1:8000/ws?token=...`).
WEBSOCKET_LOCAL_PATH = "/ws"

WEBSOCKET_AUTHORIZER_FUNCTION = FunctionSpec(
    name="realtime-authorizer",
    handler="functions.realtime.connect.lambda_handler",
    description="WebSocket $connect authorizer: the ?token= access token or API key",
    read_only_tables=(IDENTITY,),
    reads_signing_keys=True,
    checks_revocations=True,
    memory_mb=256,
    timeout_seconds=5,
)

WEBSOCKET_HANDLER_FUNCTION = FunctionSpec(
    name="realtime",
    publishes_events=True,
    handler="functions.realtime.handler.lambda_handler",
    description="WebSocket connections, rooms, presence, typing; hands chat replies to the worker",
    # The chat table: `chat:tool-approval` answers a reply's pending tool call.
    tables=(REALTIME, CHAT),
    # Joining a room checks that the user may read the conversation (conversations' service).
    read_only_tables=(CONVERSATIONS,),
    # Every frame re-checks the principal stored at connect.
    checks_revocations=True,
)

WEBSOCKET_WORKER_FUNCTION = FunctionSpec(
    name="realtime-worker",
    publishes_events=True,
    handler="functions.realtime.worker.lambda_handler",
    description="Streams chat replies to WebSocket connections",
    # What chat needs to produce a reply, plus the realtime table (a gone connection is removed).
    tables=(*CHAT_FUNCTION.tables, REALTIME),
    read_only_tables=CHAT_FUNCTION.read_only_tables,
    vector_access=CHAT_FUNCTION.vector_access,
    unsealed_secret_contexts=CHAT_FUNCTION.unsealed_secret_contexts,
    # Not the signing keys: the worker is handed a principal the $connect authorizer verified; it checks no token.
    uses_payload_bucket=CHAT_FUNCTION.uses_payload_bucket,
    calls_models=True,
    checks_revocations=True,
    layers=CHAT_FUNCTION.layers,
    memory_mb=CHAT_FUNCTION.memory_mb,
    timeout_seconds=CHAT_FUNCTION.timeout_seconds,
)

WEBSOCKET_FUNCTIONS: tuple[FunctionSpec, ...] = (
    WEBSOCKET_AUTHORIZER_FUNCTION,
    WEBSOCKET_HANDLER_FUNCTION,
    WEBSOCKET_WORKER_FUNCTION,
)


# -- Queue workers ---------------------------------------------------------------------------------------------

CHANNELS_WORKER_FUNCTION = FunctionSpec(
    name="channels-worker",
    publishes_events=True,
    handler="functions.channels.worker.lambda_handler",
    description="Answers inbound channel messages through the reply generator and sends them to the platforms",
    # What chat needs to produce a reply, the channels table (dedupe, contact map) and identity to act as the
    # channel's owner (their roles, to build their principal).
    tables=(*CHAT_FUNCTION.tables, CHANNELS),
    read_only_tables=CHAT_FUNCTION.read_only_tables,
    vector_access=CHAT_FUNCTION.vector_access,
    unsealed_secret_contexts=(*CHAT_FUNCTION.unsealed_secret_contexts, "channels"),
    uses_payload_bucket=CHAT_FUNCTION.uses_payload_bucket,
    calls_models=True,
    checks_revocations=True,
    queues=(QueueAccess(CHANNELS_QUEUE, "consume"),),
    layers=CHAT_FUNCTION.layers,
    memory_mb=CHAT_FUNCTION.memory_mb,
    timeout_seconds=CHAT_FUNCTION.timeout_seconds,
)

# Reads the events queue (shared.events) and hands each event to its consumers (functions.events.handler).
EVENTS_FUNCTION = FunctionSpec(
    name="events",
    handler="functions.events.handler.lambda_handler",
    description="Events of every context: the audit log's writer, the analytics counters, the webhooks fan-out",
    queues=(
        QueueAccess(EVENTS_QUEUE, "consume"),
        # The webhooks fan-out: one message per delivery.
        QueueAccess(WEBHOOK_DELIVERIES_QUEUE, "send"),
    ),
    # The webhooks fan-out: reads the subscriptions an event reaches, puts one delivery item each. The analytics
    # counters: TransactWriteItems of markers and ADDs (functions.analytics.store).
    tables=(WEBHOOKS, ANALYTICS),
    # The audit writer: puts events (never changes one), reads and makes the users' data keys (sealed: "audit").
    append_only_tables=(AUDIT,),
    partition_grants=(PartitionGrant(AUDIT, AUDIT_KEY_PREFIX, ("dynamodb:Query",)),),
    secret_contexts=("audit",),
    memory_mb=512,
    timeout_seconds=60,
)

# Makes one attempt per message (signed POST through the outbound guard); a retry is the message sent again with a
# delay. Its timeout covers a batch of slow receivers (10 s each, ten at once).
WEBHOOK_DELIVERY_FUNCTION = FunctionSpec(
    name="webhook-delivery",
    handler="functions.webhooks.worker.lambda_handler",
    description="Outbound webhooks: signs and POSTs each delivery, retries with backoff, disables what fails 24 h",
    tables=(WEBHOOKS,),
    unsealed_secret_contexts=("webhooks",),
    queues=(QueueAccess(WEBHOOK_DELIVERIES_QUEUE, "consume"), QueueAccess(WEBHOOK_DELIVERIES_QUEUE, "send")),
    # A subscription disabled after 24 hours of failures is told in the audit log (`webhook.disabled`).
    publishes_events=True,
    memory_mb=256,
    timeout_seconds=60,
)

QUEUE_FUNCTIONS: tuple[FunctionSpec, ...] = (CHANNELS_WORKER_FUNCTION, EVENTS_FUNCTION, WEBHOOK_DELIVERY_FUNCTION)


def all_routes() -> list[tuple[Route, FunctionSpec]]:
    return [(route, spec) for spec in HTTP_FUNCTIONS for route in spec.routes]


# -- Jobs: export, import, account deletion, archiving (Step Functions) --------------------------------------------


# A task may run for minutes (a page is bounded work, far below this); the state machine loops over pages.
JOB_TASK_TIMEOUT_SECONDS = 300


def job_task_function(context: JobContext) -> FunctionSpec:
    """The task function that runs `context`'s pages: exactly its tables and buckets, and its archive parts."""
    exports: set[BucketAction] = set()
    imports: set[BucketAction] = set()
    if "export" in context.workflows:
        exports.add("write")  # its archive parts
    if context.uses_export_bucket:
        # Deleting an account deletes the user's other jobs' files: archives, their parts and uploads.
        exports |= {"delete", "list"}
        imports |= {"delete", "list"}
    grants = tuple(
        BucketAccess(prefix, frozenset(actions))
        for prefix, actions in ((EXPORTS_PREFIX, exports), (IMPORTS_PREFIX, imports))
        if actions
    )
    return FunctionSpec(
        name=f"jobs-{context.name}",
        handler="functions.jobs.tasks.context_task",
        description=f"Jobs: the {context.name} context's pages of export, deletion, archiving",
        tables=context.tables,
        read_only_tables=context.read_only_tables,
        partition_grants=context.partition_grants,
        unsealed_secret_contexts=context.unsealed_secret_contexts,
        uses_payload_bucket=context.uses_payload_bucket,
        export_bucket=grants,
        environment=(("JOB_CONTEXT", context.name),),
        publishes_events=True,
        memory_mb=1024,
        timeout_seconds=JOB_TASK_TIMEOUT_SECONDS,
    )


_IMPORTING_CONTEXTS = tuple(context for context in JOB_CONTEXTS if context.imports)

JOB_IMPORT_FUNCTION = FunctionSpec(
    name="jobs-import",
    publishes_events=True,
    handler="functions.jobs.tasks.import_task",
    description="Jobs: reads an uploaded export a page at a time and hands its items to their contexts",
    tables=tuple(dict.fromkeys(table for context in _IMPORTING_CONTEXTS for table in context.tables)),
    uses_payload_bucket=any(context.uses_payload_bucket for context in _IMPORTING_CONTEXTS),
    export_bucket=(BucketAccess(IMPORTS_PREFIX, frozenset({"read"})),),
    # The upload is downloaded to /tmp (the readers need a seekable file) and read a page at a time.
    memory_mb=2048,
    tmp_storage_mb=1024,
    timeout_seconds=JOB_TASK_TIMEOUT_SECONDS,
)

JOB_STEPS_FUNCTION = FunctionSpec(
    name="jobs-steps",
    publishes_events=True,
    handler="functions.jobs.steps.lambda_handler",
    description="Jobs: the job record's steps (begin, progress, finish, fail) and the export archive's assembly",
    tables=(JOBS,),
    # Assembling the archive reads and deletes the parts and writes export.zip.
    export_bucket=(BucketAccess(EXPORTS_PREFIX, frozenset({"read", "write", "delete", "list"})),),
    memory_mb=1024,
    # The archive is assembled in /tmp before it is uploaded.
    tmp_storage_mb=4096,
    timeout_seconds=JOB_TASK_TIMEOUT_SECONDS,
)

# Every function the workflows invoke; none serves a route.
JOB_TASK_FUNCTIONS: tuple[FunctionSpec, ...] = (
    *(job_task_function(context) for context in JOB_CONTEXTS),
    JOB_IMPORT_FUNCTION,
    JOB_STEPS_FUNCTION,
)
