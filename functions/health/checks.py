"""Dependency checks: every table the function was given, and the signing key secret, each timed."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shared.tables import TABLES


@dataclass(frozen=True)
class Check:
    name: str
    healthy: bool
    latency_ms: float
    error: str | None = None


def _timed(name: str, probe: object) -> Check:
    started = time.perf_counter()
    try:
        probe()  # type: ignore[operator]
    except Exception as error:
        return Check(name, False, _ms_since(started), type(error).__name__)
    return Check(name, True, _ms_since(started))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def run_checks() -> list[Check]:
    """Probe each dependency concurrently; a readiness answer must not take the sum of their latencies."""
    import os

    from shared.aws import client
    from shared.settings import get_settings

    probes: list[tuple[str, object]] = []
    for spec in TABLES:
        table_name = os.environ.get(spec.env_var)
        if table_name:
            probes.append(
                (
                    f"table:{spec.context}",
                    lambda name=table_name: client("dynamodb").describe_table(TableName=name),
                )
            )
    secret = get_settings().signing_keys_secret
    if secret:
        probes.append(("secret:signing-keys", lambda: client("secretsmanager").describe_secret(SecretId=secret)))
    with ThreadPoolExecutor(max_workers=max(1, len(probes))) as pool:
        return list(pool.map(lambda probe: _timed(*probe), probes))
