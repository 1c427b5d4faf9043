# Two commands for a fresh machine: `make run` serves, `make test` tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast test-paddle image-test lint format config-docs docs bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Serving needs Tesseract's data only; the tests' packages (poppler-utils, chromium) are for `test`.
run: $(STAMP)
	scripts/ensure-system-deps.sh
	scripts/run-local.sh

# The suite in .venv (tests/paddle skips there: no paddleocr) on 2 processes (pytest-xdist; a
# module's tests stay on one, so its module-scoped engines and stacks start once; each has its
# own session stack and Redis dbs: tests/conftest.py), then the real-library PaddleOCR-VL tests
# in .venv-paddle (CPU paddlepaddle + pinned paddleocr/paddlex; about 2 min to build once).
test: $(STAMP)
	scripts/ensure-system-deps.sh --tests
	scripts/ensure-redis.sh
	scripts/ensure-s3rver.sh
	$(PY) -m pytest -n 2 --dist loadfile
	$(MAKE) test-paddle

# The fast tier: parsers, options, result mapping, settings, the client, deploy lint, layout
# rules; no Redis, no OCR engine, under a minute. What needs either is marked `integration`
# (automatically by its fixtures or folder: tests/conftest.py).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not integration" -q

test-paddle:
	scripts/ensure-redis.sh
	scripts/ensure-paddle-venv.sh
	.venv-paddle/bin/python -m pytest tests/paddle

# Build Dockerfile.api and the CPU worker image with buildah (no Docker engine, no registry),
# start both against a Redis with AOF and run jobs through them, then remove everything: about
# 4-10 min; root. OCRQ_IMAGE_TEST_BENCHMARKS=1 rewrites the `images` section of BENCHMARKS.md.
image-test: $(STAMP)
	deploy/image-test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The manual (mkdocs.yml, docs/) into var/site; --strict: a broken link or anchor fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# docs/configuration.md from the settings themselves (shared/settings.py, the client's
# ClientSettings); a fast test fails while it is stale.
config-docs: $(STAMP)
	$(PY) -m deploy.config_docs

# The service against its engines (overhead, cold start, submit path, Tesseract CLI, scaling):
# about 15-20 min; rewrites the `service` section of BENCHMARKS.md. BENCH_ARGS=--quick for a
# short run. Needs Redis (db 5, or OCRQ_BENCH_DB) and the tesseract CLI.
bench: $(STAMP)
	scripts/ensure-system-deps.sh
	scripts/ensure-redis.sh
	$(PY) -m bench.service $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache
