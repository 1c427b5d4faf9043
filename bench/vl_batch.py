"""`python -m bench.vl_batch`: a worker with PaddleOCR-VL on a VL server, against the library.

The VL server is testkit's stand-in (in a child process, so its request handling does not take
the GIL from what is measured) with a latency model: a fixed time per request and a cap on
requests served at once (default 300 ms and 64, about what a GPU behind vLLM does with a page).
In the same run and on the same server:

- the library itself (`paddleocr.PaddleOCRVL`, built like the engine: layout off, CPU, the
  vllm-server backend): one `predict` per page in a loop, then `predict(list of the pages)`,
  and one single-page `predict` (the latency reference);
- the service with one worker (`python -m api` and `python -m worker`, OCR_ENGINE=paddleocr-vl):
  (a) the pages as single-page jobs sent at once, (b) the pages as one PDF, and one lone
  single-page job (latency).

Pages are rendered text pages of distinct sizes; the stand-in answers each with its size, so
every result is checked to be its own page's. Runs in .venv-paddle (the real library):
`.venv-paddle/bin/python -m bench.vl_batch`. Rewrites the `vl-batch` section of BENCHMARKS.md.
Redis db OCRQ_BENCH_DB (default 5), flushed at start and end.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import httpx

from bench.procs import load_average
from bench.report import machine_line, markdown_table, update_section
from bench.servicekit import ROOT, BenchStack
from testkit.pages import encode, render_page

SECTION = "vl-batch"
CACHE_HOME = ROOT / "var" / "bench" / "paddle-home"
# paddlex and the hubs it knows would write here; nothing is downloaded (layout is off).
CACHE_ENV = {
    "PADDLE_PDX_CACHE_HOME": str(CACHE_HOME / "paddlex"),
    "HF_HOME": str(CACHE_HOME / "huggingface"),
    "MODELSCOPE_CACHE": str(CACHE_HOME / "modelscope"),
    "XDG_CACHE_HOME": str(CACHE_HOME / "cache"),
}
POLL = 0.02  # the bench polls job states this often (seconds)
# worker/batcher.py logs each engine call
BATCH_LINE = re.compile(r"page batcher: (\d+) page\(s\) of \d+ job\(s\) in ([0-9.]+) s")


# --- the stand-in VL server, in a child process ---------------------------------------------


def _serve(conn: Connection, latency: float, concurrency: int) -> None:
    from testkit.vl_server import VlServer

    server = VlServer(latency=latency, max_concurrency=concurrency).start()
    conn.send(server.url)
    while True:
        command = conn.recv()
        if command == "stats":
            stats = server.stats
            conn.send((stats.requests, stats.max_in_flight))
        elif command == "reset":
            server.reset_stats()
            conn.send(None)
        else:
            server.stop()
            conn.send(None)
            return


class ServerProcess:
    """testkit's VlServer in a spawned child; stats and resets over a pipe."""

    def __init__(self, latency: float, concurrency: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, latency, concurrency), daemon=True)
        self._proc.start()
        self.url: str = self._conn.recv()

    def _ask(self, command: str):
        self._conn.send(command)
        return self._conn.recv()

    def reset(self) -> None:
        self._ask("reset")

    def stats(self) -> tuple[int, int]:
        """(requests answered, most requests in flight at once) since the last reset."""
        return self._ask("stats")

    def stop(self) -> None:
        self._ask("stop")
        self._proc.join(timeout=10)


# --- inputs ---------------------------------------------------------------------------------


def bench_pages(count: int) -> list:
    """`count` text pages, each of its own size (800+25i x 1000), RGB: at 200 dpi
    25 px are 9 pt, so a PDF of them renders back to the same sizes."""
    return [
        render_page(
            [(f"Page {i + 1} of the batch", 40), ("Lorem ipsum dolor sit amet.", 30)], 800 + 25 * i
        ).resize((800 + 25 * i, 1000))
        for i in range(count)
    ]


def expected_text(image) -> str:
    from testkit.vl_server import page_text

    return page_text(image.width, image.height)


