"""The jobs context's storage: pynamodb records in the jobs table.

Items (pk / sk):
  JOB#<id> / JOB           a job. gsi1 USER#<user> / JOB#<id> lists a user's jobs (ids are ULIDs: newest first
                           backwards); gsi2 STAGE / JOB#<id> lists the stage's, for admins. An archiving run has
                           no user and no gsi1 keys.
  USER#<id> / LOCK#<kind>  the user's running job of a kind that runs one at a time (export): written in the same
                           transaction as the job, removed when it ends, and past `expiresAt` taken by the next job
                           whatever its state, so a job that never ended cannot block the user for ever.

Progress is updated in place (`contexts.<name>`, `done`): the contexts of one workflow report at the same time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import (
    JSONAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from shared.errors import Conflict, NotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.storage import condition_failed, secondary_index, table_meta, transact, transaction_cancellations
from shared.tables import JOBS

JOB_PREFIX = "JOB#"
JOB_SORT_KEY = "JOB"
STAGE_PARTITION = "STAGE"
LOCK_PREFIX = "LOCK#"
# An export of the largest account takes minutes; a lock this old belongs to a job that will never end.
LOCK_SECONDS = 6 * 3600
_UPDATE_ATTEMPTS = 5


def now() -> datetime:
    return datetime.now(UTC)


_Meta = table_meta(JOBS)


class JobRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=JOB_SORT_KEY)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi2pk = UnicodeAttribute(default=STAGE_PARTITION)
    gsi2sk = UnicodeAttribute()
    by_user = secondary_index(JOBS.index("gsi1"))
    by_stage = secondary_index(JOBS.index("gsi2"))

    job_id = UnicodeAttribute(attr_name="jobId")
    user_id = UnicodeAttribute(attr_name="userId", null=True)
    kind = UnicodeAttribute()
    status = UnicodeAttribute(default="queued")
    import_format = UnicodeAttribute(attr_name="format", null=True)
    total = NumberAttribute(default=0)
    done = NumberAttribute(default=0)
    contexts: MapAttribute[str, Any] = MapAttribute(default=dict)  # type: ignore[no-untyped-call]
    counts: MapAttribute[str, Any] = MapAttribute(default=dict)  # type: ignore[no-untyped-call]
    """What each context reported when done (items deleted, archived), for deletion and archiving runs."""
    result = JSONAttribute(null=True)
    error_code = UnicodeAttribute(attr_name="errorCode", null=True)
    error_message = UnicodeAttribute(attr_name="errorMessage", null=True)
    created_at = UTCDateTimeAttribute(attr_name="createdAt", default=now)
    started_at = UTCDateTimeAttribute(attr_name="startedAt", null=True)
    finished_at = UTCDateTimeAttribute(attr_name="finishedAt", null=True)
    import_pages = UnicodeSetAttribute(attr_name="importPages", null=True)
    """The import pages already added to `result`, by the cursor each ended at: a retried step adds nothing."""
    lock = UnicodeAttribute(null=True)
    """The lock item's sort key this job holds, released when it ends."""
    revision = NumberAttribute(default=0)

    def context_states(self) -> dict[str, str]:
        return {str(name): str(state) for name, state in self.contexts.attribute_values.items()}

    def context_counts(self) -> dict[str, int]:
        return {str(name): int(count) for name, count in self.counts.attribute_values.items()}


class LockRecord(Model):
    Meta = _Meta

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    job_id = UnicodeAttribute(attr_name="jobId")
    expires_at = NumberAttribute(attr_name="expiresAt")
    ttl = TTLAttribute(null=True)


# Keys -------------------------------------------------------------------------------------------------------


def job_partition(job_id: str) -> str:
    return JOB_PREFIX + job_id


def user_partition(user_id: str) -> str:
    return f"USER#{user_id}"


def lock_key(kind: str) -> str:
    return LOCK_PREFIX + kind


def _job_not_found() -> NotFound:
    return NotFound("No such job", code="job_not_found")


# Creating jobs ----------------------------------------------------------------------------------------------


def new_job(job_id: str, kind: str, user_id: str | None, **values: Any) -> JobRecord:
    record = JobRecord(
        pk=job_partition(job_id), sk=JOB_SORT_KEY, gsi2pk=STAGE_PARTITION, gsi2sk=job_partition(job_id),
        job_id=job_id, user_id=user_id, kind=kind, **values,
    )  # fmt: skip
    if user_id is not None:
        record.gsi1pk, record.gsi1sk = user_partition(user_id), job_partition(job_id)
    return record


