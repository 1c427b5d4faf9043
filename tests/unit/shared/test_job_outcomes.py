"""Every state-change script answers one shape, {outcome, status found, status left}, read by
one decoder into named results (shared/jobs/outcomes.py). Fast tier: the replies as Redis
gives them to redis-py, and the scripts' source."""

from __future__ import annotations

import re

import pytest

from shared.jobs import scripts
from shared.jobs.outcomes import Change, Claim, Outcome, Recovery
from shared.jobs.record import JobStatus

STATE_CHANGES = {
    name: getattr(scripts, name)
    for name in ("CREATE", "DELETE", "CLAIM", "PROGRESS", "END", "CANCEL", "RECOVER")
}


def test_a_reply_decodes_into_a_named_outcome_and_statuses() -> None:
    assert Change.decode(["applied", "running", "queued"]) == Change(
        Outcome.applied, JobStatus.running, JobStatus.queued
    )
    assert Change.decode(["missing", None, None]) == Change(Outcome.missing, None, None)
    for wrong in (1, 0, -1, "claimed", ["applied", "running"], ["later", None, None]):
        with pytest.raises(ValueError):
            Change.decode(wrong)


@pytest.mark.parametrize("name", list(STATE_CHANGES))
def test_every_state_change_script_answers_through_the_one_shape(name: str) -> None:
    body = STATE_CHANGES[name].removeprefix(scripts._STATE)
    returns = re.findall(r"\breturn\b\s*([^\n]*)", body)
    assert returns, name
    shaped = re.compile(r"^(answer\('\w+'|unchanged\('\w+'|missing\(\))")
    assert [r for r in returns if not shaped.match(r)] == [], name
    outcomes = set(re.findall(r"(?:answer|unchanged)\('(\w+)'", body))
    assert outcomes <= {o.value for o in Outcome}, name


def test_claims_and_recoveries_are_named_from_the_change() -> None:
    running, queued = JobStatus.running, JobStatus.queued
    assert Claim.of(Change(Outcome.applied, queued, running)) is Claim.claimed
    assert Claim.of(Change(Outcome.held, running, running)) is Claim.busy
    assert Claim.of(Change(Outcome.missing, None, None)) is Claim.missing
    for end in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled):
        assert Claim.of(Change(Outcome.refused, end, end)).value == end.value
    assert Recovery.of(Change(Outcome.applied, running, queued)) is Recovery.requeued
    assert Recovery.of(Change(Outcome.applied, running, JobStatus.failed)) is Recovery.failed
    assert Recovery.of(Change(Outcome.held, running, running)) is Recovery.alive
    assert Recovery.of(Change(Outcome.refused, queued, queued)) is Recovery.gone
    assert Recovery.of(Change(Outcome.missing, None, None)) is Recovery.missing
