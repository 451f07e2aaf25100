"""Agents' part in the jobs workflows (functions.jobs.ports): the agents a user created, exported with their
documents' metadata (not the files: they belong to the stage's agent), a page at a time. Agents belong to the
stage and stay when their creator's account is deleted; they only stop naming that user as their creator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.jobs.ports import DeletePage, ExportPage
from shared.lazy import LazyModule

if TYPE_CHECKING:
    from functions.agents import service, store
else:
    service = LazyModule("functions.agents.service")
    store = LazyModule("functions.agents.store")

EXPORT_STEM = "agents"
# An agent's documents are read with it: a page holds fewer agents so that it stays bounded work.
_AGENTS_PER_PAGE = 50


def export_page(user_id: str, cursor: str | None, limit: int) -> ExportPage:
    """The agents the user created, as GET /agents/{id} answers, each with `documents` as the documents list
    answers them."""
    records, next_cursor = store.created_agents_page(user_id, limit=min(limit, _AGENTS_PER_PAGE), cursor=cursor)
    moment = store.now()
    documents = store.documents_of([record.agent_id for record in records])
    exported = [
        {
            **service.public_agent(record).model_dump(mode="json", by_alias=True),
            "documents": [
                service.public_document(document, moment).model_dump(mode="json", by_alias=True, exclude_none=True)
                for document in documents[record.agent_id]
            ],
        }
        for record in records
    ]
    return ExportPage(records={EXPORT_STEM: exported} if exported else {}, cursor=next_cursor)


def delete_page(user_id: str, cursor: str | None, limit: int) -> DeletePage:
    """The user's agents stop naming them as creator (and leave their index), a page at a time; every page starts
    afresh, since what is done is no longer in the index."""
    del cursor
    records, next_cursor = store.created_agents_page(user_id, limit=limit, cursor=None)
    for record in records:
        store.forget_creator(record)
    return DeletePage(deleted=len(records), cursor="more" if next_cursor else None)
