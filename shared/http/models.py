"""Base models of the API: camelCase on the wire, snake_case in Python; the list page every route returns."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Strict
from pydantic.alias_generators import to_camel

T = TypeVar("T")

# A request's boolean: JSON `true` or `false` only, as the document says (pydantic would take 0, 1 or "yes").
# Numbers in request bodies are `strict=True` for the same reason (no `true` for 1, no "5" for 5).
JsonBool = Annotated[bool, Strict()]


class ApiModel(BaseModel):
    """Request and response bodies: camelCase JSON, unknown request fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Page(ApiModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
