"""How REDIS_URL reaches the two Redis clients: Celery's broker (kombu) and the job store
(redis-py). Both take the same URL; this module makes them agree on TLS and Sentinel.

- `redis://`, `unix://`: one node, as given.
- `rediss://` (TLS, e.g. a managed Redis): the certificate is verified against the system's
  CAs or REDIS_TLS_CA_FILE, by both clients (kombu alone would not verify: its default for a
  rediss:// URL without `broker_use_ssl` is CERT_NONE).
- `sentinel://[:password@]host:port[;sentinel://host:port...][/db]` (Celery's form): the
  Sentinel nodes; REDIS_SENTINEL_MASTER names the master group; the URL's password is the
  master's, REDIS_SENTINEL_PASSWORD the Sentinels' own.
Redis Cluster is not supported: each Lua script of the job protocol touches keys in several
hash slots (a job's record, its stream, the global stream, the counters).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from shared.settings import Settings

SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelUrl:
    """What a sentinel:// REDIS_URL says: the Sentinel nodes, the db, the master's login."""

    nodes: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelUrl:
    """`sentinel://:pw@h1:26379;sentinel://h2:26379/0` -> its nodes, db and login (the first
    part that gives one); ValueError naming the bad part."""
    nodes: list[tuple[str, int]] = []
    db: int | None = None
    username = password = None
    for part in (p.strip() for p in url.split(";")):
        if not part:
            continue
        split = urlsplit(part)
        if split.scheme != "sentinel" or not split.hostname:
            raise ValueError(f"{_redacted(part)!r} is not sentinel://host:port")
        try:
            port = split.port or SENTINEL_PORT
        except ValueError:
            raise ValueError(f"{_redacted(part)!r} has a bad port") from None
        nodes.append((split.hostname, port))
        path = split.path.strip("/")
        if path:
            if not path.isdigit():
                raise ValueError(f"{_redacted(part)!r}: the db must be a number, e.g. /0")
            db = int(path) if db is None else db
        if split.password is not None and password is None:
            username = unquote(split.username) if split.username else None
            password = unquote(split.password)
    if not nodes:
        raise ValueError("sentinel:// names no Sentinel node")
    return SentinelUrl(tuple(nodes), db or 0, username, password)


def _redacted(part: str) -> str:
    """A URL part without its password, to quote in an error."""
    split = urlsplit(part)
    if split.password is None:
        return part
    return part.replace(f":{split.password}@", ":***@", 1)


def is_sentinel(settings: Settings) -> bool:
    return settings.redis_url.startswith("sentinel://")


def is_tls(settings: Settings) -> bool:
    return settings.redis_url.startswith("rediss://")


def tls_options(settings: Settings) -> dict[str, object]:
    """redis-py's TLS arguments (kombu passes the same keys through): always verified."""
    return {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": str(settings.redis_tls_ca_file) if settings.redis_tls_ca_file else None,
    }


def broker_ssl(settings: Settings) -> dict[str, object] | None:
    """Celery's `broker_use_ssl`: set for rediss:// so kombu verifies the certificate."""
    return tls_options(settings) if is_tls(settings) else None


def broker_transport_extras(settings: Settings) -> dict[str, object]:
    """Celery `broker_transport_options` a sentinel:// URL needs (master, Sentinels' auth)."""
    if not is_sentinel(settings):
        return {}
    extras: dict[str, object] = {"master_name": settings.redis_sentinel_master}
    if settings.redis_sentinel_password is not None:
        extras["sentinel_kwargs"] = {
            "password": settings.redis_sentinel_password.get_secret_value()
        }
    return extras
