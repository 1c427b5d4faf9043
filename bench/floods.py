"""The API's memory and its connections' lifetimes under hostile floods (issue 11, items 2-3).

    .venv/bin/python -m bench.floods [--label after] [--api-root DIR] [--redis-db 4]

Starts the real `python -m api` (the code of --api-root, default this checkout; no worker) on
loopback and sends, one flood at a time, sampling the API's RSS every 20 ms:

- form fields: one chunked body of 4 KB fields (up to 400 MB), ten concurrent 45 MB bodies of
  4 KB fields (with a Content-Length), and a 300 MB chunked body whose one part has no name;
  each sender stops once the API answers or closes;
- heads: 20 connections each sending an unfinished 16 MB header, held open, beside idle
  connections, half-sent heads, a slow head (a byte a second) and half-sent bodies, each timed
  until the API closes it (at most --hold seconds).

Each run's figures go to var/bench/floods-<label>.json; the "floods" section of BENCHMARKS.md
shows every label there (run it with --label before on the old code to compare).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

from bench.procs import memory_mb
from bench.report import labelled_runs, machine_line, markdown_table, update_section
from testkit.rawhttp import (
    BOUNDARY,
    CLOSING,
    Conn,
    form_field,
    send_body,
    upload_head,
)
from testkit.stack import ROOT, Stack

SCRATCH = ROOT / "var" / "bench"
MB = 1 << 20
LABELS = ("before", "after")


class RssSampler:
    """The API's VmRSS every 20 ms while a flood runs: (before, peak, after) in MB."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self.before = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> float:
        return memory_mb(self.pid)[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def finish(self, settle: float = 1.0) -> dict[str, float]:
        time.sleep(settle)
        self._stop.set()
        self._thread.join()
        after = self.rss()
        return {"rss_before": self.before, "rss_peak": max(self.peak, after), "rss_after": after}


def _fields(total: int, per_chunk: int = 64) -> Iterator[bytes]:
    count = total // len(form_field(0))
    for first in range(0, count, per_chunk):
        yield b"".join(form_field(i) for i in range(first, min(count, first + per_chunk)))


def _nameless_part(total: int, piece: int = 256 << 10) -> Iterator[bytes]:
    """One part with no Content-Disposition (the old parser skipped its bytes), `total` long."""
    yield b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\n"
    for _ in range(total // piece):
        yield b"x" * piece


def _flood(port: int, senders: list[Callable[[Conn], None]]) -> list[Conn]:
    conns = [Conn(port) for _ in senders]
    threads = [threading.Thread(target=s, args=(c,)) for s, c in zip(senders, conns, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for conn in conns:
        conn.close()
    return conns


def body_floods(stack: Stack) -> list[dict]:
    rows = []

    def one_big(conn: Conn) -> None:
        conn.send(upload_head(None))
        send_body(conn, _fields(400 * MB), chunked=True)

    part = len(form_field(0))
    per_body = (45 * MB // part) * part + len(CLOSING)

    def sized(conn: Conn) -> None:
        conn.send(upload_head(per_body))
        send_body(conn, _fields(45 * MB), chunked=False)

    def nameless(conn: Conn) -> None:
        conn.send(upload_head(None))
        send_body(conn, _nameless_part(300 * MB), chunked=True)

    floods = [
        ("one chunked body of 4 KB fields (400 MB)", [one_big]),
        ("10 concurrent 45 MB bodies of 4 KB fields", [sized] * 10),
        ("300 MB chunked body, no file part (a nameless part)", [nameless]),
    ]
    for name, senders in floods:
        sampler = RssSampler(stack.api.pid)
        started = time.monotonic()
        conns = _flood(stack.port, senders)
        seconds = time.monotonic() - started
        answers = sorted({c.answer() for c in conns})
        rows.append(
            {
                "flood": name,
                "answer": ", ".join(answers),
                "mb_sent": sum(c.sent for c in conns) / MB,
                "seconds": seconds,
                **sampler.finish(),
            }
        )
        print(rows[-1], flush=True)
    return rows


def _slowrequest_head(conn: Conn, hold: float) -> None:
    conn.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    while conn.send(b"a") and time.monotonic() - conn.opened < hold:
        time.sleep(1)


def _huge_header(conn: Conn) -> None:
    conn.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Fill: ")
    for _ in range(16 * MB // (64 << 10)):
        if not conn.send(b"a" * (64 << 10)):
            return


def head_floods(stack: Stack, hold: float) -> tuple[dict, list[dict]]:
    """20 unfinished 16 MB headers (RSS), and how long each kind of stalled connection lives."""
    sampler = RssSampler(stack.api.pid)
    body_head = upload_head(MB)
    kinds: dict[str, tuple[int, Callable[[Conn], None]]] = {
        "unfinished 16 MB header": (20, _huge_header),
        "idle (sends nothing)": (5, lambda c: None),
        "half-sent head": (5, lambda c: c.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")),
        "slow head (a byte a second)": (5, lambda c: _slowrequest_head(c, hold)),
        "half-sent body (1 KB of 1 MB)": (
            5,
            lambda c: c.send(body_head + b"--" + BOUNDARY + b"\r\n" + b"x" * 1024),
        ),
    }
    started = time.monotonic()
    conns = {name: [Conn(stack.port) for _ in range(n)] for name, (n, _) in kinds.items()}
    threads = [
        threading.Thread(target=send, args=(conn,), daemon=True)
        for name, (_, send) in kinds.items()
        for conn in conns[name]
    ]
    for thread in threads:
        thread.start()
    header_conns = conns["unfinished 16 MB header"]
    while time.monotonic() - started < hold and any(
        c.closed_after is None for group in conns.values() for c in group
    ):
        time.sleep(0.1)
    memory = {"flood": "20 connections, unfinished 16 MB header each", **sampler.finish(0)}
    memory["mb_sent"] = sum(c.sent for c in header_conns) / MB
    memory["answer"] = ", ".join(sorted({c.answer() for c in header_conns}))
    lifetimes = []
    for name, group in conns.items():
        closed = [c.closed_after for c in group if c.closed_after is not None]
        lifetimes.append(
            {
                "connection": f"{len(group)} x {name}",
                "answer": ", ".join(sorted({c.answer() for c in group})),
                "closed": len(closed),
                "open": len(group) - len(closed),
                "max_seconds": max(closed) if closed else None,
            }
        )
        for conn in group:
            conn.close()
    memory["rss_after"] = RssSampler(stack.api.pid).finish()["rss_after"]
    print(memory, lifetimes, sep="\n", flush=True)
    return memory, lifetimes


def render(results: dict[str, dict]) -> str:
    parts = [
        "## Floods against the API (`python -m bench.floods`)",
        "",
        "The real `python -m api` (no worker) on loopback, default settings; RSS of the API "
        "process sampled every 20 ms. A sender stops once the API answers or closes; *MB sent* "
        "is what it got into the socket by then (loopback's buffers take a few MB unread). "
        "`before`: the code before issue 11's fixes (`--label before --api-root` of that "
        "checkout); `after`: with them (MAX_FORM_FIELDS, MAX_FIELD_BYTES, the 128 KB budget "
        "beside the file, MAX_HEADER_BYTES, HEADER_TIMEOUT_SECONDS, BODY_TIMEOUT_SECONDS).",
    ]
    for label in LABELS:
        run = results.get(label)
        if run is None:
            continue
        parts += ["", f"**{label}** ({run['machine']}):", ""]
        parts.append(
            markdown_table(
                ["flood", "answer", "MB sent", "s", "RSS at rest MB", "peak MB", "after MB"],
                [
                    [
                        r["flood"],
                        r["answer"],
                        f"{r['mb_sent']:.1f}",
                        f"{r['seconds']:.1f}" if "seconds" in r else "-",
                        f"{r['rss_before']:.0f}",
                        f"{r['rss_peak']:.0f}",
                        f"{r['rss_after']:.0f}",
                    ]
                    for r in run["memory"]
                ],
            )
        )
        parts += ["", f"Stalled connections, held up to {run['hold']:.0f} s:", ""]
        parts.append(
            markdown_table(
                ["connections", "answer", "closed by the API", "still open", "closed after s"],
                [
                    [
                        r["connection"],
                        r["answer"],
                        r["closed"],
                        r["open"],
                        "-" if r["max_seconds"] is None else f"≤ {r['max_seconds']:.1f}",
                    ]
                    for r in run["lifetimes"]
                ],
            )
        )
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after", choices=LABELS)
    parser.add_argument("--api-root", type=Path, default=ROOT, help="checkout whose API runs")
    parser.add_argument("--redis-db", type=int, default=4)
    parser.add_argument("--hold", type=float, default=45, help="longest wait for a close, s")
    args = parser.parse_args()

    SCRATCH.mkdir(parents=True, exist_ok=True)
    base = SCRATCH / f"floods-{args.label}-{time.strftime('%H%M%S')}"
    base.mkdir()
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    stack = Stack(base=base, redis_url=redis_url, root=args.api_root.resolve())
    try:
        stack.start_api()
        time.sleep(1)
        memory = body_floods(stack)
        head_memory, lifetimes = head_floods(stack, args.hold)
    finally:
        stack.stop()
        redis.Redis.from_url(redis_url).flushdb()
    run = {
        "machine": machine_line(),
        "hold": args.hold,
        "memory": [*memory, head_memory],
        "lifetimes": lifetimes,
    }
    text = render(labelled_runs("floods", args.label, run, LABELS))
    print(text)
    update_section("floods", text)


if __name__ == "__main__":
    main()
