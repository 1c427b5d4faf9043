"""The submit/wait pipeline: uploads at a bounded concurrency, following the jobs' event
streams (a bounded pool of them, in submission order), result downloads, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import dataclass, field
from typing import Any

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
    QuotaExceeded,
    RetryEvent,
    file_idempotency_key,
    url_idempotency_key,
)

# pause before following a job again when the service was unreachable for a whole wait()
UNREACHABLE_PAUSE = 2.0
RESULT_GONE = "result_gone"  # the API's code for a succeeded job whose files are gone


class Interrupted(Exception):
    """Ctrl-C: raised out of a backoff or poll sleep so the run winds down at once."""


@dataclass
class BatchRun:
    """Submits every pending file with `concurrency` uploads at a time and, with `wait`,
    follows the jobs with `streams` event streams at a time, oldest first (a job already
    finished answers at once), and downloads each result as soon as it is ready."""

    files: list[BatchFile]
    wait: bool
    fmt: str
    concurrency: int
    streams: int = 8
    retry_failed: bool = False
    priority: str | None = None  # None: the service's default (normal)
    started: float = field(default_factory=time.monotonic)
    last_submit: float = 0.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    interrupted: bool = False
    unreachable: str | None = None  # why submitting stopped: the service stopped answering
    refused: str | None = None  # why submitting stopped: the API key's quota (quota_exceeded)
    retries: int = 0
    note: str = ""
    view: ProgressView | None = None
    # job id -> the files waiting for it (two identical files share one job)
    outstanding: dict[str, list[BatchFile]] = field(default_factory=dict)
    # the jobs to follow, in submission order; None: submitting is over
    to_follow: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    _refreshed: float = 0.0

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(
            ("pending", "skipped", "queued", "running", "succeeded", "failed", "canceled"), 0
        )
        for f in self.files:
            counts[f.state] += 1
        counts["submitted"] = sum(1 for f in self.files if f.job_id and not f.reused)
        counts["reused"] = sum(1 for f in self.files if f.job_id and f.reused)
        counts["pages"] = sum(f.pages for f in self.files)
        partial = self.files_with_failed_pages()
        counts["with_failed_pages"] = len(partial)
        counts["pages_failed"] = sum(f.pages_failed for f in partial)
        return counts

    def failed_files(self) -> list[BatchFile]:
        return [f for f in self.files if f.state in ("failed", "canceled")]

    def files_with_failed_pages(self) -> list[BatchFile]:
        """Files whose job succeeded with pages it could not read."""
        return [f for f in self.files if f.state == "succeeded" and f.pages_failed]

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
        streams = self.streams if self.wait else 0
        followers = [asyncio.create_task(self._follow_loop(client)) for _ in range(streams)]
        following = asyncio.gather(*followers)
        stopped = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.gather(
                *(self._submit_loop(client, todo) for _ in range(self.concurrency))
            )
            for _ in followers:
                self.to_follow.put_nowait(None)
            # Ctrl-C (or an unreachable service) ends the waiting too, mid-stream
            either: list[asyncio.Future[Any]] = [following, stopped]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if following.done():
                following.result()  # a follower's bug is raised, not lost
        finally:
            for task in [*followers, stopped]:
                task.cancel()
            await asyncio.gather(following, stopped, return_exceptions=True)

    async def _submit_loop(self, client: AsyncOcrqClient, todo: asyncio.Queue[BatchFile]) -> None:
        while not self.stop.is_set() and self.refused is None and not todo.empty():
            await self._submit(client, todo.get_nowait())

    async def _submit(self, client: AsyncOcrqClient, file: BatchFile) -> None:
        if file.url is not None:
            url = file.url
            key = url_idempotency_key(url)

            async def send(key: str) -> Job:
                return await client.submit_url(url, idempotency_key=key, priority=self.priority)
        else:
            try:
                data = await asyncio.to_thread(file.path.read_bytes)
            except OSError as exc:
                self._finish(file, "failed", f"cannot read the file: {exc.strerror or exc}")
                return
            key = file_idempotency_key(data)

            async def send(key: str) -> Job:
                return await client.submit_bytes(
                    data, file.path.name, idempotency_key=key, priority=self.priority
                )

        try:
            job = await send(key)
            # a job from an earlier run that cannot give its result (failed, with
            # --retry-failed; succeeded but its result is gone) gets one successor per run;
            # its key is derived from that job's, so re-runs find the successor again
            while job.replayed and await self._needs_successor(client, job):
                job = await send(f"{key}-after-{job.job_id}")
        except Interrupted:
            return  # stays pending: reported as not submitted
        except ConnectionFailed as exc:
            # down for every file, not just this one: stop instead of failing them one by one
            self.unreachable = self.unreachable or describe(exc)
            self.stop.set()
            return
        except QuotaExceeded as exc:
            # the key's limit: the next files would meet it too; submit no more (the jobs
            # submitted so far are still followed), and this file stays pending for a re-run
            self.refused = self.refused or describe(exc)
            return
        except OcrqError as exc:
            self._finish(file, "failed", describe(exc))
            return
        file.job_id, file.reused = job.job_id, job.replayed
        self.last_submit = time.monotonic()
        self.note = ""
        if self.wait:
            file.state = "queued"
            if job.job_id not in self.outstanding:
                self.to_follow.put_nowait(job.job_id)
            self.outstanding.setdefault(job.job_id, []).append(file)
            self._changed()
        else:
            self._apply(file, job)
            print(f"{job.job_id}\t{file.state}\t{file.name}", flush=True)

    async def _needs_successor(self, client: AsyncOcrqClient, job: Job) -> bool:
        """Whether a replayed job is to be submitted anew: failed, or succeeded with pages it
        could not read (both only with --retry-failed: the whole file again), or succeeded with
        its result no longer stored (the API answers 410 result_gone: removed, `make clean`,
        the service moved to another STORAGE_URL)."""
        if job.status == "failed":
            return self.retry_failed
        if job.status != "succeeded":
            return False
        try:
            current = await client.get(job.job_id)
        except ApiError as exc:
            if exc.code == RESULT_GONE:
                return True
            raise
        return self.retry_failed and current.progress.pages_failed > 0

    def _apply(self, file: BatchFile, job: Job) -> None:
        file.pages = job.progress.pages_done
        file.pages_failed = job.progress.pages_failed
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

    async def _follow_loop(self, client: AsyncOcrqClient) -> None:
        try:
            while (job_id := await self.to_follow.get()) is not None:
                while not await self._follow(client, job_id):
                    await self.sleep(UNREACHABLE_PAUSE)
        except Interrupted:
            return  # Ctrl-C during a backoff: the job stays unfinished in the report

    async def _follow(self, client: AsyncOcrqClient, job_id: str) -> bool:
        """Follow one job to its end and download its result; False: try again later."""
        files = self.outstanding[job_id]

        def update(job: Job) -> None:
            if not job.terminal:  # the end is applied once its result is downloaded
                for f in files:
                    self._apply(f, job)

        try:
            job = await client.wait(job_id, on_update=update)
            page_errors: list[str] = []
            if job.status == "succeeded" and job.progress.pages_failed:
                document = await client.document(job_id)
                page_errors = [
                    f"{p.index}: {p.error.code}: {p.error.message}"
                    for p in document.failed_pages
                    if p.error is not None
                ]
            if job.status == "succeeded" and any(f.out for f in files):
                data = await client.result(job_id, self.fmt)  # type: ignore[arg-type]
                for f in files:
                    if f.out:
                        await asyncio.to_thread(write_atomically, f.out, data)
                        await asyncio.to_thread(_note_failed_pages, f, job, page_errors)
        except ConnectionFailed:
            return False  # API unreachable for now: keep the job, follow it again
        except ApiError as exc:
            for f in files:
                self._finish(f, "failed", describe(exc))
            del self.outstanding[job_id]
            return True
        for f in files:
            self._apply(f, job)
            if job.status == "succeeded":
                f.pages = job.progress.pages_total or job.progress.pages_done
                f.page_errors = page_errors
        del self.outstanding[job_id]
        return True


def _note_failed_pages(file: BatchFile, job: Job, page_errors: list[str]) -> None:
    """Beside a result that lacks pages, a note of them (what --retry-failed reads on the next
    run); a result with every page read removes an earlier note."""
    note = file.failed_pages_note
    if note is None:
        return
    if not job.progress.pages_failed:
        note.unlink(missing_ok=True)
        return
    body = {
        "job_id": job.job_id,
        "pages_failed": job.progress.pages_failed,
        "pages": page_errors,
        "hint": "ocrq submit --retry-failed submits the file again",
    }
    write_atomically(note, json.dumps(body, indent=1).encode())


def run_batch(run: BatchRun, settings: ClientSettings, console: Console, live: bool) -> None:
    """Run the batch to its end or to Ctrl-C; a second Ctrl-C stops it at once."""
    try:
        asyncio.run(_run_batch(run, settings, console, live))
    except (KeyboardInterrupt, asyncio.CancelledError):
        run.interrupted = True  # second Ctrl-C: stopped at once


async def _run_batch(run: BatchRun, settings: ClientSettings, console: Console, live: bool) -> None:
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    run.stop, run.to_follow = asyncio.Event(), asyncio.Queue()  # bound to this loop

    def interrupt() -> None:
        if run.stop.is_set() and main_task:  # second Ctrl-C: stop at once
            main_task.cancel()
            return
        run.interrupted = True
        run.stop.set()
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
            max_connections=run.concurrency + run.streams + 4,
        ) as client:
            with ProgressView(console, run, live) as view:
                run.view = view
                await run.execute(client)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
