"""The contexts every job workflow maps over, listed once: CDK builds each context's task function and the state
machines from this list (`infra.catalog`, `infra.workflows`), and the task and step functions dispatch through
it. Plain data, so a deployed function reads the same list CDK built it from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.tables import (
    AGENTS,
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
    PartitionGrant,
    TableSpec,
)
from shared.tables import WEBHOOKS as WEBHOOKS_TABLE

Workflow = Literal["export", "import", "deletion", "archive"]
WORKFLOWS: tuple[Workflow, ...] = ("export", "import", "deletion", "archive")


def workflow_env_var(workflow: Workflow) -> str:
    """The variable naming a workflow's state machine to the functions that start it (`EXPORT_WORKFLOW_ARN`)."""
    return f"{workflow.upper()}_WORKFLOW_ARN"


@dataclass(frozen=True)
class JobContext:
    """A context's part in the jobs workflows, listed once: every workflow it takes part in maps over it.

    Its pages run in a task function of its own (`jobs-<name>`, handler `functions.jobs.tasks.context_task`) that
    may touch exactly `tables` and, where `uses_payload_bucket`, the payload bucket; `module` implements the
    protocols of `functions.jobs.ports` for the workflows it is in.
    """

    name: str
    module: str
    tables: tuple[TableSpec, ...]
    workflows: frozenset[Workflow]
    uses_payload_bucket: bool = False
    uses_export_bucket: bool = False
    imports: tuple[str, ...] = ()
    """The kinds of imported item it stores (`functions.jobs.formats.items`): project, conversation, prompt, memory."""
    last: bool = False
    """Deletion runs it after every other context, in the order listed, instead of alongside them."""
    read_only_tables: tuple[TableSpec, ...] = ()
    partition_grants: tuple[PartitionGrant, ...] = ()
    """What its task may do beyond `tables`: read these, act on these partitions only (the audit log's keys)."""
    unsealed_secret_contexts: tuple[str, ...] = ()


JOB_CONTEXTS: tuple[JobContext, ...] = (
    JobContext(
        "conversations",
        "functions.conversations.jobs",
        (CONVERSATIONS,),
        frozenset({"export", "import", "deletion", "archive"}),
        uses_payload_bucket=True,
        imports=("project", "conversation", "prompt"),
    ),
    JobContext(
        "memories",
        "functions.memories.jobs",
        (MEMORIES,),
        frozenset({"export", "import", "deletion", "archive"}),
        imports=("memory",),
    ),
    JobContext("usage", "functions.usage.jobs", (CHAT,), frozenset({"export", "deletion"})),
    # Chat's own items of a user (limit windows, playground comparisons, enhancement sessions); their usage is the
    # usage context's.
    JobContext("chat", "functions.chat.jobs", (CHAT,), frozenset({"export", "deletion"}), uses_payload_bucket=True),
    JobContext("realtime", "functions.realtime.jobs", (REALTIME,), frozenset({"deletion"})),
    JobContext("mcp", "functions.mcp.jobs", (MCP,), frozenset({"export", "deletion"})),
    # The agents a user created: exported; at deletion they stay with the stage, no longer naming their creator.
    JobContext("agents", "functions.agents.jobs", (AGENTS,), frozenset({"export", "deletion"})),
    # The user's channels (secrets masked in the export) and their contact maps; their conversations are above.
    JobContext("channels", "functions.channels.jobs", (CHANNELS,), frozenset({"export", "deletion"})),
    # The user's own webhook subscriptions (exported without their secret), deleted with deliveries and log.
    JobContext("webhooks", "functions.webhooks.jobs", (WEBHOOKS_TABLE,), frozenset({"export", "deletion"})),
    # The user's audit log: exported; at deletion the events stay (append-only, the legal hold) and only the user's
    # data key is deleted, so their personal fields no longer open. Its task reads the log and may delete nothing
    # but keys. Late in the deletion, so events recorded while it runs are sealed with the key it then deletes.
    JobContext(
        "audit",
        "functions.audit.jobs",
        (),
        frozenset({"export", "deletion"}),
        last=True,
        read_only_tables=(AUDIT,),
        partition_grants=(PartitionGrant(AUDIT, AUDIT_KEY_PREFIX, ("dynamodb:DeleteItem",)),),
        unsealed_secret_contexts=("audit",),
    ),
    # The user's other jobs and their files (the deletion's own job record stays: admins see deletion jobs).
    JobContext("jobs", "functions.jobs.userdata", (JOBS,), frozenset({"deletion"}), uses_export_bucket=True, last=True),
    # Deletion removes the identity after every other context is done (until then the account exists, refused, so
    # a failed deletion can be run again); the export's profile and settings come from it.
    JobContext("identity", "functions.identity.jobs", (IDENTITY,), frozenset({"export", "deletion"}), last=True),
)


def job_contexts(workflow: Workflow) -> tuple[JobContext, ...]:
    return tuple(context for context in JOB_CONTEXTS if workflow in context.workflows)


def context_named(name: str) -> JobContext:
    for context in JOB_CONTEXTS:
        if context.name == name:
            return context
    raise LookupError(f"no job context is named {name!r}")
