"""What a state-change script answered, read once: every script of scripts.py answers
{outcome, the status it found, the status it left}, and `Change.decode` is the one reader.

The store's callers get named results from it (`Claim`, `Recovery`, a bool, a status), never
a script's raw reply.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.jobs.record import JobStatus


class Outcome(enum.StrEnum):
    applied = "applied"  # the change was made, its event written
    missing = "missing"  # the job has no record (expired, deleted, or lost by Redis)
    held = "held"  # another live holder has the job's lease: nothing changed
    refused = "refused"  # the job is not in a status this change applies to: nothing changed
    # a page range (RANGE_CLAIM, RANGE_DONE): done already; done, and its run assembles the job
    done = "done"
    assemble = "assemble"


@dataclass(frozen=True)
class Change:
    outcome: Outcome
    found: JobStatus | None  # the job's status when the script ran (None: no record)
    left: JobStatus | None  # its status after it (None: no record)

    @classmethod
    def decode(cls, reply: object) -> Change:
        """A script's answer: [outcome, found or None, left or None]."""
        if not isinstance(reply, list) or len(reply) != 3:
            raise ValueError(f"not a state-change answer: {reply!r}")
        outcome, found, left = reply
        return cls(
            Outcome(outcome),
            JobStatus(found) if found else None,
            JobStatus(left) if left else None,
        )

    @property
    def applied(self) -> bool:
        return self.outcome is Outcome.applied


class Claim(enum.StrEnum):
    claimed = "claimed"  # this worker runs the job now
    busy = "busy"  # another live worker holds it (a redelivered message): drop this one
    missing = "missing"  # no record: expired or deleted
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @classmethod
    def of(cls, change: Change) -> Claim:
        """CLAIM's answer: refused names the end the job had."""
        if change.outcome is Outcome.refused and change.found is not None:
            return cls(change.found.value)
        return _CLAIMS[change.outcome]


_CLAIMS = {
    Outcome.applied: Claim.claimed,
    Outcome.held: Claim.busy,
    Outcome.missing: Claim.missing,
}


class Recovery(enum.StrEnum):
    requeued = "requeued"  # its worker died: queued again, its message to be sent
    failed = "failed"  # its worker died JOB_MAX_ATTEMPTS times: failed worker_lost
    alive = "alive"  # its lease is held: a live worker runs it
    gone = "gone"  # no longer running (it ended)
    missing = "missing"  # its record is gone (expired or lost by Redis)

    @classmethod
    def of(cls, change: Change) -> Recovery:
        """RECOVER's answer: applied names where the job went (queued again, or failed)."""
        if change.applied:
            return cls.requeued if change.left is JobStatus.queued else cls.failed
        return _RECOVERIES[change.outcome]


_RECOVERIES = {
    Outcome.held: Recovery.alive,
    Outcome.refused: Recovery.gone,
    Outcome.missing: Recovery.missing,
}


class RangeClaim(enum.StrEnum):
    """RANGE_CLAIM's answer for one page range of a planned job."""

    claimed = "claimed"  # this worker reads its pages now
    assemble = "assemble"  # it was the last range done and the job has not ended: assemble it
    done = "done"  # read already; nothing to do
    busy = "busy"  # another live worker holds it: drop this delivery
    missing = "missing"  # no record (or no plan)
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @classmethod
    def of(cls, change: Change) -> RangeClaim:
        if change.outcome is Outcome.refused and change.found is not None:
            return cls(change.found.value)
        return _RANGE_CLAIMS[change.outcome]


_RANGE_CLAIMS = {
    Outcome.applied: RangeClaim.claimed,
    Outcome.assemble: RangeClaim.assemble,
    Outcome.done: RangeClaim.done,
    Outcome.held: RangeClaim.busy,
    Outcome.missing: RangeClaim.missing,
    Outcome.refused: RangeClaim.missing,
}


class RangeDone(enum.StrEnum):
    """RANGE_DONE's answer: what the run that stored a range's pages does next."""

    assemble = "assemble"  # the last range: assemble the result and end the job
    others_running = "others_running"  # others are not done: nothing more to do
    lost = "lost"  # this run's lease lapsed: another run owns the range
    ended = "ended"  # the job is not running any more (canceled), or its record is gone

    @classmethod
    def of(cls, change: Change) -> RangeDone:
        return {
            Outcome.assemble: cls.assemble,
            Outcome.applied: cls.others_running,
            Outcome.held: cls.lost,
        }.get(change.outcome, cls.ended)


class RangeRecovery(enum.StrEnum):
    """RANGE_RECOVER's answer for a range whose lease lapsed."""

    requeued = "requeued"  # its message is to be sent again
    failed = "failed"  # its runs died JOB_MAX_ATTEMPTS times: the job failed worker_lost
    alive = "alive"  # a live worker holds it
    gone = "gone"  # the job ended, or the range is done
    missing = "missing"

    @classmethod
    def of(cls, change: Change) -> RangeRecovery:
        if change.applied:
            return cls.failed if change.left is JobStatus.failed else cls.requeued
        return {Outcome.held: cls.alive, Outcome.missing: cls.missing}.get(change.outcome, cls.gone)
