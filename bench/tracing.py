"""Traces (OTEL_EXPORTER_OTLP_ENDPOINT): what they cost a submission.

    .venv/bin/python -m bench.tracing [--redis-url redis://127.0.0.1:6379/4] [--jobs 50]
        [--rounds 40] [--clients 1,4]

Two real `python -m api` processes up at once (testkit/stack.py via bench/servicekit.py), no
worker: tracing off on the URL's db, on on the next (exporting over OTLP/HTTP protobuf to a
receiver on loopback, a process of its own that keeps every export and decodes them after the
run: a collector's decoding is not the API's cost; OTEL_BSP_SCHEDULE_DELAY left at the SDK's
5 s). Each round sends `--jobs` small PNG jobs to
each API in turn (the order swapped every round, so the machine's other load hits both;
many short rounds, so a burst of it hits both sides of a round alike),
from 1 client and then from 4 threads; p50/p95 of every request's latency over all rounds,
jobs/s and the API's CPU per job (from /proc) the median round's, and the spans the receiver
got. Then tracing's own CPU per request, in-process (`span_cost`). Redis: the URL's db and
the next, flushed at start, between rounds and at the end.
Writes the `tracing` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection

import httpx

from bench.procs import load_average
from bench.report import machine_line, markdown_table, update_section
from bench.servicekit import SCRATCH, BenchStack
from testkit.pages import encode, render_page

SIDES = ("off", "on")
# every run's per-round changes, kept on this machine: the section shows their spread
HISTORY = SCRATCH / "tracing-runs.json"


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


def _submit(client: httpx.Client, png: bytes) -> float:
    started = time.perf_counter()
    response = client.post("/jobs", files={"file": ("p.png", png)})
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.text
    return elapsed


def _round(stack: BenchStack, pngs: list[bytes], clients: int) -> tuple[list[float], float, float]:
    """Submit every png once: (latencies, wall seconds, API CPU seconds)."""
    cpu = stack.api_cpu()
    with (
        httpx.Client(base_url=stack.url, timeout=30) as http,
        ThreadPoolExecutor(clients) as pool,
    ):
        _submit(http, pngs[0])  # the connection open before the clock starts
        started = time.perf_counter()
        latencies = list(pool.map(lambda png: _submit(http, png), pngs))
        wall = time.perf_counter() - started
    return latencies, wall, stack.api_cpu() - cpu


def measure(url: str, jobs: int, rounds: int, levels: list[int]) -> tuple[dict, int, int]:
    pngs = [encode(render_page([(f"Traced page {n:04d}", 24)], width=320)) for n in range(jobs)]
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    receiver = context.Process(target=_receive, args=(theirs,), daemon=True)
    receiver.start()
    port = ours.recv()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "LOG_LEVEL": "WARNING"}
    stacks = {
        "off": BenchStack.create(_db(url, 0), {"LOG_LEVEL": "WARNING"}),
        "on": BenchStack.create(_db(url, 1), env),
    }
    found = {
        (side, clients): {"latencies": [], "rates": [], "cpu": [], "p50": [], "p95": []}
        for side in SIDES
        for clients in levels
    }
    submitted = 0
    try:
        for stack in stacks.values():
            stack.start_api()
        for n in range(rounds):
            for clients in levels:
                for side in SIDES if n % 2 == 0 else SIDES[::-1]:
                    stack = stacks[side]
                    stack.flush()
                    time.sleep(0.5)
                    latencies, wall, cpu = _round(stack, pngs, clients)
                    cell = found[(side, clients)]
                    cell["latencies"] += latencies
                    cell["p50"].append(1000 * statistics.median(latencies))
                    cell["p95"].append(1000 * statistics.quantiles(latencies, n=20)[-1])
                    cell["rates"].append(jobs / wall)
                    cell["cpu"].append(1000 * cpu / jobs)
                    if side == "on":
                        submitted += jobs + 1
    finally:
        for stack in stacks.values():
            stack.close()  # the API's last spans flushed at its exit
    time.sleep(1)
    ours.send("count")
    spans = ours.recv()
    results = {
        key: {
            "p50_ms": 1000 * statistics.median(cell["latencies"]),
            "p95_ms": 1000 * statistics.quantiles(cell["latencies"], n=20)[-1],
            "jobs_per_s": statistics.median(cell["rates"]),
            "api_cpu_ms": statistics.median(cell["cpu"]),
        }
        for key, cell in found.items()
    }
    for clients in levels:  # each round's on against the off measured next to it
        off, on = found[("off", clients)], found[("on", clients)]
        results[("paired", clients)] = {
            name: statistics.median(
                100 * (a - b) / b for a, b in zip(on[series], off[series], strict=True)
            )
            for name, series in (
                ("p50_ms", "p50"),
                ("p95_ms", "p95"),
                ("jobs_per_s", "rates"),
                ("api_cpu_ms", "cpu"),
            )
        }
    results["span_cost_us"] = span_cost(port)
    ours.close()
    receiver.join(10)
    return results, spans, submitted


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


def _history(results: dict, levels: list[int], args: argparse.Namespace, load: float) -> str:
    """Add this run to HISTORY; every run kept, as a table."""
    runs = json.loads(HISTORY.read_text()) if HISTORY.exists() else []
    runs.append(
        {
            "at": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "rounds": f"{args.rounds} x {args.jobs}",
            "load": round(load, 1),
            "receiver": "kept",
            **{str(c): results[("paired", c)] for c in levels},
        }
    )
    HISTORY.parent.mkdir(parents=True, exist_ok=True)
    HISTORY.write_text(json.dumps(runs, indent=1))
    keys = ("p50_ms", "p95_ms", "jobs_per_s", "api_cpu_ms")
    rows = [
        [run["at"], run["rounds"], run.get("receiver", "live"), run["load"], clients]
        + [f"{run[clients][k]:+.1f} %" for k in keys]
        for run in runs
        for clients in ("1", "4")
        if clients in run
    ]
    headers = ["run (UTC)", "rounds x jobs", "receiver", "load", "clients"]
    headers += ["p50", "p95", "jobs/s", "API CPU"]
    return markdown_table(headers, rows)


def _change(on: float, off: float) -> str:
    return f"{100 * (on - off) / off:+.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing", description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--clients", default="1,4")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    load_before = load_average()
    results, spans, submitted = measure(args.redis_url, args.jobs, args.rounds, levels)
    load = f"load average {load_before:.1f} before, {load_average():.1f} after"
    rows = []
    for clients in levels:
        off, on = results[("off", clients)], results[("on", clients)]
        for side, cell in (("off", off), ("on", on)):
            rows.append(
                [
                    clients,
                    side,
                    f"{cell['p50_ms']:.1f}",
                    f"{cell['p95_ms']:.1f}",
                    f"{cell['jobs_per_s']:.0f}",
                    f"{cell['api_cpu_ms']:.2f}",
                ]
            )
        rows.append(
            [
                clients,
                "on vs off",
                _change(on["p50_ms"], off["p50_ms"]),
                _change(on["p95_ms"], off["p95_ms"]),
                _change(on["jobs_per_s"], off["jobs_per_s"]),
                _change(on["api_cpu_ms"], off["api_cpu_ms"]),
            ]
        )
        paired = results[("paired", clients)]
        rows.append(
            [clients, "on vs off, per round (median)"]
            + [f"{paired[k]:+.1f} %" for k in ("p50_ms", "p95_ms", "jobs_per_s", "api_cpu_ms")]
        )
    headers = ["clients", "tracing", "p50 ms", "p95 ms", "jobs/s", "API CPU ms / job"]
    table = markdown_table(headers, rows)
    history = _history(results, levels, args, load_before)
    route_off, route_on = results["span_cost_us"]
    api_cpu_us = 1000 * results[("off", 1)]["api_cpu_ms"]
    own = (
        f"{route_on - route_off:.0f} µs of CPU per request ({route_off:.0f} µs without, "
        f"{route_on:.0f} with), {100 * (route_on - route_off) / api_cpu_us:.1f} % of the "
        f"{api_cpu_us / 1000:.2f} ms the API spends on a submission (1 client, off)"
    )
    print(table)
    print(f"tracing's own cost: {own}")
    print(f"{load}; spans received {spans} for {submitted} requests to the traced API")
    update_section(
        "tracing",
        f"""## Traces: the cost of a submission (`python -m bench.tracing`)

