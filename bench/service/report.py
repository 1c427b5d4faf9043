"""The `service` section of BENCHMARKS.md from one run's figures: the measured tables and the
facts computed from them. Findings in words live outside the section, dated with their run."""

from __future__ import annotations

import argparse
import os
import statistics

from bench.pages import BenchPage
from bench.report import machine_line, markdown_table, update_section
from bench.service.results import PARTS, Results, Sizes
from bench.servicekit import POLL_SECONDS, Batch


def _f(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def _score(batch: Batch) -> str:
    score = batch.score
    return f"{score.cer:.2%} / {score.word_f1:.3f}"


def report(res: Results, sizes: Sizes, en: list[BenchPage], ru: list[BenchPage]) -> str:
    load_start = res.loads.get("start", 0.0)
    parts = [
        "## The service against its engines (`python -m bench.service`)",
        f"{machine_line()}; **{os.cpu_count()} cores, load average at the start "
        f"{load_start:.2f}** (1 min; 5/15 min {res.loads['start5']:.2f}/"
        f"{res.loads['start15']:.2f}), at the end {res.loads.get('end', 0):.2f}; load at the "
        "start of each part (this run's own processes count too): "
        + ", ".join(f"{k} {v:.1f}" for k, v in res.loads.items() if k in PARTS)
        + ". The machine is shared: other work inflates wall times; CPU seconds are steadier. "
        f"Pages: {len(en)} English A4 pages at 200 dpi rendered by `bench/pages.py` (30 lines "
        f"of license prose, DejaVuSans 30 px, PNG {statistics.mean(p.size_kb for p in en):.0f} KB)"
        f" and {len(ru)} Russian pages of `shared/eval/debian_docs_ru` (grayscale PNG, 200 dpi). "
        "One API process, Redis local, settings defaults unless named; the client polls "
        f"`GET /jobs/{{id}}` every {POLL_SECONDS} s (oldest unfinished job first) and downloads "
        "the JSON result. CER / word F1 by "
        "`testkit/scoring.py`.",
    ]
    if res.service and res.direct:
        parts += _overhead_report(res)
    if res.coldstart:
        parts += _coldstart_report(res)
    if res.submit:
        parts += _submit_report(res)
    if res.peer:
        parts += _peer_report(res)
    if res.scaling:
        parts += _scaling_report(res)
    if res.checks:
        parts += [
            "### Where the time goes besides recognition",
            markdown_table(["what", "cost"], res.checks),
        ]
    return "\n\n".join(parts)


def _overhead_report(res: Results) -> list[str]:
    rows = []
    for key in ("en/en", "en/auto", "ru/ru", "ru/auto"):
        if key not in res.service:
            continue
        service, direct = res.service[key], res.direct[key]
        explicit = res.service[key.split("/")[0] + "/" + key.split("/")[0]]
        engines = sorted(set(service.engines.values()))
        rows.append(
            [
                f"{len(service.pages)} {'English' if key.startswith('en') else 'Russian'}",
                key.split("/")[1],
                "+".join(engines),
                _f(direct.pages_per_second),
                _f(service.pages_per_second),
                f"**{service.pages_per_second / direct.pages_per_second:.2f}**",
                _f(direct.cpu_per_page, 2),
                _f(service.cpu_per_page, 2),
                _f(service.api_cpu / len(service.pages), 3),
                _score(service)
                + ("" if _score(service) == _score(direct) else " (loop: " + _score(direct) + ")"),
                f"{service.pages_per_second / explicit.pages_per_second:.2f}",
            ]
        )
    breakdown = []
    for key, service in res.service.items():
        direct = res.direct[key]
        info = service.server_breakdown()
        in_worker = statistics.mean(service.worker_page_seconds or [float("nan")])
        breakdown.append(
            [
                service.label + f" ({key.split('/')[0]})",
                _f(direct.wall / len(direct.pages), 2),
                _f(in_worker, 2),
                _f(info["job_seconds_mean"], 2),
                _f(info["first_start_delay"], 2),
                _f((service.wall - info["busy_seconds"]) / len(service.pages), 3),
                _f(service.submit_wall, 2),
            ]
        )
    return [
        "### 1. Overhead: the whole service over the engine alone (target ≥ 0.95)",
        "*engine loop*: `router.read(page, language)` on the worker's engines built from "
        "`Settings` (`worker.boot.build_engines`, warmed), pages decoded beforehand, in this "
        "process, with the same language as the service run beside it (so `auto` is measured "
        "against `auto`: the same engine choices). *service*: every page POSTed at once, then "
        "each job polled and its JSON result fetched; wall time from the first POST to the "
        "last result. CPU s/page: this process (loop) or the worker processes (service); API "
        "CPU: the API process. *vs named language*: service pages/s over the service's with "
        "`en`/`ru` named on the same pages, the price of letting `auto` choose.",
        markdown_table(
            [
                "pages",
                "language",
                "read by",
                "loop pages/s",
                "service pages/s",
                "service / loop",
                "loop CPU s/page",
                "worker CPU s/page",
                "API CPU s/page",
                "CER / word F1",
                "vs named language",
            ],
            rows,
        ),
        "Worker memory after the batch (VmRSS / peak VmHWM of the worker process): "
        + ", ".join(
            f"{k} {b.worker_rss[0]:.0f} / {b.worker_rss[1]:.0f} MB" for k, b in res.service.items()
        )
        + ".",
        "Where the service's extra time goes, seconds per page (from the jobs' own "
        "timestamps and the worker's log): *engine in worker* is the worker's page time "
        "(`... in X s`), *job* is started→finished, *first wait* is the first job's "
        "created→started, *idle* is (wall - Σ job time) / pages: upload, queue hand-over "
        "between jobs, polling lag, result download.",
        markdown_table(
            [
                "run",
                "loop s/page",
                "engine in worker s/page",
                "job s/page",
                "first wait s",
                "idle s/page",
                "submit all s",
            ],
            breakdown,
        ),
    ]


def _coldstart_report(res: Results) -> list[str]:
    c = res.coldstart
    steady = c["steady_latency"]
    rows = [
        ["worker warm-up (log `engine warm in X s`)", _f(c["log_warmup_seconds"], 2), ""],
        ["process start -> `/ready` says warm (seen by polling)", _f(c["spawn_to_warm_seen"], 2),
         ""],
        ["**first job, submitted as the process starts**: POST -> result",
         _f(c["first_latency"], 2), f"{c['first_latency'] / steady:.1f}x"],
        ["  of which waiting for the worker (created -> started)", _f(c["first_wait"], 2), ""],
        ["  of which running (started -> finished)", _f(c["first_run"], 2),
         f"{c['first_run'] / c['steady_run']:.2f}x steady run"],
        [f"steady job on that worker (median of {res.sizes_steady}, one at a time)",
         _f(steady, 2), "1.00x"],
    ]  # fmt: skip
    for n, r in enumerate(res.restarts, start=1):
        ratio = r["first_latency"] / r["steady_latency"]
        rows += [
            [f"restart {n}: process start -> `/ready` warm (warm-up {r['warmup_seconds']:.2f} s)",
             _f(r["spawn_to_warm"], 2), ""],
            [f"restart {n}: **first job submitted right after `/ready` says warm**",
             _f(r["first_latency"], 2), f"**{ratio:.2f}x** (target <= 1.1x)"],
            ["  of which waiting for the worker / running",
             f"{r['first_wait']:.2f} / {r['first_run']:.2f}",
             f"{r['first_run'] / r['steady_run']:.2f}x steady run"],
            [f"restart {n}: steady job on that worker (median of {res.sizes_steady})",
             _f(r["steady_latency"], 2), "1.00x"],
        ]  # fmt: skip
    ratios = sorted(r["first_latency"] / r["steady_latency"] for r in res.restarts)
    summary = (
        f"**First job after `/ready` says warm: median {statistics.median(ratios):.2f}x a steady "
        f"job over {len(ratios)} restarts** (each: "
        + ", ".join(f"{x:.2f}x" for x in ratios)
        + "; target <= 1.1x)."
        if ratios
        else ""
    )
    return [
        "### 2. Cold start",
        "One English page, `language=en`, one worker (`python -m worker`: supervisor + worker "
        "process, which warms rapidocr and the tesseract fallback). Latency is the client's: "
        "POST to the result downloaded, polling every 20 ms. Each ratio is against the median of "
        "the jobs sent one at a time right after, to the same worker (the machine's load moves "
        f"between minutes). Then the worker is restarted {len(res.restarts)} times and a job is "
        "sent the moment `/ready` says it is warm.",
        markdown_table(["what", "seconds", "vs steady"], rows),
        summary,
    ]


def _submit_report(res: Results) -> list[str]:
    m = res.submit_memory
    rows = [
        [
            r["clients"],
            r["mode"],
            "-" if r.get("offered") is None else f"{r['offered']:.0f}",
            r["requests"],
            f"{r['jobs_per_second']:.0f}",
            f"{r['p50'] * 1000:.0f}",
            f"**{r['p99'] * 1000:.0f}**",
            f"{r['max'] * 1000:.0f}",
            "-"
            if r["mode"] != "closed loop"
            else f"{r['clients'] / r['jobs_per_second'] * 1000:.0f}",
            f"{r['api_cpu_ms']:.1f}",
            f"{r['client_cpu_ms']:.1f}",
            f"{r['peak_rss']:.0f}",
        ]
        for r in res.submit
    ]
    return [
        "### 3. Submit path: `POST /jobs` with 1 MB uploads (target p99 < 50 ms at 50 clients, "
        "RSS < 100 MB)",
        f"A valid {m['upload_bytes'] / 1e6:.2f} MB PNG of noise (incompressible), multipart "
        "encoded once; *clients* concurrent `httpx.AsyncClient`s (a connection each) in this "
        "process, either in a *closed loop* (each sends its next upload when the "
        "last is answered: the most the API takes, its capacity in jobs/s) or *N/s each* (every "
        "client sends N uploads a second, random phase: a steady *offered* load of clients x N "
        "jobs/s); **no worker running**; `MAX_QUEUED_JOBS=1000000`, queue and uploads emptied "
        "before each row. *Little's law* is clients / (jobs/s): the mean latency a closed loop "
        "must see. "
        f"API RSS (VmRSS): at rest {m['rest_rss']:.0f} MB, after the load "
        f"{m['after_rss']:.0f} MB; peak RSS is the highest sample (every 20 ms) or VmHWM "
        "during the row.",
        markdown_table(
            [
                "clients",
                "sending",
                "offered jobs/s",
                "requests",
                "jobs/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "Little's law ms",
                "API CPU ms/job",
                "client CPU ms/job",
                "API peak RSS MB",
            ],
            rows,
        ),
        _submit_verdict(res.submit),
    ]


def _submit_verdict(rows: list[dict]) -> str:
    """What this run's table says about the 50 ms target: capacity, and the paced load it held."""
    closed = [r for r in rows if r["mode"] == "closed loop"]
    paced = sorted((r for r in rows if r.get("offered")), key=lambda r: r["offered"])
    text = []
    if closed:
        top = max(closed, key=lambda r: r["clients"])
        text.append(
            f"**Capacity** (closed loop, {top['clients']} clients): {top['jobs_per_second']:.0f} "
            f"jobs/s, so {top['clients']} clients that each send again at once wait "
            f"{top['clients'] / top['jobs_per_second'] * 1000:.0f} ms on average whatever the "
            f"code does: p99 < 50 ms there would need over {top['clients'] / 0.05:.0f} jobs/s."
        )
    if paced:
        held = [r for r in paced if r["p99"] < 0.05]
        if held:
            text.append(
                f"**p99 stays under 50 ms up to an offered {held[-1]['offered']:.0f} jobs/s** "
                f"from {held[-1]['clients']} clients (p99 {held[-1]['p99'] * 1000:.0f} ms)"
                + (
                    f"; at {paced[-1]['offered']:.0f} jobs/s it is "
                    f"{paced[-1]['p99'] * 1000:.0f} ms."
                    if held[-1] is not paced[-1]
                    else "."
                )
            )
        else:
            text.append(
                f"p99 is over 50 ms at every paced load tried (from {paced[0]['offered']:.0f} "
                f"jobs/s: {paced[0]['p99'] * 1000:.0f} ms)."
            )
    return " ".join(text)


def _peer_report(res: Results) -> list[str]:
    assert res.peer is not None
    rows = []
    for batch in [res.peer, res.direct.get("ru/ru"), res.service.get("ru/ru"),
                  res.service.get("ru/auto")]:  # fmt: skip
        if batch is None:
            continue
        score = batch.score
        label = batch.label
        if batch is res.direct.get("ru/ru"):
            label = "tesserocr in a loop (the engine of `language=ru`)"
        elif batch is not res.peer:
            label = f"ocrq {batch.label}"
        rows.append(
            [
                label,
                _f(batch.pages_per_second),
                _f(batch.cpu_per_page, 2),
                f"{score.cer:.2%}",
                f"{score.word_f1:.3f}",
            ]
        )
    return [
        "### 4. Peer: the Tesseract CLI on the Russian pages",
        f"`tesseract PAGE.png - -l rus+eng` with `OMP_THREAD_LIMIT=1`, one page after another "
        f"(one process at a time, like one worker), {len(res.peer.pages)} pages. CPU s/page: "
        "the CLI processes, this process (loop), or the worker (service).",
        markdown_table(["reader", "pages/s", "CPU s/page", "CER", "word F1"], rows),
    ]


def _scaling_report(res: Results) -> list[str]:
    base = res.scaling.get((1, "0"))
    rows = []
    for (workers, threads), batch in res.scaling.items():
        rows.append(
            [
                workers,
                f"{threads} (auto)" if threads == "0" else threads,
                _f(batch.pages_per_second),
                f"{batch.pages_per_second / base.pages_per_second:.2f}" if base else "-",
                _f(batch.cpu_per_page, 2),
            ]
        )
    best = max(res.scaling, key=lambda k: res.scaling[k].pages_per_second)
    best_pps = res.scaling[best].pages_per_second
    parts = [
        "### 5. Scaling: worker processes x `RAPIDOCR_THREADS` (English pages, rapidocr)",
        f"{len(next(iter(res.scaling.values())).pages)} English pages, `language=en`, every "
        "page POSTed at once. `0` leaves onnxruntime's default (one thread per core).",
        markdown_table(
            ["workers", "RAPIDOCR_THREADS", "pages/s", "vs 1 worker, auto", "worker CPU s/page"],
            rows,
        ),
    ]
    if res.scaling_ru:
        ru_rows = [
            [w, _f(b.pages_per_second), _f(b.cpu_per_page, 2)] for w, b in res.scaling_ru.items()
        ]
        parts += [
            "Russian pages (`language=ru`, tesseract: one thread per page):",
            markdown_table(["workers", "pages/s", "worker CPU s/page"], ru_rows),
        ]
    parts.append(
        f"**Measured best: {best[0]} worker process(es) with RAPIDOCR_THREADS={best[1]} "
        f"({best_pps:.3f} pages/s).**"
    )
    return parts


def render(saved: dict) -> str:
    """The section's text from what a run saved (see results.LAST_RUN)."""
    body = report(saved["res"], saved["sizes"], saved["en"], saved["ru"])
    return body + f"\n\nWhole run: {saved['seconds']:.0f} s."


def publish(body: str, args: argparse.Namespace) -> None:
    """Print the section and, unless --no-write, rewrite it in BENCHMARKS.md."""
    print(body)
    if not args.no_write:
        update_section("service", body)
