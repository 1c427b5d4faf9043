"""The Redis connection the job package works on, and how its trouble reaches the API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis

from shared.errors import QueueUnavailable

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


def connect_redis(url: str) -> redis.Redis:
    """A client with short timeouts so a dead Redis fails fast instead of hanging requests."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=10,
        retry_on_timeout=False,
    )
