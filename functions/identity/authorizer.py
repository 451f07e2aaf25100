"""The HTTP API's Lambda authorizer (payload 2.0, simple responses), on the shared credential verification.

A bad credential is still answered `isAuthorized: true`, carrying the reason in the context: the function
then refuses the request in the API's own error shape (API Gateway's own 403 body cannot be customised on
HTTP APIs). Every protected route requires a principal by construction (`create_app(protected=...)`), and
`Principal.from_authorizer_context` turns the reason into a 401. A missing header never reaches here: API
Gateway answers 401 itself.
"""

from __future__ import annotations

from typing import Any

from shared.auth.verify import verify_authorization_header
from shared.errors import Unauthorized
from shared.observability import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    headers = event.get("headers") or {}
    header = headers.get("authorization") or next(iter(event.get("identitySource") or []), None)
    try:
        principal = verify_authorization_header(header)
    except Unauthorized as refusal:
        logger.info("credential refused", extra={"reason": refusal.error_code, "route": event.get("routeKey")})
        return {
            "isAuthorized": True,
            "context": {"authError": refusal.error_code, "authMessage": refusal.message},
        }
    return {"isAuthorized": True, "context": principal.to_authorizer_context()}
