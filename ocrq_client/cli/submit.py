"""The submit/wait pipeline: uploads at a bounded concurrency, polling, result downloads, Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field

from rich.console import Console

from ocrq_client.cli.atomic import write_atomically
from ocrq_client.cli.errors import describe
from ocrq_client.cli.progress import ProgressView
from ocrq_client.cli.selection import BatchFile
from ocrq_client.client import (
    ApiError,
    AsyncOcrqClient,
    ClientSettings,
    ConnectionFailed,
    Job,
    OcrqError,
    RetryEvent,
    file_idempotency_key,
)

POLL_MIN, POLL_MAX = 0.3, 2.0


class Interrupted(Exception):
    """Ctrl-C: raised out of a backoff or poll sleep so the run winds down at once."""


@dataclass
class BatchRun:
    """Submits every pending file with `concurrency` uploads at a time and, with `wait`,
    polls the oldest unfinished jobs and downloads each result as soon as it is ready."""

    files: list[BatchFile]
    wait: bool
    fmt: str
    concurrency: int
    retry_failed: bool = False
    priority: str | None = None  # None: the service's default (normal)
    started: float = field(default_factory=time.monotonic)
    last_submit: float = 0.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    interrupted: bool = False
    unreachable: str | None = None  # why submitting stopped: the service stopped answering
    retries: int = 0
    note: str = ""
    view: ProgressView | None = None
    # job id -> the files waiting for it (two identical files share one job)
    outstanding: dict[str, list[BatchFile]] = field(default_factory=dict)
    _submitting: bool = True
    _refreshed: float = 0.0
    # set when the poller has news while idle: a first job to look at, the end of submitting
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(
            ("pending", "skipped", "queued", "running", "succeeded", "failed", "canceled"), 0
        )
        for f in self.files:
            counts[f.state] += 1
        counts["submitted"] = sum(1 for f in self.files if f.job_id and not f.reused)
        counts["reused"] = sum(1 for f in self.files if f.job_id and f.reused)
        counts["pages"] = sum(f.pages for f in self.files)
        return counts

    def failed_files(self) -> list[BatchFile]:
        return [f for f in self.files if f.state in ("failed", "canceled")]

    def _changed(self) -> None:
        # counting is O(files): at most ten times a second, or a big batch goes quadratic
        now = time.monotonic()
        if self.view and now - self._refreshed >= 0.1:
            self._refreshed = now
            self.view.refresh()

    async def sleep(self, seconds: float) -> None:
        """The client's backoff sleep: returns early, raising Interrupted, on Ctrl-C."""
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise Interrupted

    def on_retry(self, event: RetryEvent) -> None:
        self.retries += 1
        self.note = f"backing off ({event.reason})"
        self._changed()

    async def execute(self, client: AsyncOcrqClient) -> None:
        todo: asyncio.Queue[BatchFile] = asyncio.Queue()
        for f in self.files:
            if f.state == "pending":
                todo.put_nowait(f)
        slots = asyncio.Semaphore(self.concurrency)
        poller = asyncio.create_task(self._poll_loop(client, slots)) if self.wait else None
        try:
            await asyncio.gather(
                *(self._submit_loop(client, todo) for _ in range(self.concurrency))
            )
            self._submitting = False
            self._wake.set()
            if poller:
                await poller
        finally:
            if poller and not poller.done():
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller

    async def _submit_loop(self, client: AsyncOcrqClient, todo: asyncio.Queue[BatchFile]) -> None:
        while not self.stop.is_set() and not todo.empty():
            await self._submit(client, todo.get_nowait())

    async def _submit(self, client: AsyncOcrqClient, file: BatchFile) -> None:
        try:
            data = await asyncio.to_thread(file.path.read_bytes)
        except OSError as exc:
            self._finish(file, "failed", f"cannot read the file: {exc.strerror or exc}")
            return
        key = file_idempotency_key(data)
        try:
            job = await client.submit_bytes(
                data, file.path.name, idempotency_key=key, priority=self.priority
            )
            # --retry-failed: a failed job from an earlier run gets one successor per run;
            # its key is derived from the failed job's, so re-runs find the successor again
            while self.retry_failed and job.replayed and job.status == "failed":
                job = await client.submit_bytes(
                    data,
                    file.path.name,
                    idempotency_key=f"{key}-after-{job.job_id}",
                    priority=self.priority,
                )
        except Interrupted:
            return  # stays pending: reported as not submitted
        except ConnectionFailed as exc:
            # down for every file, not just this one: stop instead of failing them one by one
            self.unreachable = self.unreachable or describe(exc)
            self.stop.set()
            self._wake.set()
            return
        except OcrqError as exc:
            self._finish(file, "failed", describe(exc))
            return
        file.job_id, file.reused = job.job_id, job.replayed
        self.last_submit = time.monotonic()
        self.note = ""
        if self.wait:
            file.state = "queued"
            if not self.outstanding:
                self._wake.set()
            self.outstanding.setdefault(job.job_id, []).append(file)
            self._changed()
        else:
            self._apply(file, job)
            print(f"{job.job_id}\t{file.state}\t{file.name}", flush=True)

    def _apply(self, file: BatchFile, job: Job) -> None:
        file.pages = job.progress.pages_done
        if job.status == "failed":
            error = job.error
            self._finish(file, "failed", f"{error.code}: {error.message}" if error else "failed")
        elif job.status == "canceled":
            self._finish(file, "canceled", "the job was canceled")
        else:
            file.state = job.status
            self._changed()

    def _finish(self, file: BatchFile, state: str, error: str | None = None) -> None:
        file.state, file.error = state, error
        self._changed()

    async def _poll_loop(self, client: AsyncOcrqClient, slots: asyncio.Semaphore) -> None:
        interval = POLL_MIN
        window = max(16, 4 * self.concurrency)  # jobs finish roughly in submission order
        while not self.stop.is_set() and (self._submitting or self.outstanding):
            batch = list(self.outstanding)[:window]
            changed = any(
                await asyncio.gather(*(self._poll(client, slots, job_id) for job_id in batch))
            )
            interval = POLL_MIN if changed else min(interval * 1.5, POLL_MAX)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)

    async def _poll(self, client: AsyncOcrqClient, slots: asyncio.Semaphore, job_id: str) -> bool:
        """Look at one job; download its result once it succeeded. True when anything moved."""
        files = self.outstanding[job_id]
        try:
            async with slots:
                job = await client.get(job_id)
                if job.status == "succeeded" and any(f.out for f in files):
                    data = await client.result(job_id, self.fmt)  # type: ignore[arg-type]
                    for f in files:
                        if f.out:
                            await asyncio.to_thread(write_atomically, f.out, data)
        except (Interrupted, ConnectionFailed):
            return False  # API unreachable for now: keep the job, look again next round
        except ApiError as exc:
            for f in files:
                self._finish(f, "failed", describe(exc))
            del self.outstanding[job_id]
            return True
        before = [(f.state, f.pages) for f in files]
        for f in files:
            self._apply(f, job)
            if job.status == "succeeded":
                f.pages = job.progress.pages_total or job.progress.pages_done
        if job.terminal:
            del self.outstanding[job_id]
        return before != [(f.state, f.pages) for f in files]


def run_batch(run: BatchRun, settings: ClientSettings, console: Console, live: bool) -> None:
    """Run the batch to its end or to Ctrl-C; a second Ctrl-C stops it at once."""
    try:
        asyncio.run(_run_batch(run, settings, console, live))
    except (KeyboardInterrupt, asyncio.CancelledError):
        run.interrupted = True  # second Ctrl-C: stopped at once


async def _run_batch(run: BatchRun, settings: ClientSettings, console: Console, live: bool) -> None:
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    run.stop, run._wake = asyncio.Event(), asyncio.Event()  # bound to this loop

    def interrupt() -> None:
        if run.stop.is_set() and main_task:  # second Ctrl-C: stop at once
            main_task.cancel()
            return
        run.interrupted = True
        run.stop.set()
        run._wake.set()
        run.note = "stopping"
        if run.view:
            run.view.say("ocrq: stopping: finishing the uploads in flight (Ctrl-C again: now)")

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        async with AsyncOcrqClient(
            settings=settings,
            sleep=run.sleep,
            on_retry=run.on_retry,
            max_connections=2 * run.concurrency + 4,
        ) as client:
            with ProgressView(console, run, live) as view:
                run.view = view
                await run.execute(client)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
