"""The Redis connection the job package works on, and how its trouble reaches the API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import redis
from redis.sentinel import Sentinel

from shared.errors import QueueUnavailable
from shared.jobs.redis_url import is_sentinel, is_tls, parse_sentinel_url, tls_options

if TYPE_CHECKING:
    from shared.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


def redis_errors_as_unavailable(func: Callable[P, T]) -> Callable[P, T]:
    """Turn Redis connection trouble into QueueUnavailable (503 queue_unavailable)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise QueueUnavailable(f"the job store (Redis) is unreachable: {exc}") from exc

    return wrapper


# short timeouts so a dead Redis fails fast instead of hanging requests
_CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 1.0,
    "socket_timeout": 2.0,
    "health_check_interval": 10,
    "retry_on_timeout": False,
}


def connect_redis(url: str, **options: Any) -> redis.Redis:
    """A client of one Redis node (redis://, rediss://, unix://) with short timeouts."""
    return redis.Redis.from_url(url, **{**_CLIENT_OPTIONS, **options})


def connect_settings_redis(settings: Settings) -> redis.Redis:
    """The job store's client for REDIS_URL: one node (TLS verified for rediss://), or the
    master a Sentinel group names for sentinel:// (found again after a failover)."""
    if is_sentinel(settings):
        return sentinel_master(settings)
    extra = tls_options(settings) if is_tls(settings) else {}
    return connect_redis(settings.redis_url, **extra)


def sentinel_master(settings: Settings) -> redis.Redis:
    """A client of REDIS_SENTINEL_MASTER's current master: each new connection asks the
    Sentinels where the master is, and a connection to a demoted one is dropped."""
    url = parse_sentinel_url(settings.redis_url)
    password = settings.redis_sentinel_password
    sentinels = Sentinel(
        list(url.nodes),
        sentinel_kwargs={
            "socket_connect_timeout": 1.0,
            "socket_timeout": 2.0,
            **({"password": password.get_secret_value()} if password else {}),
        },
    )
    return sentinels.master_for(
        settings.redis_sentinel_master,
        db=url.db,
        username=url.username,
        password=url.password,
        **_CLIENT_OPTIONS,
    )


# redis-py types every reply as bytes or str; the job protocol's clients all decode
# (decode_responses, above), so a reply is text. These narrow the types once and fail loudly
# should a client that does not decode ever be passed in.
Reply = bytes | str
StreamEntries = list[tuple[Any, Any]]


def text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a job-store client must decode replies (decode_responses): {value!r}")
    return value


def text_or_none(value: Reply | None) -> str | None:
    return None if value is None else text(value)


def text_fields(mapping: dict[Reply, Reply]) -> dict[str, str]:
    """A hash (HGETALL) or a stream entry's fields, as text."""
    return {text(name): text(value) for name, value in mapping.items()}


def stream_entries(entries: StreamEntries | None) -> list[tuple[str, dict[str, str]]]:
    """XRANGE entries [(id, {field: value})], as text (None: no entries)."""
    return [(text(entry_id), text_fields(fields)) for entry_id, fields in entries or []]


def read_entries(reply: object) -> list[tuple[str, dict[str, str]]]:
    """An XREAD/XREADGROUP reply [[stream, entries], ...] (None: nothing came), its entries as
    text, in order."""
    if not reply:
        return []
    if not isinstance(reply, list):
        raise TypeError(f"not a stream read reply: {reply!r}")
    return [entry for _stream, entries in reply for entry in stream_entries(entries)]
