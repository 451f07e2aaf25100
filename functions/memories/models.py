"""Memories' request and response bodies. Stored records never leave the service: these are built from them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, Field, StringConstraints, field_validator, model_validator

from shared.http.models import ApiModel, JsonBool

Category = Literal["preference", "fact", "instruction", "context", "general"]
CATEGORIES: tuple[Category, ...] = get_args(Category)
MAX_CONTENT_CHARS = 10_000
MAX_BULK_IMPORT = 500
DEFAULT_PRIORITY = 5

Content = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CONTENT_CHARS)]
Priority = Annotated[int, Field(ge=1, le=10, strict=True)]
SearchText = Annotated[str, StringConstraints(min_length=1, max_length=200)]


def _in_the_future(expires_at: datetime | None) -> datetime | None:
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return expires_at


class MemoryCreate(ApiModel):
    content: Content
    category: Category = "general"
    priority: Priority = DEFAULT_PRIORITY
    active: JsonBool = True
    expires_at: AwareDatetime | None = None

    _expires_in_the_future = field_validator("expires_at")(_in_the_future)


class MemoryUpdate(ApiModel):
    """Fields to change; those left out keep their value. Only `expiresAt` may be null, which clears it."""

    content: Content | None = None
    category: Category | None = None
    priority: Priority | None = None
    active: JsonBool | None = None
    expires_at: AwareDatetime | None = None

    _expires_in_the_future = field_validator("expires_at")(_in_the_future)

    @model_validator(mode="after")
    def _only_expiry_clears(self) -> MemoryUpdate:
        for name in ("content", "category", "priority", "active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{type(self).model_fields[name].alias} cannot be null")
        return self


class MemoryRestore(ApiModel):
    """Optional with a restore: the memory's new expiry (null: none). Left out, an expiry still ahead is kept and
    one passed (the memory was archived because it expired) is cleared."""

    expires_at: AwareDatetime | None = None

    _expires_in_the_future = field_validator("expires_at")(_in_the_future)


class MemoryPublic(ApiModel):
    id: str
    content: str
    category: Category
    priority: int
    active: bool
    archived: bool
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MemoryStats(ApiModel):
    """Counts over the user's memories; expired ones, not yet removed by DynamoDB, count nowhere."""

    total: int
    # Active and not archived: the memories that go into prompts.
    active: int
    archived: int
    by_category: dict[Category, int]
    limit: int
    remaining: int


class BulkImportRequest(ApiModel):
    # Items are validated one by one so that one bad memory does not refuse the others.
    memories: Annotated[list[Any], Field(min_length=1, max_length=MAX_BULK_IMPORT)]


class RejectedMemory(ApiModel):
    index: int
    reason: str


class BulkImportResult(ApiModel):
    imported: int
    rejected: list[RejectedMemory]
