"""Progress of a running batch on stderr: a live bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from ocrq_client.cli.submit import BatchRun


class ProgressView:
    """A live bar on a terminal; elsewhere (logs, CI) a plain line every few seconds."""

    PLAIN_EVERY = 10.0

    def __init__(self, console: Console, run: BatchRun, live: bool) -> None:
        self.console = console
        self.run = run
        self.live = live
        self._last_plain = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]ocrq"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} {task.fields[unit]}"),
            TextColumn("submitted {task.fields[submitted]}"),
            TextColumn("pages {task.fields[pages]}"),
            TextColumn("[red]failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("[yellow]{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not live,
        )
        self.task = self.progress.add_task("batch", total=len(run.files), **self._fields())

    def _fields(self) -> dict[str, Any]:  # rich's task fields: **kwargs of Any
        counts = self.run.counts()
        elapsed = max(time.monotonic() - self.run.started, 1e-6)
        sent = counts["submitted"] + counts["reused"]
        # the upload rate over the uploading time only, so it does not sag while we wait
        sending = max(self.run.last_submit - self.run.started, 1e-6)
        rate = f"{sent / sending:.1f} sub/s"
        if self.run.wait:
            rate += f" {counts['succeeded'] / elapsed:.1f} done/s"
        return {
            "unit": "done" if self.run.wait else "sent",
            "submitted": sent,
            "pages": counts["pages"],
            "failed": counts["failed"],
            "rate": rate,
            "note": self.run.note,
        }

    def _completed(self) -> int:
        counts = self.run.counts()
        done = counts["succeeded"] + counts["failed"] + counts["skipped"] + counts["canceled"]
        if not self.run.wait:
            done += counts["queued"] + counts["running"]
        return done

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self.progress.stop()

    def refresh(self) -> None:
        fields = self._fields()
        self.progress.update(self.task, completed=self._completed(), **fields)
        if not self.live and time.monotonic() - self._last_plain >= self.PLAIN_EVERY:
            self._last_plain = time.monotonic()
            self.console.print(
                f"ocrq: {self._completed()}/{len(self.run.files)} {fields['unit']}, "
                f"submitted {fields['submitted']}, pages {fields['pages']}, "
                f"failed {fields['failed']}, {fields['rate']} {fields['note']}".rstrip(),
                highlight=False,
            )

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)
