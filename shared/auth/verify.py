"""One check for every credential: the HTTP API authorizer, the FastAPI dependency and the WebSocket `$connect`
all call `verify_credential`; a principal the authorizer verified earlier is re-checked by `principal_for_request`.
Both refuse what has been revoked since (`shared.auth.revocations`)."""

from __future__ import annotations

from collections.abc import Mapping

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
    from shared.auth.revocations import ensure_not_revoked

    if looks_like_api_key(credential):
        principal = resolve_api_key(credential)
    else:
        from shared.auth.keys import key_ring
        from shared.auth.tokens import issued_at_ms, verify_token
        from shared.settings import get_settings

        claims = verify_token(credential, key_ring(), get_settings(), token_type="access")
        principal = Principal(
            user_id=str(claims["sub"]),
            roles=tuple(claims.get("roles", ())),
            permissions=frozenset(claims.get("perms", ())),
            auth_type="token",
            expires_at=int(claims["exp"]),
            session_id=claims.get("sid"),
            verified_at_ms=issued_at_ms(claims),
        )
    ensure_not_revoked(principal)
    return principal


def verifies_from_memory(authorization: str | None) -> bool:
    """True when verifying `authorization` reads nothing from storage: no credential or a malformed one, or an
    access token while this container's signing keys and revocation view are fresh. An API key is always read."""
    from shared.auth.api_keys import looks_like_api_key
    from shared.auth.keys import key_ring_is_fresh
    from shared.auth.revocations import revocations_are_fresh

    try:
        credential = bearer_credential(authorization)
    except Unauthorized:
        return True
    return not looks_like_api_key(credential) and key_ring_is_fresh() and revocations_are_fresh()


def verify_authorization_header(authorization: str | None) -> Principal:
    return verify_credential(bearer_credential(authorization))


def principal_for_request(authorizer_context: Mapping[str, object], authorization: str | None) -> Principal:
    """The principal the HTTP API authorizer verified, re-checked against revocations.

    The authorizer's answer is cached per `Authorization` header, so an API key whose owner or roles changed since
    keeps arriving with its old answer until the cache expires: that key is resolved again here (the key itself
    may still be good). A token carries its roles, so an outdated one is refused: refreshing it gets the new ones.
    """
    from shared.auth.revocations import OutdatedApiKeyError

    try:
        return Principal.from_authorizer_context(authorizer_context)
    except OutdatedApiKeyError:
        return verify_authorization_header(authorization)
