"""REDIS_URL beyond one node: rediss:// (TLS verified by both clients) and sentinel:// (Celery's
transport for the broker, redis-py's Sentinel for the job store). No connection is made here."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis.connection import SSLConnection
from redis.sentinel import SentinelConnectionPool

from shared.jobs import connect_settings_redis
from shared.jobs.redis_url import SentinelUrl, parse_sentinel_url
from shared.queue import make_celery
from shared.settings import Settings

SENTINELS = "sentinel://:s3cret@10.0.0.1:26380;sentinel://10.0.0.2;sentinel://10.0.0.3:26381/2"


def test_a_sentinel_url_names_its_nodes_db_and_the_masters_login() -> None:
    assert parse_sentinel_url(SENTINELS) == SentinelUrl(
        nodes=(("10.0.0.1", 26380), ("10.0.0.2", 26379), ("10.0.0.3", 26381)),
        db=2,
        username=None,
        password="s3cret",
    )
    assert parse_sentinel_url("sentinel://u:p%40ss@h:1/0;").password == "p@ss"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sentinel://", "is not sentinel://host:port"),
        ("sentinel://h:1;redis://h:2", "'redis://h:2' is not sentinel://host:port"),
        ("sentinel://:pw@h:99999", "'sentinel://:***@h:99999' has a bad port"),
        ("sentinel://h:1/zero", "the db must be a number"),
    ],
)
def test_a_bad_sentinel_url_is_refused_without_quoting_its_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        parse_sentinel_url(url)
    assert "pw" not in str(refused.value)


def test_settings_want_a_master_name_with_a_sentinel_url() -> None:
    with pytest.raises(ValidationError, match="set REDIS_SENTINEL_MASTER"):
        Settings(redis_url=SENTINELS)
    with pytest.raises(ValidationError, match="sentinel://"):
        Settings(redis_url="memcached://h")
    with pytest.raises(ValidationError, match="must be empty or one of"):
        Settings(default_engine="easyocr")
    assert Settings(redis_url=SENTINELS, redis_sentinel_master="mymaster").redis_sentinel_master


def test_the_broker_takes_celerys_sentinel_transport_with_the_master_name() -> None:
    settings = Settings(
        redis_url=SENTINELS, redis_sentinel_master="mymaster", redis_sentinel_password="sp"
    )
    app = make_celery(settings)
    options = app.conf.broker_transport_options

    assert options["master_name"] == "mymaster"
    assert options["sentinel_kwargs"] == {"password": "sp"}
    assert options["queue_order_strategy"] == "priority"
    conn = app.connection_for_write()
    assert conn.transport_cls == "sentinel"
    assert conn.alt == SENTINELS.split(";")  # each Sentinel, tried in turn
    assert app.conf.broker_use_ssl is None


def test_the_job_store_asks_the_sentinels_for_the_master() -> None:
    settings = Settings(redis_url=SENTINELS, redis_sentinel_master="mymaster")
    client = connect_settings_redis(settings)
    pool = client.connection_pool

    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    nodes = [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in pool.sentinel_manager.sentinels
    ]
    assert nodes == [("10.0.0.1", 26380), ("10.0.0.2", 26379), ("10.0.0.3", 26381)]
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "s3cret"
    assert pool.connection_kwargs["decode_responses"] is True


def test_rediss_is_verified_by_both_clients(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made")
    settings = Settings(redis_url="rediss://:pw@redis.example:6380/1", redis_tls_ca_file=ca)

    broker_ssl = make_celery(settings).conf.broker_use_ssl
    pool = connect_settings_redis(settings).connection_pool

    # kombu alone would connect with CERT_NONE (it only warns) for a rediss:// URL
    assert broker_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": str(ca)}
    assert pool.connection_class is SSLConnection or issubclass(
        pool.connection_class, SSLConnection
    )
    assert pool.connection_kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert pool.connection_kwargs["ssl_ca_certs"] == str(ca)
    assert pool.connection_kwargs["db"] == 1


def test_a_plain_url_needs_no_tls_and_no_sentinel() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/3")
    assert make_celery(settings).conf.broker_use_ssl is None
    assert "master_name" not in make_celery(settings).conf.broker_transport_options
    assert connect_settings_redis(settings).connection_pool.connection_kwargs["db"] == 3
