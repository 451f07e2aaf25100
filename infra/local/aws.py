"""The embedded AWS of local mode and the tests: a moto server provisioned as a deployed stage is.

`start_local_aws()` points this process's environment (and so every boto3 client the handlers make) at a
fresh moto server, then creates what the deployed stack would (`infra.local.provision`): every table from
`shared.tables`, the signing-key secret with its first key, and the payload bucket. moto runs in a process of its
own (`infra.local.moto_process`). `LocalAws.stop()` ends it, state and all, and puts the environment back, so a
test session can start and stop it more than once. `attach_local_aws()` points the environment at another
process's moto instead, already provisioned, and leaves it running on `stop()`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REGION = "us-east-1"
_REPO_ROOT = Path(__file__).resolve().parents[2]

# Always set: local mode must never reach a real AWS account, whatever the shell exports.
_FORCED = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's conventional fake credential
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "LOCAL_MODE": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Stratus",
}
# Set unless the developer chose otherwise.
_DEFAULTS = {
    "PASSWORD_HASH_COST": "14",  # scrypt N=2**14: a login in ~30 ms instead of ~250 ms
    "CORS_ALLOW_ORIGINS": "*",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
# Removed: a profile or session token would make boto3 look for real credentials or reject the fake ones.
_REMOVED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


@dataclass
class LocalAws:
    """A running embedded AWS; `environment` is what was put into `os.environ` for it."""

    stage: str
    endpoint_url: str
    port: int
    environment: dict[str, str]
    # None: attached to another process's moto, which it neither provisioned nor stops.
    _server: subprocess.Popen[str] | None = field(repr=False)
    _previous: dict[str, str | None] = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop the server (its state goes with it) and restore the environment as before `start_local_aws()`."""
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            _terminate(self._server)
        for name, value in self._previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _forget_cached_clients()

    def forward_invocations_to(self, endpoint_url: str) -> None:
        """Send the Lambda tasks of Step Functions executions to `endpoint_url` (the local gateway's Invoke API).
        An attached moto keeps sending them to the gateway that started it."""
        if self._server is None:
            return
        stdin = self._server.stdin
        assert stdin is not None
        stdin.write(f"lambda-endpoint {endpoint_url}\n")
        stdin.flush()

    def __enter__(self) -> LocalAws:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_local_aws(stage: str = "local", *, host: str = "127.0.0.1", port: int = 0) -> LocalAws:
    """Start moto on `host:port` (0: any free port), point the environment at it, create the stage's tables
    and signing keys. Call it before importing any handler: they read their settings once, at import."""
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "infra.local.moto_process", "--host", host, "--port", str(port)],
        cwd=_REPO_ROOT,
        stdout=subprocess.PIPE,
        # Commands to the server (`lambda-endpoint <url>`); closed, it stops.
        stdin=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    ready = server.stdout.readline().split()  # blocks until moto is listening, or the process ends
    if len(ready) != 2 or ready[0] != "ready":
        _terminate(server)
        raise RuntimeError(f"the local moto server did not start (exit code {server.returncode})")
    bound_port = int(ready[1])
    endpoint_url = f"http://{host}:{bound_port}"
    environment, previous = _point_environment_at(endpoint_url, bound_port, stage)

    from infra.local.provision import provision_stage

    return _with_stage(LocalAws(stage, endpoint_url, bound_port, environment, server, previous), provision_stage)


def attach_local_aws(endpoint_url: str, stage: str = "local") -> LocalAws:
    """Point the environment at the moto another local stack started at `endpoint_url` (its stage already
    provisioned), as a second container of the same stage sees the same AWS. `stop()` leaves that moto running."""
    from urllib.parse import urlsplit

    port = urlsplit(endpoint_url).port
    if port is None:
        raise ValueError(f"{endpoint_url!r} names no port")
    environment, previous = _point_environment_at(endpoint_url, port, stage)
    from infra.local.provision import attached_stage

    return _with_stage(LocalAws(stage, endpoint_url, port, environment, None, previous), attached_stage)


def _with_stage(local: LocalAws, stage_environment: Callable[[str], dict[str, str]]) -> LocalAws:
    """`local` with the environment of its stage's resources (provisioned or found) added; stopped on failure."""
    try:
        # Settings read before the stage's names are set must be read again afterwards.
        extra = stage_environment(local.stage)
        for name in extra:
            local._previous.setdefault(name, os.environ.get(name))
        os.environ.update(extra)
        local.environment.update(extra)
        _forget_cached_clients()
    except BaseException:
        local.stop()
        raise
    return local


def _point_environment_at(endpoint_url: str, port: int, stage: str) -> tuple[dict[str, str], dict[str, str | None]]:
    """Set the environment for the moto at `endpoint_url`; what was set, and what it replaced."""
    environment = {
        **{name: os.environ.get(name) or value for name, value in _DEFAULTS.items()},
        **_FORCED,
        "AWS_ENDPOINT_URL": endpoint_url,
        # Step Functions executions on moto call back into the server at this port.
        "MOTO_PORT": str(port),
        "STAGE": stage,
    }
    previous = {name: os.environ.get(name) for name in (*environment, *_REMOVED)}
    for name in _REMOVED:
        os.environ.pop(name, None)
    os.environ.update(environment)
    _forget_cached_clients()
    return environment, previous


def _terminate(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):  # a command the server never read
                stream.close()


def _forget_cached_clients() -> None:
    """Drop clients, settings, keys and figures cached for a previous environment (tests restart the fakes)."""
    from functions.chat.limits import forget_stage_spend
    from shared.auth.keys import forget_key_ring
    from shared.aws import reset_clients
    from shared.settings import get_settings

    reset_clients()
    get_settings.cache_clear()
    forget_key_ring()
    forget_stage_spend()
