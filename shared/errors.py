"""Domain errors and their one mapping to the API's error shape: `{"error": {code, message, requestId}}`."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """An error a client can act on. Its message is safe to show; it never echoes input or internals."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = code or self.code
        self.details = details
        self.headers = headers or {}


class BadRequest(DomainError):
    status, code = 400, "bad_request"


class ValidationFailed(DomainError):
    status, code = 422, "validation_error"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    status, code = 409, "conflict"


class RateLimited(DomainError):
    """429 with `Retry-After`; `limit` names the limit that was hit."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int, limit: str) -> None:
        retry_after = max(1, int(retry_after_seconds))
        super().__init__(
            message,
            details=[{"limit": limit, "retryAfter": retry_after}],
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after_seconds = retry_after
        self.limit = limit


class ProviderFailed(DomainError):
    status, code = 502, "provider_error"


class McpServerFailed(DomainError):
    """An MCP server could not be reached, broke the protocol, or answered with an error."""

    status, code = 502, "mcp_unavailable"


class McpServerTimedOut(McpServerFailed):
    status, code = 504, "mcp_timeout"


def error_body(
    code: str, message: str, request_id: str | None, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "requestId": request_id}
    if details:
        error["details"] = details
    return {"error": error}
