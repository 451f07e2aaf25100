"""The one check on addresses Stratus calls out to (MCP servers, webhooks): no request reaches an internal address.

`checked_destination` parses the URL, resolves its host and refuses every address a user must not reach through us.
`guarded_http_client` builds an HTTP client that connects only to the address that was checked (a second DNS answer
cannot move it: no rebinding), keeps the hostname for the Host header and TLS, follows no redirect, and refuses one
that points at another origin.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shared.errors import ValidationFailed

if TYPE_CHECKING:
    import httpx2

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses the host resolves to, as text.
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Instance metadata and credential endpoints (EC2 IMDS v4/v6, ECS task credentials, EKS pod identity): never reachable.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "169.254.170.23", "fd00:ec2::23")
)
_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class OutboundPolicy:
    """What a stage lets its outbound calls reach: https only outside dev stages; private addresses by opt-in."""

    require_https: bool = True
    allow_private: bool = False


@dataclass(frozen=True)
class Destination:
    """A URL whose host resolved to `address`, which was checked: the connection goes there and nowhere else."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def refused(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="url_not_allowed")


def _runtime_api_addresses() -> frozenset[IPAddress]:
    """The Lambda runtime API's address (AWS_LAMBDA_RUNTIME_API is `host:port`): a function must not call itself."""
    runtime_api = os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
    host = runtime_api.rsplit(":", 1)[0].strip("[]") if runtime_api else ""
    try:
        return frozenset({ipaddress.ip_address(host)}) if host else frozenset()
    except ValueError:
        return frozenset()


# (test, why), checked in this order: refused on every stage; private (refused unless the policy allows them);
# then whatever is still not a public address (reserved, documentation, benchmarking ranges...).
_Check = tuple[Callable[[IPAddress], bool], str]
_ALWAYS_REFUSED: tuple[_Check, ...] = (
    (lambda address: address in METADATA_ADDRESSES, "a cloud metadata address"),
    (lambda address: address in _runtime_api_addresses(), "the function's runtime API address"),
    (lambda address: address.is_unspecified, "an unspecified address"),
    (lambda address: address.is_multicast, "a multicast address"),
    # ::1 sits in IPv6's reserved ::/8; it is judged as loopback below.
    (lambda address: address.is_reserved and not address.is_loopback, "a reserved address"),
)
_PRIVATE: tuple[_Check, ...] = (
    (lambda address: address.is_loopback, "a loopback address"),
    (lambda address: address.is_link_local, "a link-local address"),
    (lambda address: address in _CARRIER_GRADE_NAT, "a carrier-grade NAT address"),
    (lambda address: address.is_private, "a private address"),
)
_NOT_PUBLIC: tuple[_Check, ...] = ((lambda address: not address.is_global, "not a public address"),)


def _first_reason(address: IPAddress, checks: tuple[_Check, ...]) -> str | None:
    return next((why for refuses, why in checks if refuses(address)), None)


def refusal_reason(address: IPAddress, policy: OutboundPolicy) -> str | None:
    """Why `address` may not be called under `policy`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 form of an IPv4 address (mapped, or NAT64) is judged as that IPv4 address.
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        )
        if embedded is not None:
            return refusal_reason(embedded, policy)
    reason = _first_reason(address, _ALWAYS_REFUSED)
    if reason is not None:
        return reason
    private = _first_reason(address, _PRIVATE)
    if private is not None:
        return None if policy.allow_private else private
    return _first_reason(address, _NOT_PUBLIC)


async def system_resolver(host: str, port: int) -> list[str]:
    try:
        answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


def _parsed(url: str, policy: OutboundPolicy) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise refused("the URL is not valid") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise refused("the URL must use http or https")
    if policy.require_https and scheme != "https":
        raise refused("the URL must use https")
    if parts.username is not None or parts.password is not None:
        raise refused("the URL may not carry credentials: send them as headers")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise refused("the URL has no host")
    return scheme, host, port or _DEFAULT_PORTS[scheme]


async def checked_destination(url: str, policy: OutboundPolicy, *, resolver: Resolver = system_resolver) -> Destination:
    """Resolve the URL's host and check every address it resolves to: `url_not_allowed` (422) if any is refused."""
    scheme, host, port = _parsed(url, policy)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    answers = [str(literal)] if literal is not None else await resolver(host, port)
    addresses = [ipaddress.ip_address(answer.split("%", 1)[0]) for answer in answers]
    if not addresses:
        raise refused("the URL's host does not resolve")
    for address in addresses:
        reason = refusal_reason(address, policy)
        if reason is not None:
            subject = "the URL's host is" if literal is not None else "the URL's host resolves to"
            raise refused(f"{subject} {reason}, which Stratus does not call")
    return Destination(url=url, scheme=scheme, host=host, port=port, address=str(addresses[0]))


def guarded_http_client(
    destination: Destination,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_seconds: float = 30.0,
    tls: ssl.SSLContext | None = None,
) -> httpx2.AsyncClient:
    """An HTTP client pinned to `destination`: it connects to the checked address only, and to no other origin.
    Over https the certificate is verified for the URL's hostname (sent as SNI), against the system's trust store
    unless `tls` says otherwise."""
    import httpx2

    class PinnedTransport(httpx2.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            scheme = request.url.scheme
            origin = (scheme, (request.url.host or "").rstrip("."), request.url.port or _DEFAULT_PORTS.get(scheme, 0))
            if origin != destination.origin:
                raise refused("the server sent the request to another origin, which Stratus does not follow")
            # Connect to the checked address; the Host header (already set) and TLS keep the hostname.
            request.url = request.url.copy_with(host=destination.address)
            request.extensions = {**request.extensions, "sni_hostname": destination.host}
            return await super().handle_async_request(request)

    async def refuse_redirects_elsewhere(response: httpx2.Response) -> None:
        """A redirect to another origin is refused as that origin would be (422), whoever would follow it."""
        location = response.headers.get("location")
        if not response.is_redirect or not location:
            return
        target = response.request.url.join(location)
        port = target.port or _DEFAULT_PORTS.get(target.scheme, 0)
        host = (target.host or "").rstrip(".")
        same_origin = (target.scheme, port) == (destination.scheme, destination.port) and host in {
            destination.host,
            destination.address,
        }
        if not same_origin:
            raise refused("the server redirects to another origin, which Stratus does not follow")

    return httpx2.AsyncClient(
        transport=PinnedTransport(trust_env=False, verify=tls if tls is not None else True),
        headers=dict(headers or {}),
        timeout=timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        event_hooks={"response": [refuse_redirects_elsewhere]},
    )


def stage_policy(*, dev_stage: bool, allow_private: bool) -> OutboundPolicy:
    """The policy of a stage: plain http only in dev stages; private addresses only where the stage opts in."""
    return OutboundPolicy(require_https=not dev_stage, allow_private=allow_private and dev_stage)
