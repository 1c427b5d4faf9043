"""API keys and what each may carry: a name, quotas, a default webhook URL and its secret.

API_KEYS_FILE holds one key a line, optionally followed by options (space separated, any
order): `name=<label>` (letters, digits, `-_.`: what logs, metrics and usage show, never the
key), the quotas `pages_per_day=N`, `max_queued=N`, `max_pages_per_job=N` (whole numbers >= 1;
absent = unlimited), and the webhook options `callback=<url>`, `secret=whsec_<base64>`:
`k-3f9a name=scans pages_per_day=5000 callback=https://hooks.example/ocr secret=whsec_MfKQ...`.
A plain key line stays valid; a key without `name=` is shown as `key-<8 hex>` of its
fingerprint. The API takes a job's default callback and the quotas from its key; the webhook
sender signs with the key's secret (else one derived from WEBHOOK_SECRET for the key). Jobs
keep only the key's fingerprint, so both look a key up by it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_QUOTAS = ("pages_per_day", "max_queued", "max_pages_per_job")
_OPTIONS = ("name", "callback", "secret", *_QUOTAS)
ANONYMOUS = "anonymous"  # the tenant of jobs sent while auth is off


@dataclass(frozen=True)
class Quotas:
    """A key's limits; None = unlimited."""

    pages_per_day: int | None = None
    max_queued: int | None = None
    max_pages_per_job: int | None = None


@dataclass(frozen=True)
class KeyEntry:
    key: str
    callback_url: str | None = None
    secret: str | None = None
    name: str | None = None  # as the file gives it; `label` is what is shown
    quotas: Quotas = field(default_factory=Quotas)

    def __repr__(self) -> str:  # keys and secrets never reach a log line
        return f"KeyEntry(name={self.label!r}, callback_url={self.callback_url!r})"

    @property
    def owner(self) -> str:
        """The key's fingerprint, as job records and usage keep it."""
        return owner_fingerprint(self.key) or ""

    @property
    def label(self) -> str:
        return self.name or owner_label(self.owner)


def owner_fingerprint(api_key: str | None) -> str | None:
    """What a job record keeps of the key that created it: a hash, so Redis never holds keys."""
    if api_key is None:
        return None
    return hashlib.sha256(f"ocrq-owner\n{api_key}".encode()).hexdigest()


def owner_label(owner: str | None) -> str:
    """The stable short label of a key without `name=` (or no longer in the file)."""
    return f"key-{owner[:8]}" if owner else ANONYMOUS


def _whole_number(number: int, name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise ValueError(f"line {number}: {name}= must be a whole number of at least 1")
    return int(value)


def parse_key_line(line: str, number: int) -> KeyEntry:
    """One line of the key file. The error names the line number and option, never the key."""
    key, *options = line.split()
    found: dict[str, str] = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or name not in _OPTIONS or not value:
            raise ValueError(
                f"line {number}: after the key, only {', '.join(o + '=' for o in _OPTIONS)} "
                "are allowed"
            )
        if name in found:
            raise ValueError(f"line {number}: {name}= given twice")
        if name == "secret":
            try:
                parse_whsec(value)
            except ValueError as exc:
                raise ValueError(f"line {number}: secret=: {exc}") from None
        found[name] = value
    label = found.get("name")
    if label is not None and not _NAME.fullmatch(label):
        raise ValueError(f"line {number}: name= takes 1 to 64 letters, digits, '-', '_' or '.'")
    quotas = Quotas(**{q: _whole_number(number, q, found[q]) for q in _QUOTAS if q in found})
    return KeyEntry(key, found.get("callback"), found.get("secret"), label, quotas)


def read_key_entries(path: Path) -> dict[str, KeyEntry]:
    """The key file's entries by key; blank lines and `#` comments skipped. Names must be
    unique (a usage figure or a metric must name one key)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"cannot read the key file: {reason}") from None
    entries: dict[str, KeyEntry] = {}
    named: dict[str, tuple[str, int]] = {}  # label -> (its key, its line)
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            entry = parse_key_line(line, number)
            key, first = named.setdefault(entry.label, (entry.key, number))
            if key != entry.key:
                raise ValueError(f"line {number}: name={entry.label} is taken (line {first})")
            entries[entry.key] = entry
    if not entries:
        # an empty file would silently turn auth off
        raise ValueError("the key file holds no key")
    return entries


# Webhook secrets, the Standard Webhooks way: `whsec_` + the standard base64 of 24 to 64 bytes
WHSEC_PREFIX = "whsec_"
WHSEC_BYTES = (24, 64)
_BASE64_DIGITS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def parse_whsec(value: str) -> bytes:
    """The key bytes of a secret `whsec_<base64>`. Refuses what the standardwebhooks libraries
    would decode to other bytes (URL-safe base64, stray characters, bad padding)."""
    encoded = value.removeprefix(WHSEC_PREFIX)
    digits = encoded.rstrip("=")
    padded_wrong = len(digits) < len(encoded) and len(encoded) % 4
    if encoded == value or not digits or not set(digits) <= _BASE64_DIGITS or padded_wrong:
        raise ValueError("a webhook secret must be whsec_ followed by standard base64")
    try:
        key = base64.b64decode(digits + "=" * (-len(digits) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret must be whsec_ followed by standard base64") from None
    low, high = WHSEC_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"a webhook secret must decode to {low} to {high} bytes, not {len(key)}")
    return key


def whsec(key: bytes) -> str:
    """Key bytes written as a webhook secret (`python -m worker.webhooks secret` prints these)."""
    return WHSEC_PREFIX + base64.b64encode(key).decode()


class KeyRing:
    """The keys' names, quotas and webhook settings, found by a job's owner fingerprint."""

    def __init__(self, entries: dict[str, KeyEntry]) -> None:
        self._by_owner = {e.owner: e for e in entries.values()}

    def for_owner(self, owner: str | None) -> KeyEntry | None:
        return self._by_owner.get(owner) if owner else None

    def label(self, owner: str | None) -> str:
        """What logs, metrics and usage call the owner: its key's name, else `key-<8 hex>`
        (also for a key no longer in the file), `anonymous` without a key."""
        entry = self.for_owner(owner)
        return entry.label if entry else owner_label(owner)

    def quotas(self, owner: str | None) -> Quotas:
        entry = self.for_owner(owner)
        return entry.quotas if entry else Quotas()
