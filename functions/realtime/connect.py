"""The WebSocket API's `$connect` authorizer (REQUEST type): the token of `?token=`, on the shared verification.

It answers an IAM policy for the connect route, Allow with the principal in `context` (API Gateway hands it to
the `$connect` integration as `requestContext.authorizer`) or Deny, which refuses the handshake (403).
"""

from __future__ import annotations

from typing import Any

from shared.auth.verify import verify_credential
from shared.errors import Unauthorized
from shared.observability import logger


def policy(principal_id: str, effect: str, resource: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }
    if context:
        answer["context"] = context
    return answer


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    token = (event.get("queryStringParameters") or {}).get("token") or ""
    method_arn = str(event.get("methodArn") or "*")
    try:
        if not token:
            raise Unauthorized("A token is required", code="missing_credentials")
        principal = verify_credential(token)
    except Unauthorized as refusal:
        logger.info("websocket connection refused", extra={"reason": refusal.error_code})
        return policy("anonymous", "Deny", method_arn)
    return policy(principal.user_id, "Allow", method_arn, principal.to_authorizer_context())
