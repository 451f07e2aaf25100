"""Integration tier: the real handlers, reached through the local gateway's API Gateway v2 events, on moto."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.identity.notifier import use_notifier
from infra.catalog import AUTHORIZER_FUNCTION, STREAMING_FUNCTIONS, all_routes
from infra.local.gateway import Gateway
from shared.mcp_client import StdioServer
from shared.settings import Settings, settings_from_environ

PASSWORD = "correct horse battery"


@dataclass
class RecordingNotifier:
    sent: list[tuple[str, str, bool]] = field(default_factory=list)

    def send_password_reset(self, email: str, token: str, *, invitation: bool) -> None:
        self.sent.append((email, token, invitation))

    def token_for(self, email: str) -> str:
        return next(token for sent_to, token, _ in reversed(self.sent) if sent_to == email)


@pytest.fixture
def notifier() -> Iterator[RecordingNotifier]:
    recorder = RecordingNotifier()
    previous = use_notifier(recorder)
    yield recorder
    use_notifier(previous)


@pytest.fixture
def api(aws: None) -> Iterator[TestClient]:
    """An HTTP client for the whole API as API Gateway would serve it (authorizer included)."""
    gateway = Gateway(all_routes(), authorizer=AUTHORIZER_FUNCTION, stage="test", streaming=STREAMING_FUNCTIONS)
    with TestClient(gateway, base_url="http://127.0.0.1") as client:
        yield client
    gateway.close()


@dataclass
class User:
    id: str
    email: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}


def register(api: TestClient, email: str, password: str = PASSWORD, **extra: Any) -> User:
    response = api.post("/api/v1/auth/register", json={"email": email, "password": password, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    return User(body["user"]["id"], email, body["accessToken"], body["refreshToken"])


def login(api: TestClient, email: str, password: str = PASSWORD) -> User:
    response = api.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    return User(body["user"]["id"], email, body["accessToken"], body["refreshToken"])


def error_code(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["requestId"]
    return str(body["error"]["code"])


# MCP servers ----------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ROOT / "tests" / "mcp_servers"
EVERYTHING = SERVERS / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
MISBEHAVING = SERVERS / "misbehaving_server.py"
TIME_SERVER = StdioServer("python", ("-m", "mcp_server_time"))


def dev_settings(**overrides: str) -> Settings:
    allowed = f'[["python", "-m", "mcp_server_time"], ["python", "{MISBEHAVING}"]]'
    return settings_from_environ(
        {"STAGE": "dev", "MCP_ALLOW_PRIVATE": "true", "MCP_STDIO_ALLOWED": allowed, **overrides}
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_everything() -> Iterator[str]:
    """Start @modelcontextprotocol/server-everything on a free port (installing it first if need be); yields its
    streamable HTTP URL and stops it after."""
    if not EVERYTHING.exists():
        subprocess.run(["make", "test-servers"], cwd=ROOT, check=True)
    port = free_port()
    process = subprocess.Popen(
        ["node", str(EVERYTHING), "streamableHttp"],
        env={"PATH": os.environ["PATH"], "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server-everything did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def everything_url() -> Iterator[str]:
    """The streamable HTTP URL of a running server-everything, started once a session."""
    with running_everything() as url:
        yield url
