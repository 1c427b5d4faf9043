"""API keys and what each may carry: a default webhook URL and its own signing secret.

API_KEYS_FILE holds one key a line, optionally followed by `callback=<url>` and `secret=<s>`
(space separated, any order): `k-3f9a callback=https://hooks.example/ocr secret=whsec-1`.
A plain key line stays valid. The API takes a job's default callback from its key; the webhook
sender signs with the key's secret (else one derived from WEBHOOK_SECRET for the key). Jobs
keep only the key's fingerprint, so both look a key up by it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

_OPTIONS = ("callback", "secret")


@dataclass(frozen=True)
class KeyEntry:
    key: str
    callback_url: str | None = None
    secret: str | None = None

    def __repr__(self) -> str:  # keys and secrets never reach a log line
        return f"KeyEntry(callback_url={self.callback_url!r})"


def owner_fingerprint(api_key: str | None) -> str | None:
    """What a job record keeps of the key that created it: a hash, so Redis never holds keys."""
    if api_key is None:
        return None
    return hashlib.sha256(f"ocrq-owner\n{api_key}".encode()).hexdigest()


def parse_key_line(line: str, number: int) -> KeyEntry:
    """One line of the key file. The error names the line number and option, never the key."""
    key, *options = line.split()
    found: dict[str, str] = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or name not in _OPTIONS or not value:
            raise ValueError(
                f"line {number}: after the key, only callback=<url> and secret=<s> are allowed"
            )
        if name in found:
            raise ValueError(f"line {number}: {name}= given twice")
        if name == "secret":
            try:
                parse_whsec(value)
            except ValueError as exc:
                raise ValueError(f"line {number}: secret=: {exc}") from None
        found[name] = value
    return KeyEntry(key, found.get("callback"), found.get("secret"))


def read_key_entries(path: Path) -> dict[str, KeyEntry]:
    """The key file's entries by key; blank lines and `#` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"cannot read the key file: {reason}") from None
    entries: dict[str, KeyEntry] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            entry = parse_key_line(line, number)
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
    """The keys' webhook settings, found by a job's owner fingerprint."""

    def __init__(self, entries: dict[str, KeyEntry]) -> None:
        self._by_owner = {owner_fingerprint(k): e for k, e in entries.items()}

    def for_owner(self, owner: str | None) -> KeyEntry | None:
        return self._by_owner.get(owner) if owner else None
