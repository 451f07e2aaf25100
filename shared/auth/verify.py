"""One check for every credential: the HTTP API authorizer, the FastAPI dependency and the WebSocket `$connect`
all call `verify_credential`."""

from __future__ import annotations

from shared.auth.principal import Principal
from shared.errors import Unauthorized


def bearer_credential(authorization: str | None) -> str:
    """The credential in an `Authorization: Bearer ...` header."""
    if not authorization:
        raise Unauthorized("Sign in first: this needs an Authorization header", code="missing_credentials")
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthorized("Use 'Authorization: Bearer <access token or API key>'", code="invalid_token")
    return credential.strip()


def verify_credential(credential: str) -> Principal:
    """The principal behind an access token or API key; `Unauthorized` with a precise code otherwise."""
    from shared.auth.api_keys import looks_like_api_key, resolve_api_key

    if looks_like_api_key(credential):
        return resolve_api_key(credential)

    from shared.auth.keys import key_ring
    from shared.auth.tokens import verify_token
    from shared.settings import get_settings

    claims = verify_token(credential, key_ring(), get_settings(), token_type="access")
    return Principal(
        user_id=str(claims["sub"]),
        roles=tuple(claims.get("roles", ())),
        permissions=frozenset(claims.get("perms", ())),
        auth_type="token",
        expires_at=int(claims["exp"]),
        session_id=claims.get("sid"),
    )


def verify_authorization_header(authorization: str | None) -> Principal:
    return verify_credential(bearer_credential(authorization))
