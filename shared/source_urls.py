"""Input by reference: what a `source_url` may be, and where it may point (no SSRF).

`https://...` is guarded as a callback URL is (shared/callback_urls.py): its host resolved,
every address public unless SOURCE_ALLOWED_NETWORKS names it, a metadata address never; plain
`http://` only to what SOURCE_ALLOWED_NETWORKS names. `s3://bucket/key` only from a bucket (or
bucket/prefix) SOURCE_S3_BUCKETS names, read with the service's own credentials.

Both processes check: the API at submit (422 invalid_source_url, nothing stored), the worker
again before it connects, and at each redirect it follows (a name may resolve elsewhere by
then: DNS rebinding); the worker then connects to the very address it checked
(worker/sources.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from shared.callback_urls import CallbackPolicy, CallbackRefused, CallbackTarget, redact

MAX_SOURCE_URL = 4096  # a pre-signed URL's query is long; MAX_FIELD_BYTES bounds it too
SOURCE_SETTING = "SOURCE_ALLOWED_NETWORKS"
# s3://bucket/key: an S3 bucket name, then a key without whitespace
_S3_URL = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[^\s]+)")
_S3_ENTRY = re.compile(r"(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>[^\s]*))?")


class SourceRefused(ValueError):
    """The source_url is malformed, or points where the service must not read."""


@dataclass(frozen=True)
class S3Source:
    """An object to read with the service's credentials."""

    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class S3Area:
    """A SOURCE_S3_BUCKETS entry: a bucket, or only the keys under a prefix of it."""

    bucket: str
    prefix: str = ""

    def covers(self, source: S3Source) -> bool:
        return source.bucket == self.bucket and source.key.startswith(self.prefix)

    def overlaps(self, bucket: str, prefix: str) -> bool:
        """Could a key be both in this area and under `bucket`/`prefix`?"""
        return bucket == self.bucket and (
            prefix.startswith(self.prefix) or self.prefix.startswith(prefix)
        )


def parse_s3_areas(value: str) -> tuple[S3Area, ...]:
    """SOURCE_S3_BUCKETS: comma list of `bucket` or `bucket/prefix/`; ValueError on a bad one."""
    areas = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        match = _S3_ENTRY.fullmatch(item.removeprefix("s3://"))
        if not match:
            raise ValueError(f"{item!r} is not a bucket name or bucket/prefix")
        areas.append(S3Area(match["bucket"], match["prefix"] or ""))
    return tuple(areas)


@dataclass(frozen=True)
class SourcePolicy:
    """Where a source_url may point: SOURCE_ALLOWED_NETWORKS and SOURCE_S3_BUCKETS."""

    network: CallbackPolicy
    areas: tuple[S3Area, ...] = ()

    @classmethod
    def parse(cls, networks: str, buckets: str = "", dns_timeout: float = 2.0) -> SourcePolicy:
        network = CallbackPolicy.parse(
            networks, dns_timeout, setting=SOURCE_SETTING, max_url_length=MAX_SOURCE_URL
        )
        return cls(network, parse_s3_areas(buckets))

    def parse_s3(self, url: str) -> S3Source:
        """An s3:// URL of an allowed bucket (and prefix); else SourceRefused."""
        match = _S3_URL.fullmatch(url)
        if not match:
            raise SourceRefused("an s3:// source_url must be s3://bucket/key")
        source = S3Source(match["bucket"], match["key"])
        if not any(area.covers(source) for area in self.areas):
            raise SourceRefused(
                f"the bucket {source.bucket!r} (or that key in it) is not one SOURCE_S3_BUCKETS "
                "allows"
            )
        return source

    def check(self, url: str, tenant: str | None = None) -> S3Source | CallbackTarget:
        """What to read: an allowed S3 object, or an http(s) target whose every address may be
        reached (resolved now, bounded by the DNS timeout); SourceRefused says why not."""
        url = url.strip()
        if len(url) > MAX_SOURCE_URL:
            raise SourceRefused(f"longer than {MAX_SOURCE_URL} characters")
        if url.startswith("s3://"):
            return self.parse_s3(url)
        if not url.startswith(("https://", "http://")):
            raise SourceRefused("the scheme must be https, http (allowed networks only) or s3")
        try:
            target = self.network.check(url, tenant=tenant)
        except CallbackRefused as exc:
            raise SourceRefused(str(exc)) from None
        if target.scheme == "http":
            unlisted = [a for a in target.addresses if not self.network.listed(a, target.host)]
            if unlisted:
                raise SourceRefused(
                    f"plain http:// reaches only what {SOURCE_SETTING} names, and "
                    f"{target.host} ({unlisted[0]}) is not in it; use https://"
                )
        return target


def shown_source(url: str) -> str:
    """The source_url as GET /jobs/{id} and the logs show it: without its query (a pre-signed
    URL's signature)."""
    return url if url.startswith("s3://") else redact(url)


def source_filename(url: str) -> str | None:
    """The last segment of the URL's path, as metadata only (never used in a path)."""
    path = url.removeprefix("s3://").partition("/")[2] if url.startswith("s3://") else None
    if path is None:
        path = unquote(urlsplit(url).path)
    name = PurePosixPath(path).name.replace("\x00", "")[:255]
    return name or None
