"""The guarded HTTP client against a real HTTP server on 127.0.0.1: it goes to the checked address, and only there."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
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


# TLS: the pinned connection still speaks to the hostname ---------------------------------------------------------


def _certificate_authority(hostname: str) -> tuple[bytes, bytes, bytes]:
    """A throwaway CA, and a certificate it signed for `hostname`: (CA PEM, leaf PEM, leaf key PEM)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
        )
        if subject == hostname:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        else:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Stratus test CA")])
    ca = certificate("Stratus test CA", ca_key, ca_name, ca_key)
    leaf = certificate(hostname, leaf_key, ca.subject, ca_key)
    pem = serialization.Encoding.PEM
    key_pem = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), leaf.public_bytes(pem), key_pem


def test_an_https_call_pinned_to_the_checked_address_verifies_the_hostname_and_sends_it_as_sni(
    tmp_path: Path,
) -> None:
    hostname = "mcp.tls.test"
    ca_pem, leaf_pem, key_pem = _certificate_authority(hostname)
    (tmp_path / "leaf.pem").write_bytes(leaf_pem + key_pem)
    server_names: list[str | None] = []
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(tmp_path / "leaf.pem")
    serving.sni_callback = lambda _socket, name, _context: server_names.append(name)  # type: ignore[func-returns-value]
    server = RecordingServer(("127.0.0.1", 0), Handler)
    server.seen = []
    server.socket = serving.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    trusted = ssl.create_default_context(cadata=ca_pem.decode())
    policy = OutboundPolicy(require_https=True, allow_private=True)

    async def call(host: str) -> int:
        url = f"https://{host}:{port_of(server)}/ok"
        destination = await checked_destination(url, policy, resolver=fixed_resolver("127.0.0.1", []))
        async with guarded_http_client(destination, tls=trusted) as client:
            return (await client.get(url)).status_code

    try:
        assert asyncio.run(call(hostname)) == 200
        # Another name on the same address: its certificate does not match, so the call fails, not the check.
        with pytest.raises(httpx2.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|match"):
            asyncio.run(call("other.tls.test"))
    finally:
        server.shutdown()
    assert server_names[0] == hostname
    assert server.seen == [("/ok", f"{hostname}:{port_of(server)}")]
