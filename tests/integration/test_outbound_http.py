"""The guarded HTTP client against a real HTTP server on 127.0.0.1: it goes to the checked address, and only there."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.errors import ValidationFailed
from shared.outbound import OutboundPolicy, checked_destination, guarded_http_client

PUBLIC_ONLY = OutboundPolicy(require_https=False, allow_private=False)
PRIVATE_ALLOWED = OutboundPolicy(require_https=False, allow_private=True)


class RecordingServer(ThreadingHTTPServer):
    seen: list[tuple[str, str]]


class Handler(BaseHTTPRequestHandler):
    server: RecordingServer

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host", "")))
        if self.path.startswith("/redirect-"):
            self.send_response(302)
            target = "/ok" if self.path == "/redirect-same" else "http://10.0.0.1/latest/meta-data/"
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[RecordingServer]:
    server = RecordingServer(("127.0.0.1", 0), Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def fixed_resolver(address: str, calls: list[str]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return [address]

    return resolve


def port_of(server: RecordingServer) -> int:
    return int(server.server_address[1])


def test_a_loopback_server_is_called_only_where_private_addresses_are_allowed(local_server: RecordingServer) -> None:
    url = f"http://127.0.0.1:{port_of(local_server)}/ok"

    async def call(policy: OutboundPolicy) -> int:
        destination = await checked_destination(url, policy)
        async with guarded_http_client(destination) as client:
            return (await client.get(url)).status_code

    with pytest.raises(ValidationFailed, match="loopback"):
        asyncio.run(call(PUBLIC_ONLY))
    assert local_server.seen == []
    assert asyncio.run(call(PRIVATE_ALLOWED)) == 200
    assert local_server.seen == [("/ok", f"127.0.0.1:{port_of(local_server)}")]


def test_the_connection_goes_to_the_checked_address_with_the_hostname_kept(local_server: RecordingServer) -> None:
    # `tools.example.test` resolves nowhere on this machine: reaching the server proves the client used the address
    # that was checked, and a second request does not resolve again (a changed DNS answer cannot move it).
    port = port_of(local_server)
    url = f"http://tools.example.test:{port}/ok"
    calls: list[str] = []

    async def call_twice() -> list[int]:
        destination = await checked_destination(url, PRIVATE_ALLOWED, resolver=fixed_resolver("127.0.0.1", calls))
        async with guarded_http_client(destination) as client:
            return [(await client.get(url)).status_code, (await client.get(url)).status_code]

    assert asyncio.run(call_twice()) == [200, 200]
    assert calls == ["tools.example.test"]
    assert local_server.seen == [("/ok", f"tools.example.test:{port}")] * 2


def test_a_hostname_resolving_to_a_private_address_is_refused_before_any_request(
    local_server: RecordingServer,
) -> None:
    url = f"http://tools.example.test:{port_of(local_server)}/ok"
    with pytest.raises(ValidationFailed, match="resolves to a loopback address"):
        asyncio.run(checked_destination(url, PUBLIC_ONLY, resolver=fixed_resolver("127.0.0.1", [])))
    assert local_server.seen == []


def test_a_redirect_to_a_private_address_is_not_followed(local_server: RecordingServer) -> None:
    url = f"http://127.0.0.1:{port_of(local_server)}/redirect-private"

    async def call(*, follow: bool) -> int:
        destination = await checked_destination(url, PRIVATE_ALLOWED)
        async with guarded_http_client(destination) as client:
            return (await client.get(url, follow_redirects=follow)).status_code

    # Followed or not, a redirect to another origin is refused as that origin would be, and never called.
    for follow in (False, True):
        with pytest.raises(ValidationFailed, match="redirects to another origin") as caught:
            asyncio.run(call(follow=follow))
        assert caught.value.error_code == "url_not_allowed"
    assert [path for path, _ in local_server.seen] == ["/redirect-private", "/redirect-private"]


def test_a_redirect_within_the_origin_reaches_the_caller_unfollowed(local_server: RecordingServer) -> None:
    url = f"http://127.0.0.1:{port_of(local_server)}/redirect-same"

    async def call() -> int:
        destination = await checked_destination(url, PRIVATE_ALLOWED)
        async with guarded_http_client(destination) as client:
            return (await client.get(url)).status_code

    assert asyncio.run(call()) == 302
    assert [path for path, _ in local_server.seen] == ["/redirect-same"]
