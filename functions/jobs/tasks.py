"""The task functions of the job workflows: one context's page of an export, deletion or archiving run
(`context_task`, in that context's own function `jobs-<context>`), and one page of an import (`import_task`).

Each is handed a page's event by the state machine and answers where the next page starts; the workflow loops
until the cursor is null. A file that is not what it claims raises JobInputError, which the workflow does not
retry; anything else is retried.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from functions.jobs import files
from functions.jobs.contexts import JobContext, context_named, job_contexts
from functions.jobs.errors import JobInputError
from functions.jobs.ports import IMPORT_KINDS, PAGE_ITEMS
from shared import events

if TYPE_CHECKING:
    from functions.jobs.formats.items import ImportedItem, RejectedItem
    from functions.jobs.ports import ImportResult

REJECTED_PER_PAGE = 100


def context_task(event: dict[str, Any], _: Any) -> dict[str, Any]:
    """One page of the event's context: `export`, `delete` or `archive`. A deployed task function is its context's
    alone (`JOB_CONTEXT`, and its role reaches only that context's tables); local mode runs every context in one
    process. What the page published is on the events queue before it returns."""
    try:
        return _context_page(event)
    finally:
        events.flush()


def _context_page(event: dict[str, Any]) -> dict[str, Any]:
    name = str(event.get("context"))
    own = os.environ.get("JOB_CONTEXT")
    if own and name != own:
        raise ValueError(f"this function runs the pages of context {own!r}, not of {name!r}")
    module = importlib.import_module(context_named(name).module)
    action, cursor = event["action"], event.get("cursor")
    if action == "export":
        return _export_page(module, event, cursor)
    if action == "delete":
        deleted = module.delete_page(event["userId"], cursor, PAGE_ITEMS)
        return {"cursor": deleted.cursor, "deleted": deleted.deleted}
    if action == "archive":
        archived = module.archive_page(datetime.fromisoformat(event["now"]), cursor, PAGE_ITEMS)
        return {"cursor": archived.cursor, "archived": archived.archived}
    raise ValueError(f"unknown action {action!r}")


def _export_page(module: Any, event: dict[str, Any], cursor: str | None) -> dict[str, Any]:
    user_id, job_id, context, page_number = event["userId"], event["jobId"], event["context"], int(event["page"])
    page = module.export_page(user_id, cursor, PAGE_ITEMS)
    records = 0
    for stem, lines in page.records.items():
        if lines:
            files.put_lines(files.part_key(user_id, job_id, stem, page_number, context), lines)
            records += len(lines)
    for name, document in page.documents.items():
        files.put_document(files.document_key(user_id, job_id, name), document)
    return {"cursor": page.cursor, "page": page_number + 1, "records": records}


# Imports ----------------------------------------------------------------------------------------------------


def import_task(event: dict[str, Any], _: Any) -> dict[str, Any]:
    """One page of an import: the items after the first `cursor` of the uploaded file, handed to the contexts
    that store them, with what was rejected; what the contexts published is on the events queue before it
    returns."""
    try:
        return _import_page(event)
    finally:
        events.flush()


def _import_page(event: dict[str, Any]) -> dict[str, Any]:
    from shared.errors import ValidationFailed

    user_id, job_id = event["userId"], event["jobId"]
    skip = int(event.get("cursor") or 0)
    page = _ImportPage()
    with _downloaded(files.upload_key(user_id, job_id)) as upload:
        try:
            page.read(_items(event["format"], upload), skip)
        except ValidationFailed as error:
            raise JobInputError(error.error_code, error.message) from None
        page.store(user_id, job_id, _importers())
    return page.answer(skip)


def _items(import_format: str, upload: IO[bytes]) -> Iterator[ImportedItem]:
    from functions.jobs.formats.importers import read_import

    return read_import(import_format, upload)  # type: ignore[arg-type]


def _importers() -> dict[str, JobContext]:
    """Each kind of imported item, and the context that stores it."""
    return {kind: context for context in job_contexts("import") for kind in context.imports}


class _ImportPage:
    """The items of one page, in file order, and the figures the page reports."""

    def __init__(self) -> None:
        self.items: list[ImportedItem] = []
        self.read_items = 0
        self.finished = False
        self.imported = dict.fromkeys(IMPORT_KINDS, 0)
        self.rejected: list[RejectedItem] = []

    def read(self, items: Iterator[ImportedItem], skip: int) -> None:
        from functions.jobs.formats.items import ImportedConversation, RejectedItem

        budget = PAGE_ITEMS
        for index, item in enumerate(items):
            if index < skip:
                continue  # a Stratus conversation's unread messages are stepped over by the reader
            if budget <= 0:
                return
            self.read_items += 1
            if isinstance(item, RejectedItem):
                self.rejected.append(item)
                budget -= 1
                continue
            if isinstance(item, ImportedConversation):
                messages = []
                for message in item.messages:  # read now: the reader's next item ends this iterator
                    if isinstance(message, RejectedItem):
                        self.rejected.append(message)
                    else:
                        messages.append(message)
                item.messages = messages
                budget -= len(messages)
            budget -= 1
            self.items.append(item)
        self.finished = True

    def store(self, user_id: str, job_id: str, importers: dict[str, JobContext]) -> None:
        """Hand each run of consecutive items of one context to it, in file order (projects before the
        conversations that name them)."""
        run: list[ImportedItem] = []
        owner: JobContext | None = None
        for item in self.items:
            context = importers.get(_kind(item))
            if context is None:
                from functions.jobs.formats.items import RejectedItem

                self.rejected.append(RejectedItem(_kind(item), "this stage has nowhere to import it"))
                continue
            if owner is not None and context.name != owner.name:
                self._hand_over(owner, user_id, job_id, run)
                run = []
            owner = context
            run.append(item)
        if owner is not None and run:
            self._hand_over(owner, user_id, job_id, run)

    def _hand_over(self, context: JobContext, user_id: str, job_id: str, items: Sequence[ImportedItem]) -> None:
        result: ImportResult = importlib.import_module(context.module).import_items(user_id, job_id, items)
        for kind, count in result.imported.items():
            self.imported[kind] = self.imported.get(kind, 0) + int(count)
        self.rejected += result.rejected

    def answer(self, skip: int) -> dict[str, Any]:
        shown = self.rejected[:REJECTED_PER_PAGE]
        return {
            "cursor": None if self.finished else str(skip + self.read_items),
            "imported": self.imported,
            "rejected": [rejected.as_result() for rejected in shown],
            "rejectedMore": len(self.rejected) - len(shown),
        }


def _kind(item: ImportedItem) -> str:
    from functions.jobs.formats.items import ImportedConversation, ImportedMemory, ImportedProject, ImportedPrompt

    if isinstance(item, ImportedProject):
        return "project"
    if isinstance(item, ImportedConversation):
        return "conversation"
    if isinstance(item, ImportedPrompt):
        return "prompt"
    if isinstance(item, ImportedMemory):
        return "memory"
    raise TypeError(f"not an imported item: {item!r}")


@contextmanager
def _downloaded(key: str) -> Iterator[IO[bytes]]:
    """The upload in a temporary file (the readers seek), kept for the next page of the same job on a warm
    container as long as the stored object has the same size."""
    size = files.size_of(key)
    if size is None:
        raise JobInputError("upload_missing", "The uploaded file is gone (uploads are kept 7 days)")
    path = os.path.join(tempfile.gettempdir(), "stratus-import-" + key.replace("/", "-"))
    if not (os.path.exists(path) and os.path.getsize(path) == size):
        _forget_other_uploads(keep=path)
        with open(path + ".part", "wb") as sink:
            files.download(key, sink)
        os.replace(path + ".part", path)
    with open(path, "rb") as upload:
        yield upload


def _forget_other_uploads(keep: str) -> None:
    """Remove the uploads of other jobs a warm container downloaded earlier: /tmp is small."""
    folder = tempfile.gettempdir()
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.startswith("stratus-import-") and path != keep:
            os.remove(path)
