"""The contexts every job workflow maps over, as the task and step functions see them.

`infra.catalog.JOB_CONTEXTS` is the one list. Deployed functions carry only `functions/` and `shared/`, so CDK
hands them that list in the `JOB_CONTEXTS` environment variable (`contexts_environment`); where the variable is
not set (local mode, tests) the catalog itself is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ENVIRONMENT_VARIABLE = "JOB_CONTEXTS"


@dataclass(frozen=True)
class TaskContext:
    name: str
    module: str
    workflows: frozenset[str]
    imports: tuple[str, ...] = ()
    last: bool = False


def contexts_environment(contexts: Iterable[Any]) -> str:
    """The `JOB_CONTEXTS` value for `contexts` (the catalog's JobContext entries)."""
    return json.dumps(
        [
            {
                "name": context.name,
                "module": context.module,
                "workflows": sorted(context.workflows),
                "imports": list(context.imports),
                "last": context.last,
            }
            for context in contexts
        ],
        separators=(",", ":"),
    )


def all_contexts() -> tuple[TaskContext, ...]:
    raw = os.environ.get(ENVIRONMENT_VARIABLE)
    if raw:
        return tuple(
            TaskContext(
                name=entry["name"],
                module=entry["module"],
                workflows=frozenset(entry["workflows"]),
                imports=tuple(entry.get("imports") or ()),
                last=bool(entry.get("last")),
            )
            for entry in json.loads(raw)
        )
    from infra import catalog

    return tuple(
        TaskContext(c.name, c.module, frozenset(c.workflows), tuple(c.imports), c.last) for c in catalog.JOB_CONTEXTS
    )


def job_contexts(workflow: str) -> tuple[TaskContext, ...]:
    return tuple(context for context in all_contexts() if workflow in context.workflows)


def context_named(name: str) -> TaskContext:
    for context in all_contexts():
        if context.name == name:
            return context
    raise LookupError(f"no job context is named {name!r}")
