"""FastAPI asks of every annotation a route declares whether it is a pydantic.v1 model, and imports pydantic.v1 to
find out: about 80 ms of every function's cold start (a fifth of the chat function's), for a question whose answer
is known without it. No class or object can be a pydantic.v1 model before pydantic.v1 is imported, so the checks
here give FastAPI's answer (its own checks, once something has imported pydantic.v1) without importing it."""

from __future__ import annotations

import sys
from typing import Any

import fastapi.encoders
from fastapi._compat import shared


def _is_v1_model_class(cls: Any) -> bool:
    v1 = sys.modules.get("pydantic.v1")
    return v1 is not None and shared.lenient_issubclass(cls, v1.BaseModel)


def _is_v1_model_instance(obj: Any) -> bool:
    v1 = sys.modules.get("pydantic.v1")
    return v1 is not None and isinstance(obj, v1.BaseModel)


def check_without_importing() -> None:
    """Idempotent. Replaces FastAPI's two checks where it calls them (`annotation_is_pydantic_v1` calls the class
    check through its module; the encoder imported the instance check by name)."""
    shared.is_pydantic_v1_model_class = _is_v1_model_class
    shared.is_pydantic_v1_model_instance = _is_v1_model_instance
    fastapi.encoders.is_pydantic_v1_model_instance = _is_v1_model_instance  # type: ignore[attr-defined]
