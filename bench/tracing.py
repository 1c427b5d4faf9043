"""Traces (OTEL_EXPORTER_OTLP_ENDPOINT): what they cost a submission.

    .venv/bin/python -m bench.tracing [--redis-url redis://127.0.0.1:6379/4] [--pairs 8]
        [--control-pairs 4] [--requests 800] [--clients 1,4]

Pairs of fresh `python -m api` processes (testkit/stack.py via bench/servicekit.py; no worker),
each on a Redis db of its own: tracing on in one (OTLP/HTTP protobuf to a receiver on loopback,
a process of its own that keeps every export and decodes them after the run: a collector's
decoding is not the API's cost; the SDK's batch processor at its defaults), off in the other.
Both are up together, started in a random order, and each request goes to one and then the
other (the order swapped at every step), from 1 client and then from 4 threads: whatever the
shared machine does at a moment hits both sides alike, and a process's own luck (its start
order, its memory layout) is averaged over many pairs. Control pairs run the same with tracing
off in both (A/A): the spread of their changes is what the harness itself can tell apart.
Per pair and level: each side's p50/p95 latency and API CPU per request (/proc, over the
level's window); the table gives the median change over pairs and its range. Then tracing's
own CPU per request, in-process (`span_cost`). Redis: the URL's db and the next, flushed at
the start and end of each pair. Writes the `tracing` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import httpx

from bench.procs import cpu_seconds, load_average
from bench.report import machine_line, markdown_table, update_section
from bench.servicekit import BenchStack
from testkit.pages import encode, render_page

WARM_UP = 100  # requests to each API before the clock starts
METRICS = ("p50_ms", "p95_ms", "api_cpu_ms")


def _db(url: str, offset: int) -> str:
    base, _, db = url.rpartition("/")
    return f"{base}/{int(db) + offset}"


def _receive(pipe: Connection) -> None:
    """An OTLP/HTTP receiver in a process of its own that keeps each export's body and decodes
    them all only when asked for the spans' count (testkit/otlp_receiver.py's decoding): a
    collector's work happens elsewhere, not on the measured cores. Sends its port first; ends
    when the pipe closes."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    from testkit.otlp_receiver import decode

    bodies: list[bytes] = []
    reply = ExportTraceServiceResponse().SerializeToString()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pipe.send(server.server_address[1])
    while True:
        try:
            pipe.recv()
        except EOFError:
            server.shutdown()
            return
        spans = [decode(ExportTraceServiceRequest.FromString(b)) for b in list(bodies)]
        pipe.send(sum(len(found) for found in spans))


@dataclass
class Side:
    """One API of a pair: its stack, a client, and what one level measured."""

    stack: BenchStack
    http: httpx.Client
    latencies: list[float] = field(default_factory=list)

    def submit(self, png: bytes) -> None:
        started = time.perf_counter()
        response = self.http.post("/jobs", files={"file": ("p.png", png)})
        self.latencies.append(time.perf_counter() - started)
        assert response.status_code == 202, response.text

    def cpu(self) -> float:
        assert self.stack.api is not None
        return cpu_seconds(self.stack.api.pid)


def _level(sides: list[Side], pngs: list[bytes], requests: int, clients: int) -> list[dict]:
    """`requests` submissions to each side, interleaved one by one (`clients` threads, each
    taking the sides in turn, the order swapped at every step): each side's figures."""
    for side in sides:
        side.latencies = []
    cpu = [side.cpu() for side in sides]

    def client(index: int) -> None:
        for step in range(index, requests, clients):
            png = pngs[step % len(pngs)]
            for side in sides if step % 2 == 0 else sides[::-1]:
                side.submit(png)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return [
        {
            "p50_ms": 1000 * statistics.median(side.latencies),
            "p95_ms": 1000 * statistics.quantiles(side.latencies, n=20)[-1],
            "api_cpu_ms": 1000 * (side.cpu() - before) / requests,
        }
        for side, before in zip(sides, cpu, strict=True)
    ]


def run_pair(
    url: str, envs: list[dict[str, str]], pngs: list[bytes], requests: int, levels: list[int]
) -> dict[int, list[dict]]:
    """Two fresh APIs (`envs`: each one's environment), started in a random order: each
    level's figures, per side, in `envs`' order."""
    order = list(range(len(envs)))
    random.shuffle(order)
    stacks: dict[int, BenchStack] = {}
    try:
        for index in order:
            stacks[index] = BenchStack.create(
                _db(url, index), {"LOG_LEVEL": "WARNING", **envs[index]}
            )
            stacks[index].start_api()
        sides = [
            Side(stacks[i], httpx.Client(base_url=stacks[i].url, timeout=30))
            for i in range(len(envs))
        ]
        for step in range(WARM_UP):
            for side in sides:
                side.submit(pngs[step % len(pngs)])
        found = {clients: _level(sides, pngs, requests, clients) for clients in levels}
        for side in sides:
            side.http.close()
        return found
    finally:
        for stack in stacks.values():
            stack.close()


def _changes(pairs: list[dict[int, list[dict]]], clients: int) -> dict[str, list[float]]:
    """Each pair's change of each figure, its first side against its second, in %."""
    return {
        name: [
            100 * (pair[clients][0][name] - pair[clients][1][name]) / pair[clients][1][name]
            for pair in pairs
        ]
        for name in METRICS
    }


