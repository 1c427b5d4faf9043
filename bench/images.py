"""Write the `images` section of BENCHMARKS.md from a run of deploy/image-test.sh.

`OCRQ_IMAGE_TEST_BENCHMARKS=1 make image-test` calls it with the run's figures (JSON) and the
`du -sm` listing of the CPU worker image; it is not meant to be run by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.report import machine_line, markdown_table, update_section


def biggest(du_listing: str, count: int = 8) -> list[list[object]]:
    rows = []
    for line in du_listing.splitlines()[:count]:
        size, path = line.split(maxsplit=1)
        rows.append([f"`{path}`", int(size)])
    return rows


def main() -> None:
    figures = json.loads(Path(sys.argv[1]).read_text())
    du_listing = Path(sys.argv[2]).read_text()
    total = int(float(sys.argv[3]))
    python = figures["python"]
    body = f"""
## Images: built and started by `make image-test` (`deploy/image-test.sh`)

{machine_line()}; buildah 1.28 (chroot isolation), stand-in `python:{python}-slim-bookworm`
made with mmdebstrap (see docs/deploy.md, "Image check"). Build times are from an empty
storage (no layer cache, every package downloaded), on a machine shared with other jobs.

{
        markdown_table(
            ["step", "time (s)", "image size"],
            [
                [
                    "stand-in base (mmdebstrap + CPython)",
                    figures["base_seconds"],
                    figures["base_size"],
                ],
                ["`Dockerfile.api`", figures["api_build_seconds"], figures["api_size"]],
                [
                    "`Dockerfile.worker --target cpu`",
                    figures["worker_build_seconds"],
                    figures["worker_size"],
                ],
                ["API `/health` after start", figures["health_seconds"], ""],
                ["CPU worker warm (in `/ready`) after start", figures["warm_seconds"], ""],
                ["first job (one page) through both images", figures["first_job_seconds"], ""],
                ["the whole check, install to clean-up", total, ""],
            ],
        )
    }

Redis killed with SIGKILL mid-queue and started again on its AOF:
{figures["jobs_kept_over_redis_restart"]} of {figures["jobs_kept_over_redis_restart"]} jobs
kept, all succeeded.

The biggest parts of the CPU worker image (MB, `du -sm`):

{markdown_table(["path", "MB"], biggest(du_listing))}
"""
    update_section("images", body)
    print(body)


if __name__ == "__main__":
    main()
