"""One delivery attempt: the signed POST of an event's body to a subscription's URL, and when to try again.

The body is `{id, type, createdAt, data}`, the same bytes at every attempt. Headers: `Stratus-Event-Id`,
`Stratus-Timestamp` (Unix seconds of this attempt) and `Stratus-Signature: v1=<hex HMAC-SHA256 of
"<timestamp>.<raw body>">` keyed with the subscription's secret (its UTF-8 bytes). The URL is checked again
(`shared.outbound`: its host may resolve elsewhere since it was subscribed) and the connection made to the address
checked, through the guarded client: no redirect is followed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from shared.errors import DomainError
from shared.outbound import OutboundPolicy, Resolver, checked_destination, guarded_http_client, stage_policy
from shared.outbound import system_resolver as _system_resolver
from shared.settings import Settings

SIGNATURE_VERSION = "v1"
# A receiver answers at once and does its work later: a delivery waits this long at most.
TIMEOUT_SECONDS = 10.0
# Retries go on this long after the event; a subscription failing this long is disabled.
RETRY_WINDOW = timedelta(hours=24)
# One wait is at most this long (the backoff doubles up to it), and a delivery is tried this often at most (with the
# default base, 24 hours hold about 14 attempts; a base of 0 retries at once, so this bounds it).
MAX_RETRY_WAIT_SECONDS = 4 * 3600.0
MAX_ATTEMPTS = 20
# What of the receiver's error answer is kept in the log.
_MAX_ERROR_CHARS = 200

_resolver: Resolver = _system_resolver


def use_resolver(resolver: Resolver) -> Resolver:
    """Resolve subscription hostnames with `resolver` (tests); returns the one in use before."""
    global _resolver
    previous, _resolver = _resolver, resolver
    return previous


def resolver() -> Resolver:
    return _resolver


def outbound_policy(settings: Settings) -> OutboundPolicy:
    """What a subscription's URL may reach on this stage: checked when subscribing and before every attempt."""
    return stage_policy(
        dev_stage=settings.is_dev_stage or settings.local_mode, allow_private=settings.webhooks_allow_private
    )


def event_body(event_id: str, event_type: str, created_at: str, data: Mapping[str, Any]) -> str:
    return json.dumps(
        {"id": event_id, "type": event_type, "createdAt": created_at, "data": dict(data)},
        separators=(",", ":"),
        default=str,
    )


def signature(secret: str, timestamp: str, body: str) -> str:
    """The `Stratus-Signature` header's value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signed_headers(secret: str, event_id: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "content-type": "application/json",
        "user-agent": "Stratus-Webhooks/1",
        "stratus-event-id": event_id,
        "stratus-timestamp": stamp,
        "stratus-signature": signature(secret, stamp, body),
    }


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None
    latency_ms: int
    error: str | None = None


@cache
def _trust_store() -> ssl.SSLContext:
    """The system's trust store, loaded once per container (each attempt's client would load it again: ~tens of
    ms); certificates are still verified for each URL's hostname."""
    return ssl.create_default_context()


async def _post(url: str, secret: str, event_id: str, body: str, policy: OutboundPolicy) -> Outcome:
    import httpx2

    started = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        destination = await checked_destination(url, policy, resolver=_resolver)
        async with guarded_http_client(destination, timeout_seconds=TIMEOUT_SECONDS, tls=_trust_store()) as http:
            response = await http.post(url, content=body.encode(), headers=signed_headers(secret, event_id, body))
        status_code = response.status_code
        if response.is_redirect:
            error = "redirect: not followed"
        elif not 200 <= status_code < 300:
            error = f"status {status_code}"
    except DomainError as refused:  # the address check, at once or on a redirect to another origin
        error = f"{refused.error_code}: {refused}"
    except httpx2.TimeoutException:
        error = "timeout: the receiver did not answer in time"
    except httpx2.HTTPError as failure:
        error = f"unreachable: {type(failure).__name__}"
    latency_ms = int((time.perf_counter() - started) * 1000)
    return Outcome(error is None, status_code, latency_ms, error[:_MAX_ERROR_CHARS] if error else None)


def attempt(url: str, secret: str, event_id: str, body: str, policy: OutboundPolicy) -> Outcome:
    """POST the body once, signed; never raises for what the receiver or the network did."""
    return asyncio.run(_post(url, secret, event_id, body, policy))


def retry_wait_seconds(attempts_made: int, base_seconds: float, *, rng: random.Random | None = None) -> float:
    """The wait before the next attempt: `base * 2^(attempts - 1)` capped, with jitter (between half and all of
    it), so receivers that failed together are not retried together."""
    ceiling = min(base_seconds * 2.0 ** min(max(attempts_made - 1, 0), 32), MAX_RETRY_WAIT_SECONDS)
    return (rng or random).uniform(ceiling / 2, ceiling)


def retry_at(first_attempt: datetime, attempts_made: int, base_seconds: float, now: datetime) -> datetime | None:
    """When to try again, or None when that would be past the 24 hours retries last (or the attempts allowed)."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    at = now + timedelta(seconds=retry_wait_seconds(attempts_made, base_seconds))
    return at if at - first_attempt <= RETRY_WINDOW else None
