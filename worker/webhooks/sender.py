"""One attempt of one delivery: check the target again, POST to the checked address, judge the
answer. Bounded in every way a receiver could stretch it: connect and read timeouts, a total
deadline that cuts the socket, no redirects, and at most WEBHOOK_MAX_RESPONSE_BYTES read back.
"""

from __future__ import annotations

import enum
import logging
import ssl
import time
from dataclasses import dataclass

import httpx

from shared import __version__
from shared.callback_urls import CallbackPolicy, CallbackRefused, CallbackTarget, CallbackUnresolved
from shared.jobs.webhooks import Delivery
from shared.settings import Settings
from worker.socket_deadline import SocketDeadline
from worker.webhooks.backoff import retry_after_seconds
from worker.webhooks.signing import delivery_headers, key_for

log = logging.getLogger(__name__)
# httpx logs each request's URL at INFO, and a callback URL's query may hold a token
logging.getLogger("httpx").setLevel(logging.WARNING)


class Verdict(enum.StrEnum):
    delivered = "delivered"
    retry = "retry"  # connection error, timeout, 5xx, 429, a host that does not resolve
    give_up = "give_up"  # other 4xx, a redirect, a refused address: retrying will not help


@dataclass(frozen=True)
class AttemptResult:
    verdict: Verdict
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


class WebhookSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy: CallbackPolicy = settings.callback_policy
        self.max_bytes = settings.webhook_max_response_bytes
        self.client = httpx.Client(
            timeout=httpx.Timeout(
                settings.webhook_read_timeout,
                connect=settings.webhook_connect_timeout,
                pool=settings.webhook_connect_timeout,
            ),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: it would undo the address check
            limits=httpx.Limits(max_keepalive_connections=0),  # each attempt its own connection
            verify=ssl.create_default_context(),
            headers={"User-Agent": f"ocrq-webhooks/{__version__}"},
        )

    def close(self) -> None:
        self.client.close()

    def key_for(self, delivery: Delivery) -> bytes | None:
        """The job's API key's secret=, else the key's derived one (signing.key_for)."""
        secret = self.settings.webhook_secret
        shared = secret.get_secret_value() if secret else None
        return key_for(self.settings.key_ring, shared, delivery.owner or None)

    def attempt(self, delivery: Delivery) -> AttemptResult:
        key = self.key_for(delivery)
        if not key:
            return AttemptResult(Verdict.give_up, error="no signing secret (WEBHOOK_SECRET)")
        try:
            # again: DNS may answer otherwise now
            target = self.policy.check(delivery.url, tenant=delivery.owner)
        except CallbackUnresolved as exc:
            return AttemptResult(Verdict.retry, error=str(exc))
        except CallbackRefused as exc:
            return AttemptResult(Verdict.give_up, error=f"refused: {exc}")
        body = delivery.body.encode()
        headers = delivery_headers(
            key, delivery.delivery_id, delivery.event, str(int(time.time())), body
        )
        result = AttemptResult(Verdict.retry, error="no address")
        for address in target.addresses:
            result = self._post(target, str(address), headers, body)
            if result.error not in _NEXT_ADDRESS:
                break  # only a failed connection tries the host's next address
        return result

    def _post(
        self, target: CallbackTarget, address: str, headers: dict[str, str], body: bytes
    ) -> AttemptResult:
        url = httpx.URL(target.url).copy_with(host=address)  # the checked address, no new lookup
        extensions: dict = {}
        deadline = SocketDeadline(self.settings.webhook_total_timeout)
        extensions["trace"] = deadline.trace
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host  # TLS checks the name, not the address
        try:
            with self.client.stream(
                "POST",
                url,
                content=body,
                headers={**headers, "Host": target.netloc},
                extensions=extensions,
            ) as response:
                self._read_capped(response)
                return self._judge(response)
        except httpx.ConnectError as exc:
            return AttemptResult(Verdict.retry, error=_connect_failure(exc))
        except httpx.TimeoutException:
            return AttemptResult(Verdict.retry, error="timed out")
        except httpx.TransportError:
            if deadline.fired:
                limit = self.settings.webhook_total_timeout
                return AttemptResult(Verdict.retry, error=f"timed out (over {limit:g} s in all)")
            return AttemptResult(Verdict.retry, error="connection broken")
        finally:
            deadline.cancel()

    def _read_capped(self, response: httpx.Response) -> None:
        """At most max_bytes of the answer (then dropped); the rest is never read (the
        connection closes)."""
        read = 0
        for chunk in response.iter_raw():
            read += len(chunk)
            if read >= self.max_bytes:
                break

    @staticmethod
    def _judge(response: httpx.Response) -> AttemptResult:
        """The verdict on an answer. Its error is a fixed reason and the status: never the
        receiver's words (its body, its Location), which GET /jobs/{id} would echo."""
        code = response.status_code
        if 200 <= code < 300:
            return AttemptResult(Verdict.delivered, code)
        if code == 429 or code >= 500:
            wait = retry_after_seconds(response.headers.get("retry-after"))
            return AttemptResult(Verdict.retry, code, f"receiver answered {code}", wait)
        if 300 <= code < 400:
            return AttemptResult(Verdict.give_up, code, f"redirect not followed ({code})")
        return AttemptResult(Verdict.give_up, code, f"receiver answered {code}")


# the reasons of a failed connection: the host's next address is tried
_NEXT_ADDRESS = frozenset({"connection refused", "connection failed", "TLS handshake failed"})


def _connect_failure(exc: httpx.ConnectError) -> str:
    """A fixed reason for a connection that did not open."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLError):
            return "TLS handshake failed"
        cause = cause.__cause__ or cause.__context__
    return "connection failed"