{machine_line()}; {load} (the machine is shared: other loads slow both sides). Two APIs up at
once (`python -m api`, no worker), tracing off and on (OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/HTTP
protobuf to a receiver on loopback, a process of its own that keeps each export and decodes
them all after the run, a collector's work being elsewhere; the SDK's batch processor at its
defaults). {args.rounds} rounds of {args.jobs} small PNG jobs to each,
taken in turn, the order swapped every round; from 1 client, then from 4 threads. p50/p95 over
every request of every round; jobs/s and the API's CPU per job (/proc) the median round's. The
receiver got {spans} spans for the {submitted} requests the traced API answered (one server
span each). Target: within 5 %. *on vs off, per round*: the median over rounds of each
round's change (on against the off measured right before or after it), which cancels
slow drifts of the machine's load.

{table}

**Tracing's own work, in-process** (a stand-in ASGI route doing what the submit route does
for traces, called 5000 times without and with the request middleware; process CPU time,
the batch processor's encoding and sending to the same receiver included): {own}. On a
shared machine the table's differences swing both ways by more than the 5 % target from one
run to the next (the load average above): they neither show the target nor rule it out; this
in-process figure is the steady measure of what traces add to a submission.

**Every run kept on this machine** (var/bench/tracing-runs.json; each run's *on vs off, per
round (median)*; *receiver*: `kept` decodes after the run, `live` decoded each export as it
came, on the same 2 cores):

{history}
""",
    )


if __name__ == "__main__":
    main()
