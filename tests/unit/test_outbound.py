"""The outbound address guard: which URLs Stratus refuses to call, decided without any network."""

from __future__ import annotations

import asyncio

import pytest

from shared.errors import ValidationFailed
from shared.outbound import Destination, OutboundPolicy, checked_destination, stage_policy

UNSPECIFIED = ".".join("0" * 4)
PUBLIC = OutboundPolicy(require_https=False, allow_private=False)
PRIVATE_ALLOWED = OutboundPolicy(require_https=False, allow_private=True)


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return list(addresses)

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def check(url: str, policy: OutboundPolicy = PUBLIC, *addresses: str) -> Destination:
    return asyncio.run(checked_destination(url, policy, resolver=resolving_to(*(addresses or ("93.184.215.14",)))))


def refusal(url: str, policy: OutboundPolicy = PUBLIC, *addresses: str) -> str:
    with pytest.raises(ValidationFailed) as caught:
        check(url, policy, *addresses)
    assert caught.value.status == 422
    assert caught.value.error_code == "url_not_allowed"
    return caught.value.message


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        (UNSPECIFIED, "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a00:1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
    ],
)
def test_a_host_resolving_to_an_internal_address_is_refused(address: str, why: str) -> None:
    message = refusal("http://tools.example.com/mcp", PUBLIC, address)
    assert why in message
    # The message names the class of address, never the URL or what it resolved to.
    assert address not in message
    assert "tools.example.com" not in message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/mcp", "http://10.0.0.1/", "http://[::1]/", "http://0x7f000001/"]
)
def test_an_internal_address_written_in_the_url_is_refused_without_resolving(url: str) -> None:
    resolver = resolving_to("93.184.215.14")
    if url == "http://0x7f000001/":
        # Not an IP literal to Python: it goes to the resolver, and the resolver's answer is what is checked.
        resolver = resolving_to("127.0.0.1")
    with pytest.raises(ValidationFailed):
        asyncio.run(checked_destination(url, PUBLIC, resolver=resolver))


def test_one_internal_address_among_public_ones_refuses_the_host() -> None:
    assert "private" in refusal("http://tools.example.com/", PUBLIC, "93.184.215.14", "10.1.2.3")


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "fd00:ec2::254", "169.254.170.2", UNSPECIFIED, "224.0.0.1", "240.0.0.1"]
)
def test_metadata_and_unusable_addresses_are_refused_even_where_private_ones_are_allowed(address: str) -> None:
    refusal("http://tools.example.com/", PRIVATE_ALLOWED, address)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "192.168.0.9", "100.64.1.1", "::1"])
def test_a_dev_stage_that_allows_private_addresses_may_call_them(address: str) -> None:
    assert check("http://tools.internal/", PRIVATE_ALLOWED, address).address == address


def test_the_lambda_runtime_api_is_refused_even_where_private_addresses_are_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    assert "runtime API" in refusal("http://127.0.0.1:9001/2018-06-01/runtime/invocation/next", PRIVATE_ALLOWED)
    assert "runtime API" in refusal("http://sneaky.example.com/", PRIVATE_ALLOWED, "127.0.0.1")


def test_a_public_address_is_checked_and_pinned() -> None:
    destination = check("https://tools.example.com/mcp", OutboundPolicy(), "93.184.215.14", "2606:2800:21f::1")
    assert destination == Destination(
        url="https://tools.example.com/mcp",
        scheme="https",
        host="tools.example.com",
        port=443,
        address="93.184.215.14",
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://tools.example.com/mcp", "https"),
        ("ftp://tools.example.com/", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("https://user:hunter2@tools.example.com/", "credentials"),
        ("https:///mcp", "no host"),
        ("https://tools.example.com:99999/", "not valid"),
    ],
)
def test_a_malformed_or_plain_http_url_is_refused_outside_dev_stages(url: str, why: str) -> None:
    message = refusal(url, OutboundPolicy(require_https=True))
    assert why in message
    assert "hunter2" not in message


def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="does not resolve"):
        asyncio.run(checked_destination("https://nowhere.invalid/", PUBLIC, resolver=resolving_to()))


def test_the_stage_policy_allows_http_and_private_addresses_in_dev_stages_only() -> None:
    assert stage_policy(dev_stage=True, allow_private=True) == OutboundPolicy(require_https=False, allow_private=True)
    assert stage_policy(dev_stage=True, allow_private=False) == OutboundPolicy(require_https=False, allow_private=False)
    assert stage_policy(dev_stage=False, allow_private=True) == OutboundPolicy(require_https=True, allow_private=False)
