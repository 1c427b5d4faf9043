"""Webhooks through the real processes: the API takes callback_url, a worker (or the standalone
`python -m worker.webhooks`) delivers events signed the Standard Webhooks way to a loopback
receiver (testkit) that verifies them with the standardwebhooks library, retries it when it
fails, carries on after being killed, and cuts off receivers that misbehave."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import standardwebhooks.webhooks
from standardwebhooks import Webhook, WebhookVerificationError

from shared.api_keys import whsec
from testkit.pages import encode, render_page
from testkit.stack import Stack, wait_terminal
from testkit.webhook_receiver import Call, WebhookReceiver
from tests.integration.conftest import WEBHOOK_SECRET as SECRET

# loopback allowed for the receiver; short backoff and timeouts keep the tests quick
WEBHOOK_ENV = {
    "CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
    "WEBHOOK_SECRET": SECRET,
    "WEBHOOK_BACKOFF_BASE_SECONDS": "0.5",
    "WEBHOOK_BACKOFF_MAX_SECONDS": "2",
    "WEBHOOK_CONNECT_TIMEOUT": "1",
    "WEBHOOK_READ_TIMEOUT": "1",
    "WEBHOOK_TOTAL_TIMEOUT": "2.5",
    "WEBHOOK_MAX_RESPONSE_BYTES": "4096",
    "WEBHOOK_MAX_ATTEMPTS": "4",
}
# auth off: WEBHOOK_SECRET (not a whsec_ value) signs with its UTF-8 bytes, which receivers
# write as whsec_ + base64 (docs/webhooks.md, Which secret)
RECEIVER_SECRET = whsec(SECRET.encode())
PNG = encode(render_page([("Webhook test invoice 42", 30)], width=500), "PNG")


def submit(api: httpx.Client, url: str, **fields: str) -> str:
    response = api.post(
        "/jobs", files={"file": ("a.png", PNG)}, data={"callback_url": url, **fields}
    )
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def submit_and_cancel(api: httpx.Client, url: str) -> str:
    """A job that ends at once (no worker needed): canceled while queued."""
    job_id = submit(api, url)
    assert api.delete(f"/jobs/{job_id}").status_code == 200
    return job_id


def callback_when(
    api: httpx.Client, job_id: str, check: Callable[[dict], bool], timeout: float = 30
) -> dict:
    """GET /jobs/{id}'s callback state once `check` holds for it."""
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = api.get(f"/jobs/{job_id}").json()["callback"] or {}
        if check(state):
            return state
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id}'s callback never got there: {state}")


def event_order(call: Call) -> tuple[int, int]:
    """Deliveries go in parallel: order them by their event's stream id (in the delivery id)."""
    ms, seq = call.json["delivery_id"].rsplit("-", 2)[1:]
    return int(ms), int(seq)


def assert_signed(call: Call, secret: str = RECEIVER_SECRET) -> None:
    assert Webhook(secret).verify(call.body, call.headers) == call.json, call.headers
    assert call.headers["webhook-id"] == call.json["delivery_id"]


def test_a_real_job_sends_each_event_signed_from_the_worker(api: httpx.Client) -> None:
    # the session stack: its worker's webhook threads deliver (loopback allowed there)
    with WebhookReceiver(secret=RECEIVER_SECRET) as hooks:
        job_id = submit(api, hooks.url, callback_events="all")
        assert wait_terminal(api, job_id)["status"] == "succeeded"
        state = callback_when(
            api,
            job_id,
            lambda s: s.get("event") == "succeeded" and s.get("last_outcome") == "delivered",
        )
        calls = sorted(hooks.calls, key=event_order)

    events = [call.json["event"] for call in calls]
    assert events[0] == "queued" and events[-1] == "succeeded"
    assert {"running", "page"} <= set(events)
    for call in calls:
        assert_signed(call)
        assert call.verified  # the receiver's own check, before it answered 200
        assert call.json["job_id"] == job_id
        assert call.headers["Ocrq-Event"] == call.json["event"]
        assert "Ocrq-Signature" not in call.headers and "Ocrq-Timestamp" not in call.headers
    end = calls[-1].json
    assert set(end) == {
        "delivery_id",
        "event",
        "job_id",
        "status",
        "at",
        "error",
        "progress",
        "links",
    }
    assert end["status"] == "succeeded" and end["error"] is None
    assert end["links"]["result"] == f"/jobs/{job_id}/result"
    assert "Webhook" not in calls[-1].body.decode()  # never the result's text
    assert len({call.json["delivery_id"] for call in calls}) == len(calls)
    assert state["attempts"] == 1 and state["last_status_code"] == 200


