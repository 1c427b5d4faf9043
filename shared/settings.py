"""One Settings object, read from environment variables once at start and passed around."""

from __future__ import annotations

import re
import sys
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.api_keys import KeyEntry, KeyRing, read_key_entries
from shared.callback_urls import CallbackPolicy
from shared.options import Engine

# s3://bucket[/prefix]: an S3 bucket name, then key segments without empty ones
STORAGE_URL = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^/\s]+)*/?")


class Settings(BaseSettings):
    """Every knob of the service. Env var names are the field names in upper case."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Broker and job store")
    output_dir: Path = Field(Path("/app/output"), description="Results: OUTPUT_DIR/<job_id>/")
    temp_dir: Path = Field(Path("/app/temp"), description="Uploads: TEMP_DIR/<job_id>/")
    ocr_engine: str = Field("rapidocr", description="Engine the worker warms at boot")
    port: int = Field(8081, ge=1, le=65535)
    host: str = "0.0.0.0"
    # SO_RCVBUF of the API's connections (api/listen.py); 0 = the kernel's autotuning. Small
    # keeps memory per upload in flight low; a window of about twice this per round trip caps
    # one upload's speed, so raise it for clients that reach the API directly over long links.
    api_socket_rcvbuf: int = Field(65536, ge=0, description="API socket receive buffer, bytes")
    max_upload_mb: float = Field(50, gt=0)
    # The upload's other parts: option fields, each small. With 64 KB for boundaries and part
    # headers they bound the body beside the file (api/uploads.py FormLimits), chunked or not.
    max_form_fields: int = Field(16, ge=0, description="Form fields besides the file (413)")
    max_field_bytes: int = Field(4096, ge=1, description="Bytes of one form field (413)")
    # The connection before the app sees it (api/connection_guard.py): request line + headers
    # must arrive within header_timeout_seconds and fit in max_header_bytes; an upload's
    # body must keep coming (no gap longer than body_timeout_seconds).
    max_header_bytes: int = Field(16384, ge=1024, description="Request line + headers (431)")
    header_timeout_seconds: float = Field(10, gt=0, description="Time to send the head (408)")
    body_timeout_seconds: float = Field(30, gt=0, description="Longest gap in a body (408)")
    job_ttl_seconds: int = Field(
        7 * 24 * 3600, gt=0, description="Seconds a record is kept after its job ended"
    )
    max_pages: int = Field(500, ge=1, description="Documents with more pages are refused (422)")
    pdf_dpi: int = Field(200, ge=72, le=600, description="Default PDF render resolution")
    api_keys: str = Field("", description="Comma-separated bearer keys; empty = no auth")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line")
    # Seconds a worker heartbeat lives in Redis; the worker refreshes it every third of that.
    worker_heartbeat_ttl: int = Field(30, ge=3)
    # Must exceed the longest job, or Redis redelivers a running task to a second worker.
    broker_visibility_timeout: int = Field(3600, ge=60)
    # A running job's lease: renewed every third of it; a dead worker's job is back in the
    # queue this long after it died (or failed worker_lost after JOB_MAX_ATTEMPTS deaths).
    job_lease_seconds: int = Field(30, ge=3)
    job_max_attempts: int = Field(3, ge=1)
    orphan_sweep_seconds: float = Field(5, gt=0)
    job_timeout_seconds: int = Field(3600, ge=1, description="Whole-job time limit (timeout)")
    page_timeout_seconds: int = Field(600, ge=1, description="One page's time limit (timeout)")
    # Back-pressure: POST /jobs answers 429 queue_full while this many jobs wait in the queue.
    max_queued_jobs: int = Field(10000, ge=1, description="Jobs allowed to wait in the queue")
    # rapidocr tuning (see ENGINES notes: max-side 960 keeps accuracy and cuts latency)
    rapidocr_det_limit_side_len: int = Field(960, ge=32)
    rapidocr_threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = auto")
    rapidocr_rec_model: Path | None = Field(
        None, description="Recognition ONNX model instead of the wheel's PP-OCRv6 (e.g. eslav)"
    )
    rapidocr_rec_keys: Path | None = Field(None, description="Dictionary file of that model")
    rapidocr_rec_scripts: str = Field(
        "latin", description="Scripts the recognition model reads: latin, cyrillic (comma list)"
    )
    ocr_fallback_engines: str = Field(
        "tesseract",
        description="Engines also warmed at boot, used for scripts OCR_ENGINE cannot read",
    )
    # tesseract engine (Debian's rus/eng traineddata read by the libtesseract inside tesserocr)
    tesseract_lang: str = Field("rus+eng", description="Tesseract languages, e.g. rus+eng")
    tesseract_psm: int = Field(
        3, ge=1, le=13, description="Tesseract page segmentation mode (not 2: layout only)"
    )
    tesseract_data_dir: Path | None = Field(
        None, description="Folder of *.traineddata; None = the Debian/Fedora/local default"
    )
    # paddleocr-vl engine
    paddleocr_vl_backend: str = Field(
        "native",
        description="VL model backend (PaddleOCRVL vl_rec_backend): native (local CUDA GPU), "
        "vllm-server, sglang-server, fastdeploy-server, mlx-vlm-server, llama-cpp-server",
    )
    paddleocr_vl_server_url: str | None = Field(
        None,
        description="OpenAI-style base URL of the VL server, e.g. http://127.0.0.1:8118/v1; "
        "required by every backend but native",
    )
    paddleocr_vl_device: str = Field(
        "gpu:0",
        description="Paddle device of the layout model (and of the VL model when native): "
        "gpu or gpu:N; cpu only with a server backend",
    )
    paddleocr_vl_pipeline_version: str = Field(
        "v1.6",
        description="PaddleOCRVL pipeline_version: v1, v1.5 or v1.6 (v1.6 = PaddleOCR-VL-1.6 "
        "with PP-DocLayoutV3; the default of paddleocr 3.7)",
    )
    paddleocr_vl_model: str | None = Field(
        None,
        description="VL model name the server serves (its --served-model-name); default by "
        "pipeline version: PaddleOCR-VL-0.9B (v1), PaddleOCR-VL-1.5-0.9B (v1.5), "
        "PaddleOCR-VL-1.6-0.9B (v1.6)",
    )
    paddleocr_vl_api_key: SecretStr | None = Field(
        None, description="Bearer key of the VL server (vLLM --api-key); none = no key"
    )
    paddleocr_vl_layout: Literal["on", "off"] = Field(
        "on",
        description="on: the layout model splits a page into blocks (title, text, table, "
        "formula, figure...) read one by one; off: each whole page goes to the VL model as one "
        "text block (no layout weights needed)",
    )
    # A worker whose engine reads pages in batches (paddleocr-vl) holds several jobs at once and
    # sends their pages to the engine together (worker/batcher.py); CPU engines ignore these.
    batch_size: int = Field(
        0, ge=0, description="Pages per batch sent to a batching engine; 0 = the engine's maximum"
    )
    batch_fill_seconds: float = Field(
        0.05,
        ge=0,
        description="Longest wait for a batch to fill once its first page is in; a batch goes "
        "at once when no held job is still preparing a page",
    )
    batch_jobs: int = Field(
        32, ge=1, description="Jobs a worker with a batching engine holds (runs) at once"
    )
    batch_in_flight: int = Field(
        4,
        ge=1,
        description="Batches a worker sends to a VL server at once (one pipeline each; the next "
        "goes while one waits on the server); the native backend reads one at a time",
    )
    # Access: bearer keys from a file (a mounted secret), beside API_KEYS; read once at start.
    api_keys_file: Path | None = Field(
        None, description="File of bearer keys, one a line; blank lines and # comments ignored"
    )
    # Retention: job folders whose record has expired are removed by a sweep in each worker.
    retention_sweep_seconds: float = Field(
        600, ge=0, description="Seconds between retention sweeps of TEMP_DIR/OUTPUT_DIR; 0 = off"
    )
    retention_grace_seconds: float = Field(
        3600,
        ge=0,
        description="A folder without a job record is kept this long after its last change "
        "(an upload in progress has no record yet)",
    )
    # -- web page (/ui): api/ui/ --
    ui_low_score: float = Field(
        0.9,
        ge=0,
        le=1,
        description="The web page marks lines the engine scored below this as ones to check "
        "(RapidOCR scores clean print 0.97-1.0 and its misreads about 0.85-0.93)",
    )

    # Webhooks (issue 18): a job's callback_url (or its API key's default) gets a signed POST
    # per event (worker/webhooks/); deliveries are retried with backoff, kept in Redis.
    webhook_secret: SecretStr | None = Field(
        None,
        description="Derives the secret signing each API key's webhook deliveries "
        "(Ocrq-Signature) for keys without their own secret= (signs itself with auth off); with "
        "none, a callback_url is refused at submit",
    )
    callback_allowed_networks: str = Field(
        "",
        description="Comma list of CIDRs or host names (.suffix for a domain) a callback_url "
        "may reach though not public (loopback, private, link-local...); metadata never",
    )
    webhook_dispatcher: bool = Field(
        True, description="`python -m worker` also runs the webhook dispatcher and sender"
    )
    webhook_concurrency: int = Field(
        16, ge=1, le=64, description="Deliveries one process sends at once (all hosts)"
    )
    webhook_max_attempts: int = Field(
        15, ge=1, description="Attempts of one delivery before it gives up (~6 h at defaults)"
    )
    webhook_backoff_base_seconds: float = Field(
        10, gt=0, description="Delay after the first failed attempt; doubled each time"
    )
    webhook_backoff_max_seconds: float = Field(
        3600, gt=0, description="Longest delay between two attempts (also caps Retry-After)"
    )
    webhook_connect_timeout: float = Field(5, gt=0, description="Seconds to connect")
    webhook_read_timeout: float = Field(10, gt=0, description="Longest wait for the next bytes")
    webhook_total_timeout: float = Field(
        15, gt=0, description="Whole attempt (connect, send, answer); a slow receiver is cut"
    )
    webhook_max_response_bytes: int = Field(
        65536, ge=0, description="Bytes of a receiver's answer read; the rest is cut off"
    )
    callback_dns_timeout: float = Field(
        2, gt=0, description="Longest wait to resolve a callback host (submit and delivery)"
    )

    # Push (issue 18, branch stream): status streams, GET /jobs/{id}?wait=N and POST /ocr.
    sync_wait_seconds: float = Field(
        30,
        ge=0,
        le=300,
        description="POST /ocr waits this long for its job to end before answering 202 with "
        "the job (as POST /jobs does); at most 300",
    )
    stream_keepalive_seconds: float = Field(
        15,
        gt=0,
        le=300,
        description="A status stream (GET /jobs/{id}/events) sends a `: keepalive` comment "
        "after this many idle seconds",
    )

    # -- queues by engine and priority; Redis beyond one node (issue 14, branch queues) --
    default_engine: str = Field(
        "",
        description="Engine kind a job without `engine` goes to (rapidocr, tesseract, "
        "paddleocr-vl); empty: the one kind live workers serve, else OCR_ENGINE",
    )
    redis_sentinel_master: str = Field(
        "",
        description="Sentinel master group name; required when REDIS_URL is sentinel://",
    )
    redis_sentinel_password: SecretStr | None = Field(
        None, description="Password of the Sentinel nodes themselves (not of the master)"
    )
    redis_tls_ca_file: Path | None = Field(
        None, description="CA bundle for a rediss:// REDIS_URL; none = the system's CAs"
    )
    # worker (webhook sender): a receiver that hangs holds only its own host's slots
    webhook_concurrency_per_host: int = Field(
        2,
        ge=1,
        le=64,
        description="Deliveries one process sends at once to one callback host:port for one "
        "API key (of WEBHOOK_CONCURRENCY)",
    )
    # worker (webhook sender): a key whose receivers hang holds only its own share
    webhook_concurrency_per_key: int = Field(
        4,
        ge=1,
        le=64,
        description="Deliveries one process sends at once for one API key's jobs, all its "
        "hosts together (of WEBHOOK_CONCURRENCY; without API keys, no bound)",
    )

    @field_validator("default_engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        kinds = [e.value for e in Engine]  # (`in Engine` raises on Python 3.11)
        if value and value not in kinds:
            raise ValueError(f"must be empty or one of: {', '.join(kinds)}")
        return value

    @model_validator(mode="after")
    def _sentinel_needs_master(self) -> Settings:
        if self.redis_url.startswith("sentinel://") and not self.redis_sentinel_master:
            raise ValueError("REDIS_URL is sentinel://: set REDIS_SENTINEL_MASTER too")
        return self

    # Worker lifetime (worker/recycling.py): a worker process is recycled between jobs (it
    # finishes the jobs it holds, exits with EXIT_RECYCLE, the supervisor restarts it at once),
    # so memory an OCR library keeps growing is given back; 0 = never.
    worker_max_jobs: int = Field(
        0, ge=0, description="Jobs a worker process ends before it is recycled; 0 = never"
    )
    worker_max_rss_mb: float = Field(
        0,
        ge=0,
        description="Resident memory (MB) of a worker process above which it is recycled after "
        "its job; 0 = never",
    )

    # -- Storage (STORAGE_URL): local folders or an S3-compatible bucket (shared/storage/) --
    storage_url: str = Field(
        "",
        description="Where job files live: empty = TEMP_DIR and OUTPUT_DIR (one shared volume); "
        "s3://bucket/prefix = an S3-compatible bucket (the folders then hold only what one "
        "process works on while a request or a job lasts)",
    )
    aws_endpoint_url: str = Field(
        "", description="S3 endpoint (MinIO, Ceph, R2, ...); empty = AWS's own for AWS_REGION"
    )
    aws_region: str = Field("", description="The bucket's region; empty = boto3's default chain")
    aws_access_key_id: str = Field("", description="empty = boto3's default credential chain")
    aws_secret_access_key: SecretStr = Field(
        SecretStr(""), description="With AWS_ACCESS_KEY_ID; empty = boto3's default chain"
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="path for servers without bucket host names (MinIO by IP or name)"
    )
    s3_part_mb: int = Field(
        8, ge=5, le=512, description="Part size of multipart uploads (memory per upload in flight)"
    )

    # both: how long one bucket request may wait (shared/storage/s3.py)
    s3_timeout_seconds: float = Field(
        5,
        gt=0,
        le=300,
        description="Connect and read timeout of one bucket request (tried 3 times): a stalled "
        "bucket fails a call within about 3 times this, answered 503 storage_unavailable",
    )

    @field_validator("storage_url")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        if value and not STORAGE_URL.fullmatch(value):
            raise ValueError(
                "must be empty (local folders) or s3://bucket or s3://bucket/prefix "
                "(bucket: 3-63 of a-z 0-9 . -)"
            )
        return value.rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("tesseract_psm")
    @classmethod
    def _psm_reads_text(cls, value: int) -> int:
        if value == 2:
            raise ValueError("2 finds the layout but reads no text; use 3 (default) or 4-13")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
            raise ValueError("must start with redis://, rediss://, unix:// or sentinel://")
        if value.startswith("sentinel://"):
            # imported here: the job package imports this module
            from shared.jobs.redis_url import parse_sentinel_url

            parse_sentinel_url(value)  # raises ValueError naming what is wrong
        return value

    @field_validator("api_keys_file")
    @classmethod
    def _key_file_readable(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_key_file(value)  # fail at start, not on the first request
        return value

    @field_validator("callback_allowed_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        CallbackPolicy.parse(value)  # a bad entry fails at start
        return value

    @cached_property
    def callback_policy(self) -> CallbackPolicy:
        return CallbackPolicy.parse(self.callback_allowed_networks, self.callback_dns_timeout)

    @cached_property
    def key_ring(self) -> KeyRing:
        """Each key's default callback and secret (API_KEYS_FILE options), by owner."""
        entries = {k: KeyEntry(k) for k in self.api_key_set}
        if self.api_keys_file is not None:
            entries |= read_key_entries(self.api_keys_file)
        return KeyRing(entries)

    @cached_property
    def api_key_set(self) -> frozenset[str]:
        keys = frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())
        if self.api_keys_file is not None:
            keys |= read_key_file(self.api_keys_file)
        return keys

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def read_key_file(path: Path) -> frozenset[str]:
    """Keys one a line (each may carry callback=/secret=, shared/api_keys.py); blank lines and
    `#` comments skipped. The error never quotes a line."""
    return frozenset(read_key_entries(path))


def load_settings() -> Settings:
    """Build Settings from the environment or exit with a message naming each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  {'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            f" (got {err.get('input')!r})"
            for err in exc.errors()
        ]
        sys.stderr.write("invalid configuration:\n" + "\n".join(lines) + "\n")
        raise SystemExit(2) from None
