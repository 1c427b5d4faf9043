"""The SSRF guard of callback URLs: which addresses and URLs are refused, which allowed."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from shared.api_keys import KeyRing, owner_fingerprint, read_key_entries
from shared.callback_urls import (
    CallbackPolicy,
    CallbackRefused,
    CallbackUnresolved,
    HostResolver,
    parse_callback_url,
    redact,
)
from shared.errors import InvalidCallbackUrl, InvalidOption
from shared.options import parse_options

REFUSED = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://127.8.9.10:8080/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://localhost:9000/hook", "loopback"),  # a name: resolved, then judged
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://169.254.1.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://100.127.255.254/", "carrier-grade NAT"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped: judged as IPv4
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[64:ff9b::a00:1]/", "NAT64"),
]


@pytest.mark.parametrize(("url", "kind"), REFUSED)
def test_non_public_addresses_are_refused(url: str, kind: str) -> None:
    with pytest.raises(CallbackRefused, match=kind):
        CallbackPolicy().check(url)


# one address in each entry of the IANA IPv4 and IPv6 Special-Purpose Address Registries
# (Python 3.11's ipaddress calls several of these global), and IPv6 outside 2000::/3
SPECIAL_PURPOSE = [
    "0.1.2.3",
    "192.0.0.8",  # IPv4 dummy address
    "192.0.0.170",  # NAT64/DNS64 discovery
    "192.0.0.9",  # PCP anycast (marked globally reachable, still no receiver)
    "192.0.2.1",
    "192.31.196.1",
    "192.52.193.1",
    "192.88.99.1",
    "192.175.48.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "255.255.255.255",
    "[64:ff9b:1::1]",
    "[100::1]",
    "[100:0:0:1::1]",
    "[2001::1]",  # Teredo
    "[2001:2::1]",
    "[2001:20::1]",  # ORCHIDv2
    "[2001:db8::1]",
    "[2620:4f:8000::1]",
    "[3fff::1]",
    "[5f00::1]",
    "[fec0::1]",  # site-local, deprecated
    "[4000::1]",  # not yet allocated
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "[2002:a00:1::1]",  # 6to4 of 10.0.0.1
    "[2002:c000:8::]",  # 6to4 of 192.0.0.8
]


@pytest.mark.parametrize("host", SPECIAL_PURPOSE)
def test_every_special_purpose_range_is_refused(host: str) -> None:
    with pytest.raises(CallbackRefused, match=r" is (a|an|the|not) "):
        CallbackPolicy().check(f"http://{host}/hook")


def test_6to4_is_judged_by_the_ipv4_address_it_embeds() -> None:
    with pytest.raises(CallbackRefused, match=r"6to4 address of 127\.0\.0\.1, a loopback"):
        CallbackPolicy().check("http://[2002:7f00:1::]/")
    assert CallbackPolicy().check("http://[2002:5db8:d70e::1]/")  # 93.184.215.14: public
    # the tests' loopback allowance still works, and covers nothing else
    policy = CallbackPolicy.parse("127.0.0.1/32")
    assert policy.check("http://127.0.0.1:9/h") and policy.check("http://[::ffff:127.0.0.1]:9/h")
    with pytest.raises(CallbackRefused, match="loopback"):
        policy.check("http://127.0.0.2/h")


@pytest.mark.parametrize(
    "url", ["http://93.184.215.14/hook", "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/x"]
)
def test_public_addresses_pass(url: str) -> None:
    target = CallbackPolicy().check(url)
    assert len(target.addresses) == 1


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("//example.com/x", "scheme"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://user@example.com/", "credentials"),
        ("http:///nohost", "no host"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://ex!ample.com/", "not a host name"),
        ("http://example.com/" + "a" * 2100, "longer than"),
    ],
)
def test_malformed_urls_are_refused_before_any_lookup(url: str, why: str) -> None:
    with pytest.raises(CallbackRefused, match=why):
        parse_callback_url(url)


def test_allowed_networks_and_hosts_let_those_through_but_never_metadata() -> None:
    policy = CallbackPolicy.parse("127.0.0.1/32, 10.0.0.0/8, localhost, .corp.example")

    assert policy.check("http://127.0.0.1:8080/hook").port == 8080
    assert policy.check("http://10.9.8.7/").addresses[0].packed == bytes([10, 9, 8, 7])
    assert policy.check("http://localhost/hook")  # an allowed name, whatever it resolves to
    assert policy.host_allowed("hooks.corp.example") and not policy.host_allowed("corp.example.org")
    with pytest.raises(CallbackRefused, match="private"):
        policy.check("http://192.168.0.1/")  # not in the list
    wide = CallbackPolicy.parse("169.254.0.0/16")
    with pytest.raises(CallbackRefused, match="metadata"):
        wide.check("http://169.254.169.254/")
    assert wide.check("http://169.254.10.10/")


def test_a_bad_allowed_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="neither a CIDR nor a host"):
        CallbackPolicy.parse("10.0.0.0/8, not a host")


def test_redaction_keeps_scheme_host_and_path_not_the_query() -> None:
    assert redact("https://h.example:8443/a/b?token=abc") == "https://h.example:8443/a/b?..."
    assert redact("https://h.example/a") == "https://h.example/a"


def test_the_options_model_refuses_a_malformed_callback_url_as_invalid_callback_url() -> None:
    with pytest.raises(InvalidCallbackUrl, match=r"^callback_url: the scheme must be http"):
        parse_options({"callback_url": "ftp://example.com/"})
    with pytest.raises(InvalidOption, match=r"accepted: file, pages, dpi, .*callback_url"):
        parse_options({"colour": "red"})
    options = parse_options({"callback_url": " https://example.com/h ", "callback_events": "all"})
    assert options.callback_url == "https://example.com/h"


S3 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_key_file_carries_callback_and_secret_and_plain_lines_still_work(tmp_path) -> None:
    path = tmp_path / "keys"
    path.write_text(
        "# keys\nplain-key\nk2 callback=https://hooks.example/ocr secret=whsec_"
        + "A" * 32
        + f"\n\nk3 secret={S3}\n"
    )
    entries = read_key_entries(path)

    assert set(entries) == {"plain-key", "k2", "k3"}
    ring = KeyRing(entries)
    assert ring.for_owner(owner_fingerprint("k2")).callback_url == "https://hooks.example/ocr"
    assert ring.for_owner(owner_fingerprint("k3")).secret == S3
    assert ring.for_owner(owner_fingerprint("plain-key")).secret is None
    assert "whsec" not in repr(entries)
    path.write_text("k1 colour=red\n")
    with pytest.raises(ValueError, match="line 1: after the key") as error:
        read_key_entries(path)
    assert "k1" not in str(error.value)


def test_a_name_that_hangs_holds_one_lookup_and_its_keys_share_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resolver that never answers for some names: each name is looked up once, callers
    after the first are told at once once its time is up, and a key with `per_tenant` names
    unanswered gets no more lookups while another key's names resolve."""
    release = threading.Event()
    asked: list[str] = []
    real = socket.getaddrinfo

    def resolver(host: str, *args: object, **kwargs: object) -> list:
        if host.endswith(".hang.test"):
            asked.append(host)
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if host == "ok.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    lookups = HostResolver(per_tenant=2)
    try:
        with pytest.raises(CallbackUnresolved, match=r"did not resolve within 0\.5 s"):
            lookups.resolve("a.hang.test", 0.5, "key-a")
        started = time.monotonic()
        for _ in range(10):  # the same name again: told at once, no new lookup
            with pytest.raises(CallbackUnresolved, match="did not resolve"):
                lookups.resolve("A.hang.test.", 0.5, "key-b")
        waited = time.monotonic() - started
        with pytest.raises(CallbackUnresolved, match="did not resolve"):
            lookups.resolve("b.hang.test", 0.1, "key-a")
        with pytest.raises(CallbackUnresolved, match="2 host lookups of this API key"):
            lookups.resolve("c.hang.test", 0.1, "key-a")
        assert lookups.resolve("ok.test", 0.5, "key-b")[0].packed == bytes([93, 184, 215, 14])
    finally:
        release.set()

    assert asked == ["a.hang.test", "b.hang.test"]
    assert waited < 3  # ten callers, not ten times 0.5 s each
    policy = CallbackPolicy(resolver=lookups)  # the policy asks its resolver, for its tenant
    assert policy.check("http://ok.test/h", tenant="key-c").host == "ok.test"