def test_a_failing_receiver_gets_the_same_delivery_until_it_recovers_across_a_sender_kill(
    side_stack: Callable[..., Stack],
) -> None:
    stack = side_stack(**WEBHOOK_ENV)
    with WebhookReceiver(["500", "503", "200"]) as hooks:
        stack.start_api()
        sender = stack.start_webhooks()
        with httpx.Client(base_url=stack.url, timeout=10) as api:
            job_id = submit_and_cancel(api, hooks.url)
            first = hooks.wait_for(1)[0]
            retrying = callback_when(api, job_id, lambda s: s.get("last_outcome") == "retrying")
            assert retrying["last_status_code"] == 500 and retrying["next_attempt_at"]
            sender.send_signal(signal.SIGKILL)  # mid-retry: its schedule lives in Redis
            sender.wait(10)
            stack.start_webhooks()  # a new process, a new consumer
            calls = hooks.wait_for(3)
            state = callback_when(api, job_id, lambda s: s.get("last_outcome") == "delivered")

    assert [c.behaviour for c in calls] == ["500", "503", "200"]
    # one webhook-id on every retry: receivers dedupe on it
    assert {c.headers["webhook-id"] for c in calls} == {first.headers["webhook-id"]}
    assert {c.body for c in calls} == {first.body}  # the same bytes each time
    for call in calls:
        assert_signed(call)
    assert calls[0].json["event"] == "canceled" and calls[0].json["status"] == "canceled"
    assert calls[1].at - calls[0].at >= 0.3  # backed off (0.5 s, jitter 20 %)
    assert state["attempts"] == 3 and state["last_status_code"] == 200


def test_receivers_that_refuse_redirect_stall_or_flood_are_cut_off(
    side_stack: Callable[..., Stack],
) -> None:
    stack = side_stack(**WEBHOOK_ENV)
    receivers = {
        name: WebhookReceiver(script)
        for name, script in {
            "gone": ["404"],
            "busy": ["429:1", "200"],
            "redirect": ["redirect"],
            "slow": ["slow", "200"],
            "hang": ["hang", "200"],
            "huge": ["huge"],
        }.items()
    }
    for receiver in receivers.values():
        receiver.__enter__()
    try:
        stack.start_api()
        stack.start_webhooks()
        with httpx.Client(base_url=stack.url, timeout=10) as api:
            jobs = {name: submit_and_cancel(api, r.url) for name, r in receivers.items()}
            final = {
                name: callback_when(
                    api, job_id, lambda s: s.get("last_outcome") in ("delivered", "gave_up"), 45
                )
                for name, job_id in jobs.items()
            }
            time.sleep(1.5)  # a retry after a final outcome would come within this
    finally:
        for receiver in receivers.values():
            receiver.__exit__(None, None, None)
    calls = {name: r.calls for name, r in receivers.items()}

    # a 4xx other than 429 gives up at once
    assert final["gone"]["last_outcome"] == "gave_up" and final["gone"]["last_status_code"] == 404
    assert len(calls["gone"]) == 1
    # 429 is retried, after its Retry-After
    assert final["busy"]["last_outcome"] == "delivered" and len(calls["busy"]) == 2
    assert calls["busy"][1].at - calls["busy"][0].at >= 0.9
    # a redirect is not followed
    assert final["redirect"]["last_outcome"] == "gave_up"
    assert "redirect" in final["redirect"]["last_error"]
    assert [c.path for c in calls["redirect"]] == ["/hooks/ocr"]
    # a receiver trickling its answer is cut at WEBHOOK_TOTAL_TIMEOUT, one that hangs at the
    # read timeout; both retried
    for name in ("slow", "hang"):
        assert final[name]["last_outcome"] == "delivered" and len(calls[name]) == 2, name
        assert 0.9 <= calls[name][1].at - calls[name][0].at < 2.5 + 2 * 1.2 + 2, name
    # a huge answer: acknowledged by its status, read no further than the cap
    assert final["huge"]["last_outcome"] == "delivered" and len(calls["huge"]) == 1
    assert "huge" in receivers["huge"].cut_off