def measure(args: argparse.Namespace, levels: list[int]) -> dict:
    pngs = [encode(render_page([(f"Traced page {n:04d}", 24)], width=320)) for n in range(50)]
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    receiver = context.Process(target=_receive, args=(theirs,), daemon=True)
    receiver.start()
    port = ours.recv()
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
    kinds = ["on"] * args.pairs + ["control"] * args.control_pairs
    random.shuffle(kinds)  # the controls spread over the run, not at one end
    found: dict[str, list] = {"on": [], "control": []}
    for n, kind in enumerate(kinds, 1):
        envs = [on, {}] if kind == "on" else [{}, {}]
        found[kind].append(run_pair(args.redis_url, envs, pngs, args.requests, levels))
        print(f"pair {n}/{len(kinds)} ({kind}) measured", flush=True)
    time.sleep(1)  # the traced APIs' last spans, flushed at their exit, arrive
    ours.send("count")
    spans = ours.recv()
    cost = span_cost(port)
    ours.close()
    receiver.join(10)
    traced = args.pairs * (WARM_UP + args.requests * len(levels))
    return {"pairs": found, "spans": spans, "traced": traced, "span_cost_us": cost}


def span_cost(port: int, requests: int = 5000) -> tuple[float, float]:
    """CPU microseconds per request of a stand-in route (what the submit route does for
    traces: name the job, read the traceparent) without and with the request middleware,
    its spans exported to the receiver; the batch processor's thread (encoding, sending)
    counted: process CPU time, the last spans flushed."""
    import asyncio

    from shared import tracing
    from shared.settings import Settings

    async def route(scope: dict, receive: object, send: object) -> None:
        tracing.tag_job("0" * 32)
        tracing.current_traceparent()
        await send({"type": "http.response.start", "status": 202, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"{}"})  # type: ignore[operator]

    async def ignore(message: dict) -> None:
        pass

    async def serve(app: object) -> None:
        for n in range(1, requests + 1):
            scope = {"type": "http", "method": "POST", "path": "/jobs", "headers": []}
            await app(scope, None, ignore)  # type: ignore[operator]
            if n % 500 == 0 and (active := tracing.active()) is not None:
                active.provider.force_flush()  # the processor's queue (2048) never overflows

    started = time.process_time()
    asyncio.run(serve(route))
    off = time.process_time() - started
    endpoint = f"http://127.0.0.1:{port}"
    tracing.start_tracing(Settings(otel_exporter_otlp_endpoint=endpoint), "ocrq-bench")
    from api.request_spans import RequestSpans

    started = time.process_time()
    asyncio.run(serve(RequestSpans(route, tracing.active())))  # type: ignore[arg-type]
    tracing.stop_tracing()
    on = time.process_time() - started
    return 1e6 * off / requests, 1e6 * on / requests


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):+.1f} % ({min(values):+.1f} to {max(values):+.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing", description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--pairs", type=int, default=8, help="pairs of APIs, traced and not")
    parser.add_argument("--control-pairs", type=int, default=4, help="pairs untraced both")
    parser.add_argument("--requests", type=int, default=800, help="per API and level")
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    random.seed(args.seed)
    levels = [int(c) for c in args.clients.split(",")]
    load_before = load_average()
    results = measure(args, levels)
    load = f"load average {load_before:.1f} before, {load_average():.1f} after"
    rows = []
    for clients in levels:
        for kind, label in (("on", "on vs off"), ("control", "off vs off (control)")):
            pairs = results["pairs"][kind]
            changes = _changes(pairs, clients)
            sides = [statistics.median(p[clients][0]["p50_ms"] for p in pairs)]
            sides.append(statistics.median(p[clients][1]["p50_ms"] for p in pairs))
            cpu = [statistics.median(p[clients][i]["api_cpu_ms"] for p in pairs) for i in (0, 1)]
            rows.append(
                [clients, label, len(pairs), f"{sides[0]:.2f} / {sides[1]:.2f}"]
                + [f"{cpu[0]:.2f} / {cpu[1]:.2f}"]
                + [_spread(changes[name]) for name in METRICS]
            )
    headers = ["clients", "pair", "pairs", "p50 ms", "API CPU ms / request"]
    headers += ["p50 change", "p95 change", "API CPU change"]
    table = markdown_table(headers, rows)
    route_off, route_on = results["span_cost_us"]
    api_cpu_us = 1000 * statistics.median(p[1][1]["api_cpu_ms"] for p in results["pairs"]["on"])
    own = (
        f"{route_on - route_off:.0f} µs of CPU per request ({route_off:.0f} µs without, "
        f"{route_on:.0f} with), {100 * (route_on - route_off) / api_cpu_us:.1f} % of the "
        f"{api_cpu_us / 1000:.2f} ms the untraced API spends on a submission (1 client)"
    )
    print(table)
    print(f"tracing's own cost: {own}")
    print(f"{load}; spans received {results['spans']} for {results['traced']} traced requests")
    update_section(
        "tracing",
        f"""## Traces: the cost of a submission (`python -m bench.tracing`)

{machine_line()}; {load} (the machine is shared). Pairs of fresh APIs (`python -m api`, no
worker) up together, tracing on in one (OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/HTTP protobuf to a
receiver on loopback, a process of its own that keeps each export and decodes them all after
the run; the SDK's batch processor at its defaults), off in the other; each request goes to
one API and then the other, the order swapped at every step, {args.requests} small PNG
submissions to each after {WARM_UP} to warm up, from 1 client and then from 4 threads.
*Control* pairs run the same untraced on both sides: their spread is what the harness itself
can tell apart. p50 ms and CPU: the first side / the second, medians over pairs; the changes:
the first side against the second, the median over pairs (range). The receiver got
{results["spans"]} spans for the {results["traced"]} requests the traced APIs answered (one
server span each). Target: submit latency within 5 %.

{table}

**Tracing's own work, in-process** (a stand-in ASGI route doing what the submit route does
for traces, called 5000 times without and with the request middleware; process CPU time,
the batch processor's encoding and sending to the same receiver included): {own}.
""",
    )


if __name__ == "__main__":
    main()
