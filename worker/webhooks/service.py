"""The webhook service: a dispatch thread (events -> deliveries) and a send thread feeding
WEBHOOK_CONCURRENCY senders, at most WEBHOOK_CONCURRENCY_PER_KEY of them on one API key's
deliveries and WEBHOOK_CONCURRENCY_PER_HOST on one key's host:port (a lane): a receiver that
hangs holds its lane's slots only, a key its own share, and the deliveries due to other hosts
and keys are taken past them. All its state is in Redis (shared/jobs/webhooks.py), so any
number of these run side by side, and one that stops (or is killed) loses nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from redis import RedisError

from shared.errors import ServiceError
from shared.jobs import JobStore, connect_redis
from shared.jobs.webhooks import Delivery, WebhookDeliveries
from shared.settings import Settings
from shared.tracing import job_logs
from worker.webhooks.backoff import retry_delay
from worker.webhooks.dispatcher import Dispatcher
from worker.webhooks.sender import AttemptResult, Verdict, WebhookSender

log = logging.getLogger(__name__)

READ_BLOCK_MS = 1000  # below the Redis client's 2 s socket timeout
RECLAIM_EVERY_SECONDS = 10.0
RECLAIM_IDLE_MS = 30_000  # an event unacknowledged this long: its dispatcher died
PRUNE_IDLE_MS = 3_600_000  # a consumer silent this long with nothing pending is forgotten
POLL_SECONDS = 0.5  # how often due deliveries are looked for when nothing woke the sender
LEASE_SLACK_SECONDS = 15.0  # a taken delivery is due again this long after its attempt's limit


class WebhookService:
    def __init__(self, settings: Settings, consumer: str | None = None) -> None:
        self.settings = settings
        client = connect_redis(settings.redis_url)
        self._client = client
        self.deliveries = WebhookDeliveries(client, settings.job_ttl_seconds)
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.dispatcher = Dispatcher(
            JobStore.of_settings(client, settings), self.deliveries, self.consumer
        )
        self.sender = WebhookSender(settings)
        self.lease = settings.webhook_total_timeout + LEASE_SLACK_SECONDS
        self._pool = ThreadPoolExecutor(settings.webhook_concurrency, "webhook-send")
        self._in_flight = 0
        self._lanes: Counter[tuple[str, str]] = Counter()  # in flight per (owner, host)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads = [
            threading.Thread(target=self._dispatch_loop, name="webhook-dispatch", daemon=True),
            threading.Thread(target=self._send_loop, name="webhook-due", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        log.info("webhook dispatcher %s started", self.consumer)

    def request_stop(self) -> None:
        """Ask the threads to stop (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self.request_stop()
        for thread in self._threads:
            thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.sender.close()
        self._client.close()

    def wait(self) -> None:
        """Until stop() (the standalone process's main thread)."""
        while not self._stop.wait(1.0):
            pass

    # -- events -> deliveries --
    def _dispatch_loop(self) -> None:
        grouped = False
        last_reclaim = 0.0
        while not self._stop.is_set():
            try:
                if not grouped:
                    self.deliveries.ensure_group()
                    grouped = True
                events = self.deliveries.read_events(self.consumer, 100, READ_BLOCK_MS)
                if time.monotonic() - last_reclaim > RECLAIM_EVERY_SECONDS:
                    last_reclaim = time.monotonic()
                    events += self.deliveries.reclaim(self.consumer, RECLAIM_IDLE_MS, 100)
                    self.deliveries.prune_consumers(self.consumer, PRUNE_IDLE_MS)
                if events and self.dispatcher.handle(events):
                    self._wake.set()
            except (RedisError, ServiceError) as exc:
                grouped = grouped and "NOGROUP" not in str(exc)  # Redis lost its data
                log.warning("webhook dispatch paused: %s", exc)
                self._stop.wait(2.0)
            except Exception:  # the loop must outlive any single bad event
                log.exception("webhook dispatch failed")
                self._stop.wait(2.0)

    # -- due deliveries -> attempts --
    def _send_loop(self) -> None:
        adopted = False
        per_host = self.settings.webhook_concurrency_per_host
        per_key = self.settings.webhook_concurrency_per_key
        while not self._stop.is_set():
            with self._lock:
                free = self.settings.webhook_concurrency - self._in_flight
                busy = dict(self._lanes)
            try:
                if not adopted:
                    if count := self.deliveries.adopt_unlaned():
                        log.info("%d webhook deliveries of an older version put in lanes", count)
                    adopted = True
                taken = (
                    self.deliveries.take_due(free, self.lease, per_host, per_key, busy)
                    if free
                    else []
                )
            except RedisError as exc:
                log.warning("webhook sending paused: %s", exc)
                taken = []
                self._stop.wait(2.0)
            for delivery, attempt in taken:
                with self._lock:
                    self._in_flight += 1
                    self._lanes[delivery.owner, delivery.lane] += 1
                self._pool.submit(self._send, delivery, attempt)
            if len(taken) < free or not free:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()

    def _send(self, delivery: Delivery, attempt: int) -> None:
        try:
            with job_logs(delivery.job_id, delivery.traceparent or None):
                try:
                    result = self.sender.attempt(delivery)
                    self._record(delivery, attempt, result)
                except Exception:  # one delivery's trouble must not stop the others
                    log.exception(
                        "job=%s webhook %s attempt failed", delivery.job_id, delivery.delivery_id
                    )
        finally:
            with self._lock:
                self._in_flight -= 1
                lane = (delivery.owner, delivery.lane)
                self._lanes[lane] -= 1
                if not self._lanes[lane]:
                    del self._lanes[lane]
            self._wake.set()

    def _record(self, delivery: Delivery, attempt: int, result: AttemptResult) -> None:
        settings = self.settings
        next_due = None
        outcome = {Verdict.delivered: "delivered", Verdict.give_up: "gave_up"}.get(result.verdict)
        if result.verdict is Verdict.retry:
            if attempt >= settings.webhook_max_attempts:
                outcome = "gave_up"
            else:
                outcome = "retrying"
                delay = retry_delay(
                    attempt,
                    result.retry_after,
                    settings.webhook_backoff_base_seconds,
                    settings.webhook_backoff_max_seconds,
                )
                next_due = time.time() + delay
        assert outcome is not None
        self.deliveries.record(
            delivery.delivery_id, attempt, outcome, result.status_code, result.error, next_due
        )
        log.info(
            "job=%s webhook %s attempt %d: %s%s",
            delivery.job_id,
            delivery.delivery_id,
            attempt,
            outcome,
            f" ({result.error})" if result.error else "",
        )


def start_webhooks(settings: Settings) -> WebhookService | None:
    """The worker's webhook threads, unless WEBHOOK_DISPATCHER is off."""
    if not settings.webhook_dispatcher:
        return None
    service = WebhookService(settings)
    service.start()
    return service