def test_the_address_is_checked_again_at_delivery(side_stack: Callable[..., Stack]) -> None:
    """The API allowed loopback at submit; a sender that does not (as if the name had moved
    to a refused address since) refuses to send."""
    stack = side_stack(**WEBHOOK_ENV)
    with WebhookReceiver() as hooks:
        stack.start_api()
        stack.start_webhooks(CALLBACK_ALLOWED_NETWORKS="")
        with httpx.Client(base_url=stack.url, timeout=10) as api:
            job_id = submit_and_cancel(api, hooks.url)
            state = callback_when(api, job_id, lambda s: s.get("last_outcome") == "gave_up")

    assert "refused" in state["last_error"] and "loopback" in state["last_error"]
    assert hooks.calls == []


def test_a_hanging_receiver_delays_only_its_own_host(side_stack: Callable[..., Stack]) -> None:
    """Eight deliveries to a receiver that hangs (each attempt held 30 s), then one to another
    receiver (another port: lanes are host:port): the other's arrives while the first still
    hangs, though the sender has 4 slots and the hanging ones were due first."""
    patient = {"WEBHOOK_READ_TIMEOUT": "30", "WEBHOOK_TOTAL_TIMEOUT": "30"}
    stack = side_stack(**{**WEBHOOK_ENV, **patient, "WEBHOOK_CONCURRENCY": "4"})
    with WebhookReceiver(["hang"] * 8) as stuck, WebhookReceiver() as fast:
        stack.start_api()
        stack.start_webhooks()
        with httpx.Client(base_url=stack.url, timeout=10) as api:
            for _ in range(8):
                submit_and_cancel(api, stuck.url)
            stuck.wait_for(2)  # the sender is in the hanging receiver's hands now
            submitted = time.time()
            submit_and_cancel(api, fast.url)
            [call] = fast.wait_for(1, timeout=15)  # at 4 slots shared, 30 s or more
            hanging = len(stuck.calls)

    assert call.json["event"] == "canceled" and call.at - submitted < 15
    assert hanging == 2  # WEBHOOK_CONCURRENCY_PER_HOST: the rest wait in their own lane


def test_a_key_whose_receivers_all_hang_delays_only_itself(
    side_stack: Callable[..., Stack],
) -> None:
    """Key A's jobs call back six receivers that all hang, key B's one that answers: A holds
    at most WEBHOOK_CONCURRENCY_PER_KEY (4) of the sender's 6 slots, so B's delivery comes while
    A's receivers still hang."""
    patient = {"WEBHOOK_READ_TIMEOUT": "30", "WEBHOOK_TOTAL_TIMEOUT": "30"}
    env = {**WEBHOOK_ENV, **patient, "WEBHOOK_CONCURRENCY": "6", "API_KEYS": "key-a,key-b"}
    stack = side_stack(**env)
    stuck = [WebhookReceiver(["hang"] * 2) for _ in range(6)]
    for receiver in stuck:
        receiver.__enter__()
    try:
        with WebhookReceiver() as fast:
            stack.start_api()
            stack.start_webhooks()
            with (
                httpx.Client(base_url=stack.url, timeout=10, headers=_bearer("key-a")) as a,
                httpx.Client(base_url=stack.url, timeout=10, headers=_bearer("key-b")) as b,
            ):
                for receiver in stuck:
                    submit_and_cancel(a, receiver.url)
                deadline = time.monotonic() + 30
                while sum(len(r.calls) for r in stuck) < 4 and time.monotonic() < deadline:
                    time.sleep(0.05)  # A's deliveries hang in the sender now
                submitted = time.time()
                submit_and_cancel(b, fast.url)
                [call] = fast.wait_for(1, timeout=15)  # at 6 slots for A, 30 s or more
                hanging = sum(len(r.calls) for r in stuck)
    finally:
        for receiver in stuck:
            receiver.__exit__(None, None, None)

    assert call.json["event"] == "canceled" and call.at - submitted < 15
    assert hanging == 4  # key A's share; its other two wait in their lanes


