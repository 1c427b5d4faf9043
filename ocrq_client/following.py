"""How wait() follows a job: its event stream, polling when there is none, within a deadline.

The stream is `GET /jobs/{id}/events` (server-sent events whose data is the job as
GET /jobs/{id} shows it). A broken one is reopened with `Last-Event-ID`, so no change is missed,
after the server's `retry:` delay. After MAX_BREAKS streams in a row that broke before telling
anything (a proxy that buffers or cuts them), or when the server has no such route (an older
server: 404 `not_found`, unlike an unknown job's 404 `job_not_found`), wait() polls GET /jobs/{id}.
JobFollow holds that state; the sync and async clients run the same steps around their I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from ocrq_client.errors import WaitTimeout, error_of
from ocrq_client.models import Job
from ocrq_client.sse import EventStreamDecoder, EventStreamError

log = logging.getLogger("ocrq_client")

# The server sends a keepalive every 15 s while idle: three missed and the stream is dead.
STREAM_IDLE_SECONDS = 45.0
# Streams in a row that broke before one message came: then wait() polls instead.
MAX_BREAKS = 3
# Seconds before reopening a broken stream, until the server's `retry:` says otherwise.
DEFAULT_RECONNECT_SECONDS = 1.0

OnUpdate = Callable[[Job], None]


class StreamBroke(Exception):
    """The stream ended, failed or answered oddly before the job's end: reopen it (or poll)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Polling:
    """One wait()'s deadline, and its pace when polling: 1.5x longer each time, up to 2 s."""

    def __init__(self, job_id: str, timeout: float | None, interval: float) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.interval = interval

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check_room(self, delay: float, job: Job | None) -> None:
        """WaitTimeout when sleeping `delay` s would pass the deadline."""
        remaining = self.remaining()
        if remaining is not None and delay >= remaining:
            status = job.status if job else "unfinished"
            raise WaitTimeout(f"job {self.job_id} still {status} after {self.timeout} s")

    def next_delay(self, job: Job) -> float:
        """How long to sleep before polling the unfinished `job` again."""
        delay = self.interval
        self.check_room(delay, job)
        self.interval = min(delay * 1.5, 2.0)
        return delay


class JobFollow:
    """The state of one wait() across reconnects: the last event id, the breaks in a row,
    whether it still streams, and the last state seen (told to `on_update`)."""

    def __init__(
        self,
        job_id: str,
        polling: Polling,
        on_update: OnUpdate | None = None,
        *,
        stream: bool = True,
    ) -> None:
        self.path = f"/jobs/{job_id}/events"
        self.polling = polling
        self.on_update = on_update
        self.streaming = stream
        self.route_missing = False  # the server has no /events: the client stops trying
        self.job: Job | None = None
        self.last_event_id = ""
        self.retry_seconds = DEFAULT_RECONNECT_SECONDS
        self.breaks = 0
        self.streams = 0  # GET /events requests made
        self._decoder = EventStreamDecoder()
        self._told = False  # the current stream delivered a message

    def stream_options(self, timeouts: httpx.Timeout) -> dict[str, object]:
        """Arguments of the next GET /events: Last-Event-ID, a read timeout within the deadline."""
        read = STREAM_IDLE_SECONDS
        remaining = self.polling.remaining()
        if remaining is not None:
            self.polling.check_room(0.0, self.job)
            read = min(read, remaining)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        self._decoder = EventStreamDecoder()
        self._told = False
        self.streams += 1
        timeout = httpx.Timeout(
            connect=timeouts.connect, read=read, write=timeouts.write, pool=timeouts.pool
        )
        return {"headers": headers, "timeout": timeout}

    def opened(self, response: httpx.Response) -> bool:
        """Whether to read this answer as the stream (an error's body must be read already).

        False when the server has no such route (polling from now on); ApiError for a
        permanent error (an unknown job, a refused key); StreamBroke for a transient one.
        """
        if response.status_code == 200:
            kind = response.headers.get("content-type", "")
            if kind.startswith("text/event-stream"):
                return True
            raise StreamBroke(f"GET {self.path} answered {kind or 'no content type'}")
        error = error_of(response)
        if response.status_code in (404, 405) and error.code != "job_not_found":
            log.info("GET %s: %s; polling instead", self.path, error)
            self.streaming, self.route_missing = False, True
            return False
        if response.status_code == 429 or response.status_code >= 500:
            raise StreamBroke(str(error), error.retry_after)
        raise error

    def feed(self, chunk: bytes) -> Job | None:
        """The job once `chunk` brings its end; every state on the way is told to on_update."""
        try:
            messages = self._decoder.feed(chunk)
        except EventStreamError as exc:
            raise StreamBroke(str(exc)) from exc
        if self._decoder.retry_ms is not None:
            self.retry_seconds = self._decoder.retry_ms / 1000
        for message in messages:
            try:
                job = Job.model_validate_json(message.data)
            except ValidationError as exc:
                raise StreamBroke(f"an event that is not a job: {message.data[:200]!r}") from exc
            # the id of a message handled, not of one half received: resuming misses nothing
            self.last_event_id = message.id or self.last_event_id
            self._told = True
            if self.seen(job).terminal:
                return job
        return None

    def seen(self, job: Job) -> Job:
        self.job = job
        if self.on_update:
            self.on_update(job)
        return job

    def broke(self, exc: Exception) -> float:
        """The pause before reopening the stream; 0 and polling after MAX_BREAKS in a row."""
        self.breaks = 1 if self._told else self.breaks + 1
        if self.breaks >= MAX_BREAKS:
            log.info("GET %s broke %d times in a row (%s); polling", self.path, self.breaks, exc)
            self.streaming = False
            return 0.0
        delay = self.retry_seconds * 2 ** (self.breaks - 1)
        delay = max(delay, getattr(exc, "retry_after", None) or 0.0)
        self.polling.check_room(delay, self.job)
        log.debug("GET %s broke (%s); again in %.1f s", self.path, exc, delay)
        return delay