def as_pdf(images: list, dpi: int) -> bytes:
    """One PDF whose pages render back to exactly these images at `dpi`."""
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:], resolution=dpi)
    return buffer.getvalue()


# --- the library ----------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    pages: int
    seconds: float
    requests: int = 0
    max_in_flight: int = 0
    cpu: float = 0.0  # CPU seconds: the bench process (library), or worker + API (service)
    batches: list[tuple[int, float]] = field(default_factory=list)  # worker's engine calls
    uploaded: float = 0.0  # service: seconds until the last upload was answered
    taken: float = 0.0  # service: seconds from the first job taken by the worker to the last

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0


def build_library(url: str):
    from paddleocr import PaddleOCRVL

    return PaddleOCRVL(
        pipeline_version="v1.6",
        vl_rec_backend="vllm-server",
        vl_rec_server_url=url,
        device="cpu",
        use_layout_detection=False,
        use_doc_orientation_classify=False,
        use_doc_unwarping=False,
    )


@dataclass
class Library:
    """The library's own figures; the references are its best (the fastest mode)."""

    runs: list[Run]
    loop: Run  # one page at a time: the faster of the two loops
    batch: Run  # predict(list): the faster of the two
    single: float  # median seconds of one single-page predict, the faster mode


def library_runs(server: ServerProcess, images: list, singles: int) -> Library:
    """A loop of single predicts and one predict(list), with paddlex's stage queues on (the
    default: a fixed 0.5 s wait per call) and off (as the engine calls it)."""
    import numpy as np

    pipeline = build_library(server.url)
    bgr = [np.ascontiguousarray(np.asarray(i)[:, :, ::-1]) for i in images]
    list(pipeline.predict(bgr[0]))  # warm: the first call builds the VL client

    def timed(label: str, call) -> Run:
        server.reset()
        cpu, started = time.process_time(), time.perf_counter()
        results = call()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        texts = [r.json["res"]["parsing_res_list"][0]["block_content"] for r in results]
        wanted = [expected_text(i) for i in images[: len(texts)]]
        assert texts == wanted, f"{label}: the library's results are not the pages' own"
        return Run(label, len(results), seconds, *server.stats(), cpu=cpu)

    runs, loops, batches, lone = [], [], [], []
    for queues in (True, False):
        mode = "" if queues else ", `use_queues=False`"
        loops.append(
            timed(
                f"library: a loop of single `predict` calls{mode}",
                lambda q=queues: [r for page in bgr for r in pipeline.predict(page, use_queues=q)],
            )
        )
        batches.append(
            timed(
                f"library: `predict(list of the pages)`{mode}",
                lambda q=queues: list(pipeline.predict(bgr, use_queues=q)),
            )
        )
        runs += [loops[-1], batches[-1]]
        lone.append(
            statistics.median(
                timed(
                    "single", lambda q=queues: list(pipeline.predict(bgr[0], use_queues=q))
                ).seconds
                for _ in range(singles)
            )
        )
    return Library(
        runs,
        min(loops, key=lambda r: r.seconds),
        min(batches, key=lambda r: r.seconds),
        min(lone),
    )


# Measured by hand (not by this script), kept with its figures: why the defaults are what they
# are and where the worker's CPU goes.
NOTES = [
    "- BATCH_IN_FLIGHT (2026-12-01 23:28-23:31, load 6-7, `--batch-in-flight N`, (a) / (b) vs "
    "the library's best list): 1 (one engine call at a time, as before): 0.32x / 0.39x; "
    "2: 0.49x / 0.60x; 4: 0.56x / 0.73x; 8: 0.46x / 0.59x. Default 4. "
    "`--batch-fill-seconds 0.2` (4 in flight): (a) 0.32x with calls of 1, 1, 3, 5, 5 and 9 "
    "pages: a longer fill wait does not merge the first pages (their jobs wait, nobody is "
    "preparing), so BATCH_FILL_SECONDS stays 0.05 (the lone page is not delayed by it)",
    "- the worker's CPU (py-spy record, 200 Hz, on-CPU Python samples of the worker process over "
    "a whole run, 23:33): 44% in `recognize_batch`, half of that turning each PIL page into a "
    "BGR array (`convert`, `asarray`, a reversed copy: three copies of the page) and half "
    "paddlex's `predict` (JPEG + base64 of each request, block merging); 27% decoding the "
    "upload or rendering the PDF page; 6% Redis. The library's figure has neither the "
    "decoding nor the conversion. The conversion is one copy and a cv2 channel swap (outside "
    "the GIL) since 23:50; the table above is from a run after that change",
]


