"""Part 4, peer: the Tesseract CLI (Debian's, OMP_THREAD_LIMIT=1) on the Russian pages, one
process at a time like one worker."""

from __future__ import annotations

import os
import resource
import subprocess
import time

from bench.pages import BenchPage
from bench.procs import load_average
from bench.service.results import Results, log
from bench.servicekit import SCRATCH, Batch


def run_peer(ru: list[BenchPage], res: Results) -> None:
    res.loads["peer"] = load_average()
    folder = SCRATCH / "peer"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for page in ru:
        path = folder / f"{page.name}.png"
        path.write_bytes(page.png)
        paths.append(path)
    version = subprocess.run(
        ["tesseract", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    res.peer_version = version
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    batch = Batch(f"Tesseract CLI ({version}), rus+eng, one process", ru)
    log(f"peer: {version} x{len(ru)}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for page, path in zip(ru, paths, strict=True):
        out = subprocess.run(
            ["tesseract", str(path), "-", "-l", "rus+eng"],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        batch.texts[page.name] = out.stdout
        batch.engines[page.name] = "tesseract-cli"
    batch.wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    batch.cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    res.peer = batch
    log(f"  {batch.pages_per_second:.3f} pages/s")
