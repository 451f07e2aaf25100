"""Access and refresh tokens: ES256 JWTs with iss, aud, sub, exp, iat and jti, verified strictly.

Only ES256 is accepted, so `alg: none` and HS256-with-the-public-key confusion fail before any key is used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from shared.auth.keys import ALGORITHM, KeyRing
from shared.errors import Unauthorized
from shared.ids import id_time_ms, new_id
from shared.settings import Settings

TokenType = Literal["access", "refresh"]
_REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti"]


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: int


def issue_token(
    ring: KeyRing,
    settings: Settings,
    *,
    token_type: TokenType,
    subject: str,
    claims: dict[str, Any],
    now: int | None = None,
) -> IssuedToken:
    import jwt

    issued_at_ms = int(time.time() * 1000) if now is None else now * 1000
    issued_at = issued_at_ms // 1000
    ttl = settings.access_token_ttl_seconds if token_type == "access" else settings.refresh_token_ttl_seconds
    # Minted in the issue millisecond, the jti dates the token more finely than `iat` (see `issued_at_ms`).
    jti = new_id(issued_at_ms)
    payload = {
        **claims,
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": subject,
        "iat": issued_at,
        "exp": issued_at + ttl,
        "jti": jti,
        "typ": token_type,
    }
    signer = ring.active
    token = jwt.encode(payload, signer.private_key, algorithm=ALGORITHM, headers={"kid": signer.kid})
    return IssuedToken(token, jti, issued_at + ttl)


def issued_at_ms(claims: dict[str, Any]) -> int:
    """When a verified token was issued, to the millisecond: `iat` has whole seconds, and a revocation in the same
    second as a sign-in must refuse the tokens issued before it and none issued after."""
    try:
        return id_time_ms(str(claims["jti"]))
    except ValueError:
        return int(claims["iat"]) * 1000


def verify_token(token: str, ring: KeyRing, settings: Settings, *, token_type: TokenType) -> dict[str, Any]:
    """The token's claims, or `Unauthorized` naming what is wrong (expired, or simply invalid)."""
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("The token is malformed", code="invalid_token") from None
    if header.get("alg") != ALGORITHM:
        raise Unauthorized("The token is not signed with an accepted algorithm", code="invalid_token")
    key = ring.find(str(header.get("kid", "")))
    if key is None:
        raise Unauthorized("The token was not signed by this service", code="invalid_token")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=settings.token_audience,
            issuer=settings.token_issuer,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired", code="token_expired") from None
    except jwt.PyJWTError:
        raise Unauthorized("The token is invalid", code="invalid_token") from None
    if claims.get("typ") != token_type:
        raise Unauthorized(f"This is not an {token_type} token", code="invalid_token")
    return claims