class _TenMinutesLater(datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def]
        return datetime.now(tz) + timedelta(minutes=10)


def test_a_real_delivery_tampered_or_replayed_late_is_refused_by_standardwebhooks(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with WebhookReceiver() as hooks:
        submit_and_cancel(api, hooks.url)
        [call] = hooks.wait_for(1)

    assert_signed(call)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(RECEIVER_SECRET).verify(call.body.replace(b"canceled", b"succeeded"), call.headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        later = str(int(call.headers["webhook-timestamp"]) + 60)
        Webhook(RECEIVER_SECRET).verify(call.body, {**call.headers, "webhook-timestamp": later})
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(whsec(b"another secret of 24 bytes")).verify(call.body, call.headers)
    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", _TenMinutesLater)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(RECEIVER_SECRET).verify(call.body, call.headers)  # a capture replayed later


OWN_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_each_key_signs_with_its_own_secret_and_another_keys_receiver_refuses_it(
    side_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """key-own has `secret=` in the key file, key-derived the secret derived from WEBHOOK_SECRET
    (as `python -m worker.webhooks secret` prints it). Each key's receiver verifies with its
    key's secret: it accepts its own key's jobs and refuses (401, given up) the other key's."""
    keys = tmp_path / "keys"
    keys.write_text(f"key-own secret={OWN_SECRET}\nkey-derived\n")
    stack = side_stack(**WEBHOOK_ENV, API_KEYS_FILE=str(keys))
    printed = subprocess.run(
        [sys.executable, "-m", "worker.webhooks", "secret"],
        input="key-derived\n",
        capture_output=True,
        text=True,
        env=stack.env,
        cwd=stack.root,
        timeout=60,
        check=True,
    )
    derived = printed.stdout.strip()
    assert derived.startswith("whsec_") and Webhook(derived)
    with (
        WebhookReceiver(secret=OWN_SECRET) as own_hooks,
        WebhookReceiver(secret=derived) as derived_hooks,
    ):
        stack.start_api()
        stack.start_webhooks()
        with (
            httpx.Client(base_url=stack.url, timeout=10, headers=_bearer("key-own")) as own,
            httpx.Client(base_url=stack.url, timeout=10, headers=_bearer("key-derived")) as other,
        ):
            mine = [
                submit_and_cancel(own, own_hooks.url),
                submit_and_cancel(other, derived_hooks.url),
            ]
            theirs = [
                submit_and_cancel(other, own_hooks.url),
                submit_and_cancel(own, derived_hooks.url),
            ]
            delivered = [
                callback_when(c, j, lambda s: s.get("last_outcome") == "delivered")
                for c, j in zip((own, other), mine, strict=True)
            ]
            refused = [
                callback_when(c, j, lambda s: s.get("last_outcome") == "gave_up")
                for c, j in zip((other, own), theirs, strict=True)
            ]

    assert [s["last_status_code"] for s in delivered] == [200, 200]
    assert [s["last_status_code"] for s in refused] == [401, 401]
    for hooks, secret in ((own_hooks, OWN_SECRET), (derived_hooks, derived)):
        assert sorted(c.verified for c in hooks.calls) == [False, True]
        [good] = [c for c in hooks.calls if c.verified]
        assert_signed(good, secret)


def test_with_auth_off_a_whsec_webhook_secret_signs_as_the_receiver_writes_it(
    side_stack: Callable[..., Stack],
) -> None:
    stack = side_stack(**{**WEBHOOK_ENV, "WEBHOOK_SECRET": OWN_SECRET})
    with WebhookReceiver(secret=OWN_SECRET) as hooks:
        stack.start_api()
        stack.start_webhooks()
        with httpx.Client(base_url=stack.url, timeout=10) as api:
            job_id = submit_and_cancel(api, hooks.url)
            state = callback_when(api, job_id, lambda s: s.get("last_outcome") == "delivered")

    [call] = hooks.calls
    assert call.verified and state["last_status_code"] == 200
    assert_signed(call, OWN_SECRET)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
