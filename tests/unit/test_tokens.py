"""Token signing and verification: every way a forged or stale token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from shared.auth.keys import KeyRing, SigningKey, new_key_entry, parse_key_ring
from shared.auth.tokens import issue_token, verify_token
from shared.errors import Unauthorized
from shared.settings import Settings, settings_from_environ


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return parse_key_ring(json.dumps({"keys": [new_key_entry()]}))


@pytest.fixture(scope="module")
def settings() -> Settings:
    return settings_from_environ({"STAGE": "test"})


def _access(ring: KeyRing, settings: Settings, **overrides: int) -> str:
    return issue_token(
        ring, settings, token_type="access", subject="user-1", claims={"perms": ["ai.chat"]}, **overrides
    ).token


def _refused(token: str, ring: KeyRing, settings: Settings, code: str = "invalid_token") -> None:
    with pytest.raises(Unauthorized) as refusal:
        verify_token(token, ring, settings, token_type="access")
    assert refusal.value.error_code == code


def test_issued_access_token_verifies_with_all_registered_claims(ring: KeyRing, settings: Settings) -> None:
    claims = verify_token(_access(ring, settings), ring, settings, token_type="access")
    assert claims["sub"] == "user-1"
    assert claims["perms"] == ["ai.chat"]
    assert {"iss", "aud", "exp", "iat", "jti"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds


def test_expired_token_is_refused_as_expired(ring: KeyRing, settings: Settings) -> None:
    stale = _access(ring, settings, now=int(time.time()) - settings.access_token_ttl_seconds - 5)
    _refused(stale, ring, settings, code="token_expired")


def test_tampered_payload_is_refused(ring: KeyRing, settings: Settings) -> None:
    header, payload, signature = _access(ring, settings).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["perms"] = ["*"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _refused(f"{header}.{forged}.{signature}", ring, settings)


def test_alg_none_is_refused(ring: KeyRing, settings: Settings) -> None:
    claims = verify_token(_access(ring, settings), ring, settings, token_type="access")
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": ring.active.kid})
    _refused(unsigned, ring, settings)


def test_hs256_signed_with_the_public_key_is_refused(ring: KeyRing, settings: Settings) -> None:
    claims = verify_token(_access(ring, settings), ring, settings, token_type="access")
    public_pem = ring.active.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "HS256", "typ": "JWT", "kid": ring.active.kid}).encode()
    ).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest())
    confused = b".".join([header, body, signature.rstrip(b"=")]).decode()
    _refused(confused, ring, settings)


def test_wrong_audience_and_wrong_issuer_are_refused(ring: KeyRing, settings: Settings) -> None:
    other_audience = settings.model_copy(update={"token_audience": "someone-else"})
    other_issuer = settings.model_copy(update={"token_issuer": "stratus-other"})
    _refused(_access(ring, other_audience), ring, settings)
    _refused(_access(ring, other_issuer), ring, settings)


def test_key_from_another_stage_is_refused(ring: KeyRing, settings: Settings) -> None:
    stranger = parse_key_ring(json.dumps({"keys": [new_key_entry()]}))
    _refused(_access(stranger, settings), ring, settings)
    same_kid = KeyRing((SigningKey(ring.active.kid, stranger.active.private_key),))
    _refused(_access(same_kid, settings), ring, settings)


def test_refresh_token_is_not_accepted_as_access_token(ring: KeyRing, settings: Settings) -> None:
    refresh = issue_token(ring, settings, token_type="refresh", subject="user-1", claims={"sid": "s"}).token
    _refused(refresh, ring, settings)


def test_garbage_is_refused_as_malformed(ring: KeyRing, settings: Settings) -> None:
    _refused("not-a-jwt", ring, settings)
    _refused("a.b.c", ring, settings)


def test_rotated_ring_still_verifies_tokens_of_the_older_key(ring: KeyRing, settings: Settings) -> None:
    old_token = _access(ring, settings)
    newer = parse_key_ring(json.dumps({"keys": [new_key_entry()]}))
    rotated = KeyRing((newer.active, ring.active))
    assert verify_token(old_token, rotated, settings, token_type="access")["sub"] == "user-1"
    assert [key["kid"] for key in rotated.jwks()["keys"]] == [newer.active.kid, ring.active.kid]
