"""Write the `images` section of BENCHMARKS.md from a run of deploy/image-test.sh.

`OCRQ_IMAGE_TEST_BENCHMARKS=1 make image-test` calls it with the run's figures (JSON) and the
`du -sm` listing of the CPU worker image; it is not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.report import machine_line, markdown_table, update_section


def biggest(du_listing: str, count: int = 8) -> list[list[object]]:
    rows = []
    for line in du_listing.splitlines()[:count]:
        size, path = line.split(maxsplit=1)
        rows.append([f"`{path}`", int(size)])
    return rows


def du_of(du_listing: str, suffix: str) -> int:
    return sum(int(line.split()[0]) for line in du_listing.splitlines() if line.endswith(suffix))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.images", description=__doc__)
    parser.add_argument("figures", type=Path, help="the run's figures (JSON)")
    parser.add_argument("du_listing", type=Path, help="`du -sm` of the CPU worker image")
    parser.add_argument("seconds", type=float, help="the whole check's wall time")
    args = parser.parse_args()
    figures = json.loads(args.figures.read_text())
    du_listing = args.du_listing.read_text()
    total = int(args.seconds)
    python = figures["python"]
    kept = figures["jobs_kept_over_redis_restart"]
    worker = [figures["worker_build_seconds"], figures["worker_size"]]
    gone = figures["trim_tesseract_packages"].split()
    opencv = du_of(du_listing, "/cv2") + du_of(du_listing, "opencv_python_headless.libs")
    steps = [
        ["stand-in base (mmdebstrap + CPython)", figures["base_seconds"], figures["base_size"]],
        ["`Dockerfile.api`", figures["api_build_seconds"], figures["api_size"]],
        ["`Dockerfile.worker --target cpu`", *worker],
        ["API `/health` after start", figures["health_seconds"], ""],
        ["CPU worker warm (in `/ready`) after start", figures["warm_seconds"], ""],
        ["first job (one page) through both images", figures["first_job_seconds"], ""],
        ["the whole check, install to clean-up", total, ""],
    ]
    body = f"""
## Images: built and started by `make image-test` (`deploy/image-test.sh`)

{machine_line()} (the host's Python, which drives the check); buildah 1.28 with chroot
isolation on a stand-in `python:{python}-slim-bookworm` made with mmdebstrap (docs/deploy.md,
"Image check"). Build times are from an empty storage (no layer cache, every package
downloaded) on a machine shared with other jobs; they vary by about 2x between runs.

{markdown_table(["step", "time (s)", "image size"], steps)}

Redis killed with SIGKILL mid-queue and started again on its AOF: {kept} of {kept} jobs kept,
all succeeded.

The biggest parts of the CPU worker image (MB, `du -sm`):

{markdown_table(["path", "MB"], biggest(du_listing))}

What could go from the CPU worker image without losing an engine:

- **Debian's `tesseract-ocr` (the CLI)**: {figures["trim_tesseract_mb"]} MB in the
  {len(gone)} packages an `apt-get purge --auto-remove tesseract-ocr` would take with it
  ({", ".join(gone[:3])}, ..., libicu72 the largest at 36 MB). The tesseract engine loads the
  libtesseract that the `tesserocr` wheel carries and reads only the language data, and
  `tesseract-ocr-eng`, `-rus` and `-osd` have no dependencies: installing those three alone
  should keep every engine. Not done, nor tried: the wheels must then load without the
  libraries that go too (libgomp1 is one); the CLI is handy inside the container; the docs
  and the Dockerfile lint describe the image with it.
- Not to trim: OpenCV ({opencv} MB, already the headless build) and onnxruntime are what
  rapidocr runs on. `/usr/local` is the stand-in's CPython, not the published base's.
"""
    update_section("images", body)
    print(body)


if __name__ == "__main__":
    main()