# --- the service ----------------------------------------------------------------------------


@dataclass
class MemoryWatch:
    """Samples the worker's RSS (largest process of its tree) while a run goes."""

    stack: BenchStack
    peak: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> MemoryWatch:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.stack.worker_memory()[0])


def post(client: httpx.Client, data: bytes, name: str, media: str) -> str:
    response = client.post("/jobs", files={"file": (name, data, media)})
    response.raise_for_status()
    return response.json()["job_id"]


def wait_all(client: httpx.Client, ids: list[str], timeout: float = 600) -> list[dict]:
    """Poll until every job succeeded; their final bodies, in order."""
    bodies: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(bodies) < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ids) - len(bodies)} job(s) not done after {timeout} s")
        for job_id in ids:
            if job_id in bodies:
                continue
            response = client.get(f"/jobs/{job_id}")
            if response.status_code >= 500:  # a 503 under load: ask again at the next poll
                continue
            response.raise_for_status()
            body = response.json()
            if body["status"] in ("failed", "canceled"):
                raise RuntimeError(f"job {job_id} {body['status']}: {body.get('error')}")
            if body["status"] == "succeeded":
                bodies[job_id] = body
        time.sleep(POLL)
    return [bodies[i] for i in ids]


def check_texts(client: httpx.Client, ids: list[str], wanted: list[str]) -> None:
    got = []
    for job_id in ids:
        document = client.get(f"/jobs/{job_id}/result").json()
        got += [page["text"] for page in document["pages"]]
    assert got == wanted, "the service's results are not the pages' own"


def service_runs(
    stack: BenchStack, server: ServerProcess, images: list, dpi: int, singles: int
) -> tuple[list[Run], list[dict], float]:
    """((a) single-page jobs at once, (b) one PDF), the lone-page jobs, peak worker RSS."""
    pngs = [encode(i) for i in images]
    wanted = [expected_text(i) for i in images]
    pdf = as_pdf(images, dpi)

    [worker] = stack.worker_names.values()

    def timed(label: str, jobs: list[tuple[bytes, str, str]]) -> Run:
        server.reset()
        log_start = len(stack.worker_log(worker))
        cpu = stack.worker_cpu() + stack.api_cpu()
        started = time.perf_counter()
        with ThreadPoolExecutor(len(jobs)) as pool:
            ids = list(pool.map(lambda job: post(client, *job), jobs))
        uploaded = time.perf_counter() - started
        bodies = wait_all(client, ids)
        seconds = time.perf_counter() - started
        taken = [_ts(b["started_at"]) for b in bodies]
        cpu = stack.worker_cpu() + stack.api_cpu() - cpu
        check_texts(client, ids, wanted)
        found = BATCH_LINE.findall(stack.worker_log(worker)[log_start:])
        batches = [(int(n), float(t)) for n, t in found]
        return Run(
            label,
            len(pngs),
            seconds,
            *server.stats(),
            cpu=cpu,
            batches=batches,
            uploaded=uploaded,
            taken=max(taken) - min(taken),
        )

    with httpx.Client(base_url=stack.url, timeout=60) as client, MemoryWatch(stack) as memory:
        # warm the path (connections, the worker's first job)
        wait_all(client, [post(client, pngs[0], "warm.png", "image/png")])
        runs = [
            timed(
                f"service: (a) {len(pngs)} single-page jobs sent at once",
                [(png, f"p{i}.png", "image/png") for i, png in enumerate(pngs)],
            ),
            timed(f"service: (b) one {len(pngs)}-page PDF", [(pdf, "doc.pdf", "application/pdf")]),
        ]
        lone = []
        for _ in range(singles):
            started = time.perf_counter()
            [body] = wait_all(client, [post(client, pngs[0], "lone.png", "image/png")])
            lone.append(body | {"seconds": time.perf_counter() - started})
    return runs, lone, memory.peak


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


def lone_breakdown(bodies: list[dict]) -> str:
    """Where a lone job's time went, from its own timestamps (medians)."""
    queued = statistics.median(_ts(b["started_at"]) - _ts(b["created_at"]) for b in bodies)
    ran = statistics.median(_ts(b["finished_at"]) - _ts(b["started_at"]) for b in bodies)
    return f"{queued * 1000:.0f} ms from upload to a worker taking it, {ran * 1000:.0f} ms running"


def worker_env(url: str, args: argparse.Namespace) -> dict[str, str]:
    env = {
        **CACHE_ENV,
        "OCR_ENGINE": "paddleocr-vl",
        "PADDLEOCR_VL_BACKEND": "vllm-server",
        "PADDLEOCR_VL_SERVER_URL": url,
        "PADDLEOCR_VL_DEVICE": "cpu",
        "PADDLEOCR_VL_LAYOUT": "off",
        "PDF_DPI": str(args.dpi),
    }
    for name in ("batch_size", "batch_fill_seconds", "batch_jobs", "batch_in_flight"):
        value = getattr(args, name)
        if value is not None:
            env[name.upper()] = str(value)
    return env


# --- report ---------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    library: Library,
    service: list[Run],
    lone_jobs: list[dict],
    rss: float,
    idle_rss: float,
    loads: tuple[float, float],
) -> str:
    service_cpu = 1000 * sum(r.cpu for r in service) / sum(r.pages for r in service)
    library_cpu = 1000 * library.batch.cpu / library.batch.pages
    lone = statistics.median(b["seconds"] for b in lone_jobs)
    loop, batch = library.loop, library.batch
    arrival = service[0]
    budget = batch.seconds / 0.8  # (a) done within this is 0.8x the library's list
    slowest = max((t for r in service for _, t in r.batches), default=0.0)
    left = budget - arrival.uploaded
    room = (
        "less than the uploads alone took"
        if left <= 0
        else f"which leaves {left:.2f} s after the last upload"
    )
    rows = [
        [
            r.label,
            r.pages,
            f"{r.seconds:.2f}",
            f"{r.pages_per_second:.1f}",
            f"{r.pages_per_second / batch.pages_per_second:.2f}x",
            f"{r.pages_per_second / loop.pages_per_second:.1f}x",
            r.requests,
            r.max_in_flight,
            f"{r.cpu:.2f}",
        ]
        for r in [*library.runs, *service]
    ]
    table = markdown_table(
        [
            "run",
            "pages",
            "seconds",
            "pages/s",
            "vs library list (best)",
            "vs loop (best)",
            "requests",
            "most in flight",
            "CPU s",
        ],
        rows,
    )
    verdicts = []
    for run in service:
        ratio = run.pages_per_second / batch.pages_per_second
        speedup = run.pages_per_second / loop.pages_per_second
        calls = ", ".join(f"{n} pages in {t:.2f} s" for n, t in run.batches)
        verdicts.append(
            f"- {run.label}: {ratio:.2f}x the library's best list (target 0.8x: "
            f"{'met' if ratio >= 0.8 else 'missed'}), {speedup:.1f}x its best loop of one "
            f"page at a time (target 3x: {'met' if speedup >= 3 else 'missed'}); the worker's "
            f"engine calls: {calls}; the uploads were answered within {run.uploaded:.2f} s "
            f"and the worker took the job(s) over {run.taken:.2f} s"
        )
    ratio = lone / library.single
    verdicts.append(
        f"- one lone page: {lone * 1000:.0f} ms through the service (POST to `succeeded` seen, "
        f"polled every {POLL * 1000:.0f} ms; median of {args.singles}) vs "
        f"{library.single * 1000:.0f} ms for the library's fastest single `predict`: "
        f"{ratio:.2f}x (target 1.2x: {'met' if ratio <= 1.2 else 'missed'}); "
        f"{lone_breakdown(lone_jobs)}"
    )
    settings = (
        ", ".join(
            f"{k.upper()}={v}"
            for k, v in vars(args).items()
            if k.startswith("batch_") and v is not None
        )
        or "defaults"
    )
    return "\n".join(
        [
            "## PaddleOCR-VL pages batched for the VL server (`python -m bench.vl_batch`)",
            "",
            f"{machine_line()}. Stand-in VL server (testkit.vl_server, own process): "
            f"{args.latency * 1000:.0f} ms per request, at most {args.concurrency} at once. "
            f"{args.pages} text pages of distinct sizes (800-1375 x 1000), layout off (one request "
            f"a page), paddleocr 3.7.0 / paddlex 3.7.2 on CPU paddlepaddle; one worker, "
            f"batch settings: {settings}. Each result checked to be its own page's.",
            "",
            table,
            "",
            *verdicts,
            f"- worker RSS while batching: {rss:.0f} MB at most (VmRSS of the worker process, "
            f"sampled every 0.1 s), {idle_rss:.0f} MB warm and idle",
            f"- load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end (2 cores "
            "shared with other work). Where the service falls short of the library's list: "
            f"(1) arrival: in (a) the uploads are answered within {arrival.uploaded:.2f} s and "
            f"the worker takes the jobs over {arrival.taken:.2f} s (Celery hands them to its "
            "threads one by one), while the library has every page at the start; a job waiting "
            "on its page is not preparing one, so each batch goes as soon as every held job "
            "waits, and the engine calls overlap (up to BATCH_IN_FLIGHT) instead of queuing "
            f"behind each other; 0.8x would mean (a) done in {budget:.2f} s, "
            f"{room}. (2) CPU: its processes spent {service_cpu:.0f} ms of CPU a page against the "
            f"library's {library_cpu:.0f} ms (which is handed ready arrays), on cores the "
            "stand-in server also decodes every page's JPEG on; the engine calls above take "
            f"{slowest:.2f} s at most for a server answering in {args.latency:.2f} s: the "
            "worker's threads (job threads decoding pages, dispatchers building requests, "
            "paddlex's event loop) share one process's GIL and these 2 cores",
            *NOTES,
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.vl_batch", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--pages", type=int, default=24)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per VL request")
    parser.add_argument("--concurrency", type=int, default=64, help="VL requests served at once")
    parser.add_argument("--dpi", type=int, default=200)
    parser.add_argument("--singles", type=int, default=3, help="lone-page runs (median)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--batch-fill-seconds", type=float, default=None)
    parser.add_argument("--batch-jobs", type=int, default=None)
    parser.add_argument("--batch-in-flight", type=int, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md")
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs (var/bench)")
    args = parser.parse_args(argv)
    os.environ.update(CACHE_ENV)  # before paddlex is imported
    redis_url = f"redis://127.0.0.1:6379/{os.environ.get('OCRQ_BENCH_DB', '5')}"

    images = bench_pages(args.pages)
    load_at_start = load_average()
    server = ServerProcess(args.latency, args.concurrency)
    stack = BenchStack.create(redis_url)
    try:
        library = library_runs(server, images, args.singles)
        stack.start_api()
        stack.start_workers(1, worker_env(server.url, args))
        idle_rss = stack.worker_memory()[0]
        service, lone_jobs, rss = service_runs(stack, server, images, args.dpi, args.singles)
    except BaseException:
        print(stack.logs(), file=sys.stderr)
        raise
    finally:
        stack.close(keep=args.keep)
        server.stop()
    loads = (load_at_start, load_average())
    body = report(args, library, service, lone_jobs, rss, idle_rss, loads)
    print(body)
    if not args.no_write:
        update_section(SECTION, body)


if __name__ == "__main__":
    main()
