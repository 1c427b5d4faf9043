"""Webhook targets: what a `callback_url` may be, and where it may point (no SSRF).

Both processes check: the API when a job is submitted (422 invalid_callback_url), the webhook
sender before each delivery (a name may resolve elsewhere by then: DNS rebinding), and the
sender then connects to the very address it checked. Only global unicast addresses pass (none
of the IANA special-purpose ranges), unless CALLBACK_ALLOWED_NETWORKS names the network or the
host; cloud metadata addresses never pass. No HTTP library here: the API image has none.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
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
# The IANA IPv4 and IPv6 Special-Purpose Address Registries (iana.org/assignments/iana-ipv4-
# special-registry, iana-ipv6-special-registry, as of 2025), every entry, with the registry's
# name: a webhook receiver has no business in any of them, including the few the registry marks
# globally reachable (anycast relays, AS112 sinks). Python's ipaddress lags them (3.11 calls
# 192.0.0.8, 2002::/16 and fec0::/10 global), so this table is the rule and is_global a backstop.
SPECIAL_PURPOSE: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), name)
    for cidr, name in (
        ("0.0.0.0/32", "an unspecified address"),
        ("0.0.0.0/8", "a 'this network' address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address (100.64.0.0/10)"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol assignment (192.0.0.0/24)"),
        ("192.0.2.0/24", "a documentation address (TEST-NET-1)"),
        ("192.31.196.0/24", "an AS112 address"),
        ("192.52.193.0/24", "an AMT relay address"),
        ("192.88.99.0/24", "a 6to4 relay anycast address"),
        ("192.168.0.0/16", "a private address"),
        ("192.175.48.0/24", "an AS112 address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address (TEST-NET-2)"),
        ("203.0.113.0/24", "a documentation address (TEST-NET-3)"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b::/96", "a NAT64 address (64:ff9b::/96)"),
        ("64:ff9b:1::/48", "a NAT64 address (64:ff9b:1::/48)"),
        ("100::/64", "a discard-only address"),
        ("100:0:0:1::/64", "a dummy IPv6 address"),
        ("2001::/32", "a Teredo address"),
        ("2001::/23", "an IETF protocol assignment (2001::/23)"),
        ("2001:db8::/32", "a documentation address"),
        ("2620:4f:8000::/48", "an AS112 address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "a segment routing (SRv6) address"),
        ("fc00::/7", "a private address (unique local)"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address (deprecated)"),
        ("ff00::/8", "a multicast address"),
    )
)
# IPv6 outside 2000::/3 is not global unicast (the IPv6 Address Space registry): reserved
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_6TO4 = ipaddress.ip_network("2002::/16")  # embeds an IPv4 address in bits 16-47

# Host lookups: a thread per host name being looked up (callers asking for a name already in
# flight wait on that one), at most LOOKUPS_PER_TENANT names in flight started by one API key
# and LOOKUPS_IN_FLIGHT in all, so a resolver that never answers for one tenant's names holds
# that tenant's lookups only, never a pool everyone shares.
LOOKUPS_PER_TENANT = 16
LOOKUPS_IN_FLIGHT = 256


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
    resolver: HostResolver = field(default_factory=lambda: RESOLVER, compare=False)
    # the setting that lists them, named in a refusal's hint (source URLs have their own)
    setting: str = field(default="CALLBACK_ALLOWED_NETWORKS", compare=False)
    max_url_length: int = field(default=MAX_CALLBACK_URL, compare=False)

    @classmethod
    def parse(
        cls,
        allowed: str,
        dns_timeout: float = 2.0,
        setting: str = "CALLBACK_ALLOWED_NETWORKS",
        max_url_length: int = MAX_CALLBACK_URL,
    ) -> CallbackPolicy:
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
        return cls(
            tuple(networks),
            frozenset(hosts),
            dns_timeout,
            setting=setting,
            max_url_length=max_url_length,
        )

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

    def listed(self, address: IPAddress, host: str) -> bool:
        """Is the address (or the host name) named by the allowed networks and hosts
        themselves, not merely public? (Plain http:// sources may reach only these.)"""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address in METADATA_ADDRESSES:
            return False
        return self.host_allowed(host) or any(address in network for network in self.networks)

    def check(self, url: str, tenant: str | None = None) -> CallbackTarget:
        """Parse `url`, resolve its host (bounded by dns_timeout, and in lookups in flight for
        `tenant`, the job's owner) and check every address it resolves to; CallbackRefused
        says why not."""
        parts = parse_callback_url(url, self.max_url_length)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = self.resolver.resolve(host, self.dns_timeout, tenant or "")
        allowed_name = self.host_allowed(host)
        for address in addresses:
            if reason := self.address_refusal(address, allowed_name):
                shown = host if host == str(address) else f"{host} ({address})"
                hint = "" if "never" in reason else f"; {self.setting} may allow it"
                raise CallbackRefused(f"{shown} is {reason}{hint}")
        return CallbackTarget(url, parts.scheme, host, port, addresses)


def non_global_reason(address: IPAddress) -> str | None:
    """What kind of non-public address this is (None: a global unicast one). 6to4 is judged by
    the IPv4 address it embeds."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return non_global_reason(address.ipv4_mapped)
        if address in _6TO4:
            embedded = address.sixtofour
            assert embedded is not None
            inner = non_global_reason(embedded)
            return f"a 6to4 address of {embedded}, {inner}" if inner else None
    for network, kind in SPECIAL_PURPOSE:
        if address.version == network.version and address in network:
            return kind
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return "a reserved address (outside 2000::/3)"
    if not address.is_global:  # a backstop, should Python know a range the table lacks
        return "not a globally routable address"
    return None


def parse_callback_url(url: str, max_length: int = MAX_CALLBACK_URL) -> SplitResult:
    """The URL's parts if it is an absolute http(s) URL without credentials; else CallbackRefused.

    Raises the same error for the syntax the options model checks and the sender re-checks.
    """
    if len(url) > max_length:
        raise CallbackRefused(f"longer than {max_length} characters")
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


class HostResolver:
    """getaddrinfo bounded in time, one thread per host name in flight (see LOOKUPS_*)."""

    def __init__(
        self, per_tenant: int = LOOKUPS_PER_TENANT, in_flight: int = LOOKUPS_IN_FLIGHT
    ) -> None:
        self.per_tenant = per_tenant
        self.in_flight = in_flight
        self._lock = threading.Lock()
        # name -> (its lookup, when it started)
        self._running: dict[str, tuple[concurrent.futures.Future, float]] = {}
        self._by_tenant: Counter[str] = Counter()

    def resolve(self, host: str, timeout: float, tenant: str = "") -> tuple[IPAddress, ...]:
        """Every address `host` resolves to (an address resolves to itself), within `timeout` s;
        CallbackUnresolved when it does not, or `tenant` has too many lookups in flight."""
        if _is_ip(host):
            return (ipaddress.ip_address(host),)
        future, started = self._lookup(host.lower().rstrip("."), tenant)
        try:
            # from the lookup's start, not this caller's: while a name hangs, callers after
            # the first are told at once instead of each holding a thread for `timeout`
            infos = future.result(timeout=max(0.0, started + timeout - time.monotonic()))
        except concurrent.futures.TimeoutError:
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

    def _lookup(self, name: str, tenant: str) -> tuple[concurrent.futures.Future, float]:
        """The lookup of `name` in flight, or a new one charged to `tenant`; when it started."""
        with self._lock:
            if name in self._running:
                return self._running[name]
            if self._by_tenant[tenant] >= self.per_tenant:
                raise CallbackUnresolved(
                    f"{name} not looked up: {self.per_tenant} host lookups of this API key are "
                    "still unanswered"
                )
            if len(self._running) >= self.in_flight:
                raise CallbackUnresolved(f"{name} not looked up: too many lookups unanswered")
            future: concurrent.futures.Future = concurrent.futures.Future()
            started = time.monotonic()
            self._running[name] = (future, started)
            self._by_tenant[tenant] += 1
        thread = threading.Thread(
            target=self._run, args=(name, tenant, future), name="resolve", daemon=True
        )
        thread.start()
        return future, started

    def _run(self, name: str, tenant: str, future: concurrent.futures.Future) -> None:
        try:
            # looked up at call time: tests stand a resolver in for socket.getaddrinfo
            future.set_result(socket.getaddrinfo(name, None, type=socket.SOCK_STREAM))
        except Exception as exc:  # noqa: BLE001 - handed to every waiter, to raise there
            future.set_exception(exc)
        finally:
            with self._lock:
                del self._running[name]
                self._by_tenant[tenant] -= 1
                if not self._by_tenant[tenant]:
                    del self._by_tenant[tenant]


# one per process: the API's submits and the sender's attempts share its bounds
RESOLVER: HostResolver = HostResolver()


def host_lane(url: str) -> str:
    """`host:port` of a callback URL (the name as written, lower case; not its addresses): the
    unit the webhook sender isolates, so a receiver that hangs delays only its own lane."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
