"""The HTTP side every buffered context shares: the FastAPI app factory, models, dependencies, the handler."""

from shared.http.pydantic_v1 import check_without_importing

# Before any route is declared: every route module imports something of this package first.
check_without_importing()