def create_job(record: JobRecord) -> None:
    """Store a new job; the id is fresh, so an existing item means a retried creation that already landed."""
    try:
        record.save(condition=JobRecord.pk.does_not_exist())
    except PutError as error:
        if not condition_failed(error):
            raise


def create_locked_job(record: JobRecord) -> None:
    """Store `record` and its user's lock of its kind in one transaction: 409 `job_in_progress` while another job
    of the kind holds an unexpired lock."""
    assert record.user_id is not None
    moment = int(time.time())
    record.lock = lock_key(record.kind)
    lock = LockRecord(
        pk=user_partition(record.user_id), sk=record.lock, job_id=record.job_id,
        expires_at=moment + LOCK_SECONDS, ttl=datetime.fromtimestamp(moment + LOCK_SECONDS, UTC),
    )  # fmt: skip
    conflict = Conflict(f"An {record.kind} of yours is already running", code="job_in_progress")

    def write(transaction: TransactWrite) -> None:
        transaction.save(lock, condition=LockRecord.pk.does_not_exist() | (LockRecord.expires_at <= moment))
        transaction.save(record, condition=JobRecord.pk.does_not_exist())

    try:
        transact(write, model=JobRecord, conflict=conflict)
    except TransactWriteError as error:
        if "ConditionalCheckFailed" in transaction_cancellations(error):
            raise conflict from None
        raise


def release_lock(record: JobRecord) -> None:
    """Remove the lock `record` holds, unless it has expired and another job has taken it since."""
    if record.lock is None or record.user_id is None:
        return
    try:
        LockRecord(user_partition(record.user_id), record.lock).delete(condition=LockRecord.job_id == record.job_id)
    except Exception as error:
        if not condition_failed(error):
            raise


def delete_locks(user_id: str, kinds: tuple[str, ...]) -> int:
    from shared.aws import delete_items

    keys = [{"pk": {"S": user_partition(user_id)}, "sk": {"S": lock_key(kind)}} for kind in kinds]
    delete_items(JOBS.name_from_env(), keys)
    return len(keys)


# Reading jobs -----------------------------------------------------------------------------------------------


def find_job(job_id: str) -> JobRecord | None:
    try:
        return JobRecord.get(job_partition(job_id), JOB_SORT_KEY, consistent_read=True)
    except DoesNotExist:
        return None


def get_job(job_id: str) -> JobRecord:
    record = find_job(job_id)
    if record is None:
        raise _job_not_found()
    return record


def get_user_job(user_id: str, job_id: str, kind: str | None = None) -> JobRecord:
    """The user's job (of `kind`): another user's, another kind's and an unknown id are all 404."""
    record = find_job(job_id)
    if record is None or record.user_id != user_id or (kind is not None and record.kind != kind):
        raise _job_not_found()
    return record


def list_user_jobs(
    user_id: str, *, kind: str | None, limit: int, cursor: str | None
) -> tuple[list[JobRecord], str | None]:
    """The user's jobs newest first (of `kind`)."""
    partition = user_partition(user_id)
    start = decode_cursor(
        cursor, partition={"gsi1pk": partition}, sort_prefixes={"gsi1sk": JOB_PREFIX, "pk": JOB_PREFIX, "sk": ""}
    )
    results = JobRecord.by_user.query(
        partition, scan_index_forward=False, limit=limit, last_evaluated_key=start,
        filter_condition=(JobRecord.kind == kind) if kind else None,
    )  # fmt: skip
    return _one_page(results)


def list_stage_jobs(*, kind: str | None, limit: int, cursor: str | None) -> tuple[list[JobRecord], str | None]:
    """The stage's jobs newest first (of `kind`)."""
    start = decode_cursor(
        cursor,
        partition={"gsi2pk": STAGE_PARTITION},
        sort_prefixes={"gsi2sk": JOB_PREFIX, "pk": JOB_PREFIX, "sk": ""},
    )
    results = JobRecord.by_stage.query(
        STAGE_PARTITION, scan_index_forward=False, limit=limit, last_evaluated_key=start,
        filter_condition=(JobRecord.kind == kind) if kind else None,
    )  # fmt: skip
    return _one_page(results)


def _one_page(results: Any) -> tuple[list[JobRecord], str | None]:
    """One Query page and the cursor after it (a filtered page may hold fewer items while more follow)."""
    page = next(results.page_iter)
    items = [JobRecord.from_raw_data(raw) for raw in page.get("Items", [])]
    return items, encode_cursor(page.get("LastEvaluatedKey"))


