"""Webhook targets: what a `callback_url` may be, and where it may point (no SSRF).

Both processes check: the API when a job is submitted (422 invalid_callback_url), the webhook
sender before each delivery (a name may resolve elsewhere by then: DNS rebinding), and the
sender then connects to the very address it checked. Only global unicast addresses pass,
unless CALLBACK_ALLOWED_NETWORKS names the network or the host; cloud metadata addresses never
pass. No HTTP library here: the API image has none.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_CALLBACK_URL = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# instance metadata services: refused even when an allowed network covers them
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack...
        ipaddress.ip_address("169.254.170.2"),  # ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
# refused though Python may call them global
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# a few names resolve at once; a resolver that hangs must not hold the caller
_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


class CallbackRefused(ValueError):
    """The URL is malformed, or points where the service must not send requests."""


class CallbackUnresolved(CallbackRefused):
    """The host does not resolve (now): at delivery, a reason to retry rather than give up."""


@dataclass(frozen=True)
class CallbackTarget:
    """A checked URL: where to connect (`addresses`, all allowed) and what to ask for."""

    url: str
    scheme: str
    host: str  # as in the URL (a name, or an address without brackets)
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def netloc(self) -> str:
        """The Host header's value."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class CallbackPolicy:
    """CALLBACK_ALLOWED_NETWORKS: CIDRs, host names, or `.suffix` for every name under it."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()
    dns_timeout: float = 2.0

    @classmethod
    def parse(cls, allowed: str, dns_timeout: float = 2.0) -> CallbackPolicy:
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for item in (part.strip() for part in allowed.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                if not _looks_like_host(item.lstrip(".")):
                    raise ValueError(f"{item!r} is neither a CIDR nor a host name") from None
                hosts.add(item.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts), dns_timeout)

    def host_allowed(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.hosts or any(h.startswith(".") and name.endswith(h) for h in self.hosts)

    def address_refusal(self, address: IPAddress, host_allowed: bool = False) -> str | None:
        """Why the service must not connect to `address`; None when it may. An allowed host
        name lets any of its addresses pass but a metadata one."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address in METADATA_ADDRESSES:
            return "a cloud metadata address (never allowed)"
        if host_allowed or any(address in network for network in self.networks):
            return None
        return non_global_reason(address)

    def check(self, url: str) -> CallbackTarget:
        """Parse `url`, resolve its host (bounded by dns_timeout) and check every address it
        resolves to; CallbackRefused says why not."""
        parts = parse_callback_url(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = resolve(host, port, self.dns_timeout)
        allowed_name = self.host_allowed(host)
        for address in addresses:
            if reason := self.address_refusal(address, allowed_name):
                shown = host if host == str(address) else f"{host} ({address})"
                hint = "" if "never" in reason else "; CALLBACK_ALLOWED_NETWORKS may allow it"
                raise CallbackRefused(f"{shown} is {reason}{hint}")
        return CallbackTarget(url, parts.scheme, host, port, addresses)


def non_global_reason(address: IPAddress) -> str | None:
    """What kind of non-public address this is (None: a global unicast one)."""
    checks = (
        ("an unspecified address", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a carrier-grade NAT address (100.64.0.0/10)", address in _CGNAT),
        ("a NAT64 address (64:ff9b::/96)", address in _NAT64),
        ("a reserved address", address.is_reserved),
        ("a private address", address.is_private),
        ("not a globally routable address", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def parse_callback_url(url: str) -> SplitResult:
    """The URL's parts if it is an absolute http(s) URL without credentials; else CallbackRefused.

    Raises the same error for the syntax the options model checks and the sender re-checks.
    """
    if len(url) > MAX_CALLBACK_URL:
        raise CallbackRefused(f"longer than {MAX_CALLBACK_URL} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise CallbackRefused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise CallbackRefused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackRefused("the scheme must be http or https")
    if "@" in parts.netloc:
        raise CallbackRefused("must not carry credentials (user:password@)")
    if not parts.hostname:
        raise CallbackRefused("has no host")
    if not _is_ip(parts.hostname) and not _looks_like_host(parts.hostname):
        raise CallbackRefused(f"{parts.hostname!r} is not a host name")
    return parts


def resolve(host: str, port: int, timeout: float) -> tuple[IPAddress, ...]:
    """Every address `host` resolves to (an address resolves to itself), within `timeout` s."""
    if _is_ip(host):
        return (ipaddress.ip_address(host),)
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise CallbackUnresolved(f"{host} did not resolve within {timeout:g} s") from None
    except (OSError, UnicodeError) as exc:
        raise CallbackUnresolved(f"{host} does not resolve ({exc})") from None
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise CallbackUnresolved(f"{host} resolves to no address")
    return tuple(found)


def redact(url: str) -> str:
    """The URL without its query (it may carry a token): shown in GET /jobs/{id} and logs."""
    parts = urlsplit(url)
    query = "?..." if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{parts.path}{query}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _looks_like_host(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return (
        bool(name)
        and len(name) <= 253
        and all(
            0 < len(label) <= 63
            and all(ch.isalnum() or ch in "-_" for ch in label)
            and not label.startswith("-")
            for label in labels
        )
    )
