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