def user_jobs_page(user_id: str, start: dict[str, Any] | None, limit: int) -> tuple[list[JobRecord], Any]:
    """A page of the user's jobs for their deletion, and the raw key after it."""
    results = JobRecord.by_user.query(user_partition(user_id), limit=limit, last_evaluated_key=start)
    page = next(results.page_iter)
    return [JobRecord.from_raw_data(raw) for raw in page.get("Items", [])], page.get("LastEvaluatedKey")


def delete_jobs(records: list[JobRecord]) -> None:
    from shared.aws import delete_items

    delete_items(JOBS.name_from_env(), [{"pk": {"S": r.pk}, "sk": {"S": r.sk}} for r in records])


# Changing jobs ----------------------------------------------------------------------------------------------


def update_job(job_id: str, actions: list[Action], condition: Any = None) -> bool:
    """Apply `actions` to the job; False when `condition` refused them (a retried step, a job already ended)."""
    exists = JobRecord.pk.exists()
    try:
        JobRecord(job_partition(job_id), JOB_SORT_KEY).update(
            actions=actions, condition=exists if condition is None else exists & condition
        )
    except UpdateError as error:
        if condition_failed(error):
            if find_job(job_id) is None:
                raise _job_not_found() from None
            return False
        raise
    return True


def begin(job_id: str, contexts: list[str], *, contexts_running: bool) -> bool:
    """Mark a queued job running, its contexts queued (or running, for a workflow not mapped over them)."""
    state = "running" if contexts_running else "queued"
    return update_job(
        job_id,
        [
            JobRecord.status.set("running"),
            JobRecord.total.set(len(contexts)),
            JobRecord.contexts.set(dict.fromkeys(contexts, state)),
        ],
        JobRecord.status == "queued",
    )


def set_context_running(job_id: str, context: str) -> bool:
    path = JobRecord.contexts[context]
    return update_job(job_id, [path.set("running")], (JobRecord.status == "running") & (path != "done"))


def set_context_done(job_id: str, context: str, count: int | None) -> bool:
    path = JobRecord.contexts[context]
    actions: list[Action] = [path.set("done"), JobRecord.done.add(1)]
    if count is not None:
        actions.append(JobRecord.counts[context].set(count))
    return update_job(job_id, actions, (JobRecord.status == "running") & (path != "done"))


def change_result(job_id: str, page: str | None, change: Any) -> JobRecord:
    """Read the job, let `change(result)` return its new result, and store it unless another writer changed the
    job meanwhile (then read again). `page` names a page whose figures are added once only."""
    for _ in range(_UPDATE_ATTEMPTS):
        record = get_job(job_id)
        if page is not None and page in (record.import_pages or set()):
            return record
        actions: list[Action] = [JobRecord.result.set(change(record.result)), JobRecord.revision.add(1)]
        if page is not None:
            actions.append(JobRecord.import_pages.add({page}))
        if update_job(job_id, actions, JobRecord.revision == record.revision):
            return get_job(job_id)
    raise Conflict("The job changed while its result was being written", code="job_conflict")


def set_result(job_id: str, result: Mapping[str, Any]) -> None:
    update_job(job_id, [JobRecord.result.set(dict(result))])


def finish(job_id: str) -> JobRecord | None:
    """Succeeded, every context done; None when the job had already ended."""
    record = get_job(job_id)
    if record.status in ("succeeded", "failed"):
        return None
    states = dict.fromkeys(record.context_states(), "done")
    ended = update_job(
        job_id,
        [
            JobRecord.status.set("succeeded"),
            JobRecord.finished_at.set(now()),
            JobRecord.contexts.set(states),
            JobRecord.done.set(len(states)),
        ],
        JobRecord.status.is_in("queued", "running"),
    )
    return record if ended else None


def fail(job_id: str, code: str, message: str, context: str | None) -> JobRecord | None:
    """Failed with `error`, the context named failed too; None when the job had already ended (or, for a run
    that failed before its first step, has no record to mark)."""
    record = find_job(job_id)
    if record is None:
        return None
    actions: list[Action] = [
        JobRecord.status.set("failed"),
        JobRecord.finished_at.set(now()),
        JobRecord.error_code.set(code),
        JobRecord.error_message.set(message),
    ]
    if context is not None:
        actions.append(JobRecord.contexts[context].set("failed"))
    ended = update_job(job_id, actions, JobRecord.status.is_in("queued", "running"))
    return record if ended else None


def mark_import_started(job_id: str) -> bool:
    """Claim the start of a queued import: False when it was started already."""
    return update_job(
        job_id,
        [JobRecord.started_at.set(now())],
        (JobRecord.status == "queued") & JobRecord.started_at.does_not_exist(),
    )
