"""One Settings object, read from environment variables once at start and passed around.

The settings are grouped by room, one class each (`RedisSettings`, `WebhookSettings`, ...),
naming the process that reads them (`READ_BY`: api, worker or both; a field read by another
says so itself with `read_by(...)`). `Settings` is all the rooms in one object, so callers read
`settings.redis_url` flat. Settings whose values must agree are checked together at the end
(`COUPLINGS`). docs/configuration.md is generated from these classes: `make config-docs`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.api_keys import WHSEC_PREFIX, KeyEntry, KeyRing, parse_whsec, read_key_entries
from shared.callback_urls import CallbackPolicy
from shared.options import Engine
from shared.source_urls import SourcePolicy, parse_s3_areas

# s3://bucket[/prefix]: an S3 bucket name, then key segments without empty ones
STORAGE_URL = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^/\s]+)*/?")

# api: `python -m api`; worker: `python -m worker` (and worker.process, worker.webhooks,
# worker.probe); both: each of them reads it, so give both the same value.
Process = Literal["api", "worker", "both"]


def read_by(process: Process) -> dict[str, Any]:
    """`json_schema_extra` of a field that another process reads than the rest of its room."""
    return {"read_by": process}


class Room(BaseSettings):
    """A group of settings of one room. Env var names are the field names in upper case."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    ROOM: ClassVar[str] = ""
    READ_BY: ClassVar[Process] = "both"


# -- both processes --------------------------------------------------------------------------


class RedisSettings(Room):
    """The broker and the job store (shared/jobs/): every process talks to the same Redis."""

    ROOM: ClassVar[str] = "Redis"
    READ_BY: ClassVar[Process] = "both"

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Broker and job store: `redis://`, `rediss://` (TLS, verified), `unix://`, "
        "or `sentinel://h1:26379;sentinel://h2:26379/0` (Sentinel, with "
        "REDIS_SENTINEL_MASTER); see docs/redis.md",
    )
    redis_sentinel_master: str = Field(
        "",
        description="Sentinel master group name; required when REDIS_URL is sentinel://",
    )
    redis_sentinel_password: SecretStr | None = Field(
        None,
        description="Password of the Sentinel nodes themselves (the master's goes in the URL)",
    )
    redis_tls_ca_file: Path | None = Field(
        None,
        description="CA bundle to verify a `rediss://` REDIS_URL with; none = the system's CAs",
    )

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

    @model_validator(mode="after")
    def _sentinel_needs_master(self) -> RedisSettings:
        if self.redis_url.startswith("sentinel://") and not self.redis_sentinel_master:
            raise ValueError("REDIS_URL is sentinel://: set REDIS_SENTINEL_MASTER too")
        return self


class StorageSettings(Room):
    """Where job files live (shared/storage/): local folders on one shared volume, or an
    S3-compatible bucket. The API writes uploads and reads results, the worker the reverse."""

    ROOM: ClassVar[str] = "Storage"
    READ_BY: ClassVar[Process] = "both"

    output_dir: Path = Field(Path("/app/output"), description="Results: `OUTPUT_DIR/<job_id>/`")
    temp_dir: Path = Field(
        Path("/app/temp"),
        description="Uploads: `TEMP_DIR/<job_id>/input` (removed when the job ends)",
    )
    storage_url: str = Field(
        "",
        description="Where job files live: empty = TEMP_DIR and OUTPUT_DIR (one shared volume); "
        "`s3://bucket` or `s3://bucket/prefix` = an S3-compatible bucket (the folders then hold "
        "only what one process works on while a request or a job lasts)",
    )
    aws_endpoint_url: str = Field(
        "",
        description="S3 endpoint of a non-AWS server (MinIO, Ceph, R2: `http://minio:9000`); "
        "empty = AWS's own for AWS_REGION",
    )
    aws_region: str = Field(
        "",
        description="The bucket's region; empty = boto3's default chain "
        "(`AWS_DEFAULT_REGION`, `~/.aws/config`)",
    )
    aws_access_key_id: str = Field(
        "",
        description="Credentials; empty = boto3's default chain (instance profile, IRSA / "
        "workload identity, `~/.aws/credentials`)",
    )
    aws_secret_access_key: SecretStr = Field(
        SecretStr(""), description="With AWS_ACCESS_KEY_ID; empty = boto3's default chain"
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto",
        description="`path` for servers without per-bucket host names (MinIO by service name "
        "or IP), `virtual` to force bucket host names",
    )
    s3_part_mb: int = Field(
        8,
        ge=5,
        le=512,
        description="Part size of multipart uploads: an upload in flight holds at most one part "
        "in memory; larger files go in parts of this size",
    )
    s3_timeout_seconds: float = Field(
        5,
        gt=0,
        le=300,
        description="Connect and read timeout of one bucket request (tried 3 times): a stalled "
        "bucket fails a call within about 3 times this, answered 503 `storage_unavailable`",
    )

    s3_public_endpoint_url: str = Field(
        "",
        description="The S3 endpoint that pre-signed result URLs (`?delivery=url`, "
        "docs/results.md) name, when clients reach the bucket by another address than the "
        "service does (`https://s3.example.com` outside, `http://minio:9000` inside); empty = "
        "AWS_ENDPOINT_URL. The URL is signed for this host",
        json_schema_extra=read_by("api"),
    )
    result_url_expiry_seconds: int = Field(
        300,
        ge=1,
        le=604800,
        description="How long a pre-signed result URL (`?delivery=url`) stays valid: the "
        "download must start within it (S3 allows at most 7 days)",
        json_schema_extra=read_by("api"),
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


class AccessSettings(Room):
    """Bearer keys: the API checks them; the worker's webhook sender reads each key's own
    callback and secret (API_KEYS_FILE options)."""

    ROOM: ClassVar[str] = "Access"
    READ_BY: ClassVar[Process] = "both"

    api_keys: str = Field(
        "", description="Comma-separated bearer keys for `/jobs`; empty (and no file) = no auth"
    )
    api_keys_file: Path | None = Field(
        None,
        description="File of bearer keys (a mounted secret), one a line, added to API_KEYS; "
        "blank lines and `#` comments ignored; read once at start. A key may carry `name=`, "
        "the quotas `pages_per_day=`, `max_queued=`, `max_pages_per_job=`, and `callback=`, "
        "`secret=` (webhooks)",
    )

    @field_validator("api_keys_file")
    @classmethod
    def _key_file_readable(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_key_file(value)  # fail at start, not on the first request
        return value

    @cached_property
    def key_ring(self) -> KeyRing:
        """Each key's name, quotas, default callback and secret (API_KEYS_FILE), by owner."""
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


class LoggingSettings(Room):
    """Log lines and traces of every process."""

    ROOM: ClassVar[str] = "Logging and traces"
    READ_BY: ClassVar[Process] = "both"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="`DEBUG`, `INFO`, `WARNING` or `ERROR` (any case)"
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`json`: one JSON object per line (`ts`, `level`, `logger`, `message`, "
        "`job_id`, `trace_id`); every line logged while a job is handled carries its `job_id` "
        "(and its trace id when traces are on), in both",
    )
    # OpenTelemetry's own variables (docs/tracing.md): one of the two endpoints turns traces on;
    # every other OTEL_* variable (headers, sampler, resource...) the SDK reads itself.
    otel_exporter_otlp_endpoint: str = Field(
        "",
        description="Send traces over OTLP to this collector (e.g. `http://collector:4318`; "
        "`/v1/traces` is added for http/protobuf); empty (with the next one): no traces, and "
        "no tracing code loaded (docs/tracing.md)",
    )
    otel_exporter_otlp_traces_endpoint: str = Field(
        "",
        description="The traces' own OTLP endpoint, taken as it is (http/protobuf: the full URL "
        "with `/v1/traces`); overrides OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    otel_exporter_otlp_protocol: Literal["", "http/protobuf", "grpc"] = Field(
        "",
        description="`http/protobuf` (empty: the default) or `grpc`",
    )
    otel_exporter_otlp_traces_protocol: Literal["", "http/protobuf", "grpc"] = Field(
        "",
        description="The traces' own protocol; overrides OTEL_EXPORTER_OTLP_PROTOCOL",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class JobLifeSettings(Room):
    """A job's record and its recovery (shared/jobs/): the worker holds a running job under a
    lease; every worker and the API sweep for lapsed leases."""

    ROOM: ClassVar[str] = "Job records and recovery"
    READ_BY: ClassVar[Process] = "both"

    job_ttl_seconds: int = Field(
        7 * 24 * 3600,
        gt=0,
        description="How long (default 7 days) a job's record is kept after the job ended "
        "(succeeded, failed or canceled); a queued or running job's record does not expire. An "
        "Idempotency-Key lives as long as its job's record: no expiry while the job is queued or "
        "running, then this long",
    )
    job_lease_seconds: int = Field(
        30,
        ge=3,
        description="A running job's lease, renewed every third of it; a dead worker's job is "
        "back in the queue this long after it died",
        json_schema_extra=read_by("worker"),
    )
    job_max_attempts: int = Field(
        3, ge=1, description="Runs a job may lose to dying workers before it fails `worker_lost`"
    )
    orphan_sweep_seconds: float = Field(
        5, gt=0, description="How often every worker and the API look for jobs whose lease lapsed"
    )
    usage_retention_days: int = Field(
        400,
        ge=1,
        description="How long each API key's usage of a day (jobs and pages submitted, pages "
        "done and failed, engine seconds; GET /usage) is kept in Redis after its last count",
    )
    fair_share: bool = Field(
        True,
        description="Within one engine and priority, serve API keys in turn (`on`): each key's "
        "jobs and page ranges wait in its own list and go into the queue a few at a time "
        "(docs/queues.md); `off`: in arrival order. Give the API and every worker the same value",
    )
    fair_share_in_flight_per_tenant: int = Field(
        2,
        ge=1,
        description="With FAIR_SHARE on: messages of one API key in one queue that no worker has "
        "taken yet; the next is released as a worker takes one",
    )


# -- the API -----------------------------------------------------------------------------------


class ApiServerSettings(Room):
    """Where `python -m api` listens and what a connection may do before the app sees it
    (api/listen.py, api/connection_guard.py)."""

    ROOM: ClassVar[str] = "API: listening and connections"
    READ_BY: ClassVar[Process] = "api"

    port: int = Field(8081, ge=1, le=65535, description="Port `python -m api` listens on")
    host: str = Field("0.0.0.0", description="Address `python -m api` listens on")
    # A window of about twice this per round trip caps one upload's speed.
    api_socket_rcvbuf: int = Field(
        65536,
        ge=0,
        description="Receive buffer (bytes) of the API's connections; small keeps about 0.1 MB "
        "per upload in flight instead of 0.5 MB, but caps one upload at about 2 x this per "
        "round trip (2.6 MB/s at 50 ms): raise it (or 0, the kernel's autotuning) for clients "
        "far away that reach the API without a proxy",
    )
    max_header_bytes: int = Field(
        16384,
        ge=1024,
        description="Request line + headers of one request (431 `headers_too_large`)",
    )
    header_timeout_seconds: float = Field(
        10,
        gt=0,
        description="Time a connection has to send a request's line and headers, from its "
        "opening or the previous answer (408 `request_timeout`)",
    )
    body_timeout_seconds: float = Field(
        30,
        gt=0,
        description="Longest wait for the next piece of an upload's body (408 `request_timeout`)",
    )


class SubmitSettings(Room):
    """What `POST /jobs` accepts and when it pushes back (api/submitting.py, api/uploads.py)."""

    ROOM: ClassVar[str] = "API: submissions"
    READ_BY: ClassVar[Process] = "api"

    max_upload_mb: float = Field(
        50,
        gt=0,
        description="Upload size limit (413); also the largest source_url a worker fetches "
        "(`source_too_large`)",
        json_schema_extra=read_by("both"),
    )
    # With 64 KB for boundaries and part headers they bound the body beside the file.
    max_form_fields: int = Field(
        16, ge=0, description="Form fields allowed besides the file (413 `form_too_large`)"
    )
    max_field_bytes: int = Field(
        4096,
        ge=1,
        description="Bytes of one form field (413 `form_too_large`); with MAX_FORM_FIELDS it "
        "bounds the body beside the file at fields x bytes + 64 KB",
    )
    max_pages: int = Field(
        500,
        ge=1,
        description="Documents with more pages are refused at upload (422); a source_url's, "
        "once its worker fetched it (the job fails `too_many_pages`)",
        json_schema_extra=read_by("both"),
    )
    max_queued_jobs: int = Field(
        10000,
        ge=1,
        description="Jobs allowed to wait at a priority or above (a `high` job counts the "
        "`high` queues, `normal` high+normal, `batch` all); beyond, `POST /jobs` answers 429 "
        "`queue_full`",
    )
    default_engine: str = Field(
        "",
        description="Engine kind a job without `engine` goes to (rapidocr, tesseract, "
        "paddleocr-vl); empty: the one kind live workers serve, else OCR_ENGINE",
    )

    @field_validator("default_engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        kinds = [e.value for e in Engine]  # (`in Engine` raises on Python 3.11)
        if value and value not in kinds:
            raise ValueError(f"must be empty or one of: {', '.join(kinds)}")
        return value

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class FollowSettings(Room):
    """Following a job: `POST /ocr`, status streams, the web page at /ui."""

    ROOM: ClassVar[str] = "API: waiting, streams and the web page"
    READ_BY: ClassVar[Process] = "api"

    sync_wait_seconds: float = Field(
        30,
        ge=0,
        le=300,
        description="`POST /ocr` waits this long for its job to end, then answers 202 with the "
        "job (as `POST /jobs` does)",
    )
    stream_keepalive_seconds: float = Field(
        15,
        gt=0,
        le=300,
        description="A status stream (`GET /jobs/{id}/events`) sends a `: keepalive` comment "
        "after this many idle seconds",
    )
    ui_low_score: float = Field(
        0.9,
        ge=0,
        le=1,
        description="The web page marks lines the engine scored below this as ones to check "
        "(RapidOCR scores clean print 0.97-1.0 and its misreads about 0.85-0.93)",
    )


class LivenessSettings(Room):
    """What `GET /health` watches besides the API: the heartbeat of the worker sharing its
    container (deploy/all-in-one.sh names it), api/worker_watch.py. Off unless named."""

    ROOM: ClassVar[str] = "API: liveness of a one-container deployment"
    READ_BY: ClassVar[Process] = "api"

    liveness_worker: str = Field(
        "",
        description="Worker id (its `--name`) whose heartbeat `GET /health` watches: 503 "
        "`worker_unresponsive` once it has been missing past LIVENESS_STALE_SECONDS, never "
        "while the worker loads its engine (it beats from its start). Empty: `/health` "
        "watches nothing. deploy/all-in-one.sh sets it to its worker's name",
    )
    liveness_stale_seconds: float = Field(
        60,
        gt=0,
        description="How long the watched worker's heartbeat may be missing (its key expires "
        "WORKER_HEARTBEAT_TTL after its last beat) before `/health` answers 503: covers a "
        "worker process restarted by its supervisor (backoff up to 30 s)",
    )
    liveness_start_grace_seconds: float = Field(
        300,
        gt=0,
        description="Time from the API's start for the watched worker's first heartbeat; "
        "deploy/all-in-one.sh makes it VL_SERVER_START_TIMEOUT + 300 (unless set) when it "
        "starts a VL server before the worker",
    )


# -- the worker ----------------------------------------------------------------------------------


class WorkerJobSettings(Room):
    """Which engines a worker warms, how it renders pages, how long a job may run."""

    ROOM: ClassVar[str] = "Worker: engines and time limits"
    READ_BY: ClassVar[Process] = "worker"

    ocr_engine: str = Field(
        "rapidocr",
        description="Engine the worker warms at boot: `rapidocr` (CPU, Latin), `tesseract` (CPU, "
        "Cyrillic + Latin), "
        "`paddleocr-vl` (GPU); the API sends jobs without `engine` to it when DEFAULT_ENGINE is "
        "empty and no live worker says otherwise",
        json_schema_extra=read_by("both"),
    )
    ocr_fallback_engines: str = Field(
        "tesseract",
        description="Engines also warmed at boot, used for scripts OCR_ENGINE cannot read "
        "(comma list)",
    )
    reading_order: Literal["geometry", "engine"] = Field(
        "geometry",
        description="How the CPU engines (rapidocr, tesseract) order a page's lines: "
        "`geometry` (rows by overlap, columns and blocks, vertical lines read turned; the "
        "result's block/paragraph/line ids, see docs/results.md) or `engine` (the engine's own "
        "order, as before them); paddleocr-vl keeps its own layout either way",
    )
    pdf_dpi: int = Field(
        200,
        ge=72,
        le=600,
        description="Default PDF render resolution (a job's `dpi` field overrides it)",
    )
    job_timeout_seconds: int = Field(
        3600,
        ge=1,
        description="A job running longer fails with `timeout` (time its pages wait on a VL "
        "server that does not answer is not counted)",
    )
    page_timeout_seconds: int = Field(
        600,
        ge=1,
        description="A page taking longer fails its job with `timeout` (a one-job worker "
        "restarts its process; a batching worker fails only that job)",
    )
    page_range_size: int = Field(
        0,
        ge=0,
        description="Pages per page range: a job of more selected pages is cut into ranges of "
        "this many, each a task any worker of its engine takes (its own lease: a killed worker "
        "costs only its range); 0 = the engine kind's default (8 for CPU engines, 32 for "
        "paddleocr-vl, whose batcher batches pages of many ranges together)",
    )
    # Celery's late acks redeliver an unacknowledged task after it (shared/queue.py).
    broker_visibility_timeout: int = Field(
        7200,
        ge=60,
        description="Seconds before Redis redelivers a job a worker took and has not "
        "acknowledged: must exceed JOB_TIMEOUT_SECONDS (checked at start), or a job still "
        "running goes to a second worker; 7200 since JOB_TIMEOUT_SECONDS defaults to 3600",
    )
    worker_heartbeat_ttl: int = Field(
        30,
        ge=3,
        description="Seconds a worker heartbeat lives in Redis (`/ready`, the probe); refreshed "
        "every third of it",
    )


class BatchSettings(Room):
    """A worker whose engine reads pages in batches (paddleocr-vl) holds several jobs at once
    and sends their pages to the engine together (worker/batcher.py); CPU engines ignore these."""

    ROOM: ClassVar[str] = "Worker: page batches"
    READ_BY: ClassVar[Process] = "worker"

    batch_size: int = Field(
        0,
        ge=0,
        description="Pages per batch sent to a batching engine, from one job or many; 0 = the "
        "engine's maximum for its backend (paddleocr-vl: 64 on a server backend, 4 on `native`, "
        "which reads one block at a time); a larger value is lowered to that maximum. An engine "
        "call on N pages may run PAGE_TIMEOUT_SECONDS once per page the engine reads one after "
        "another (native: N) before the worker restarts",
    )
    batch_fill_seconds: float = Field(
        0.05,
        ge=0,
        description="Longest wait for a batch to fill once its first page is in; a batch goes "
        "at once when no held job is still preparing a page",
    )
    batch_jobs: int = Field(
        32,
        ge=1,
        description="Jobs (or page ranges of long jobs, several of one job too) a worker with a "
        "batching engine holds at once (one thread each); CPU engines take one at a time",
    )
    batch_in_flight: int = Field(
        4,
        ge=1,
        description="Batches a worker on a VL server backend sends at once, each on a "
        "PaddleOCRVL pipeline of its own built at boot: the next batch goes while one waits on "
        "the server (never more than PADDLEOCR_VL_MAX_CONCURRENCY); the `native` backend reads "
        "one at a time",
    )


class RecyclingSettings(Room):
    """A worker process is recycled between jobs (worker/recycling.py): it finishes the jobs
    it holds, exits with EXIT_RECYCLE and the supervisor restarts it at once, so memory an OCR
    library keeps growing is given back."""

    ROOM: ClassVar[str] = "Worker: recycling"
    READ_BY: ClassVar[Process] = "worker"

    worker_max_jobs: int = Field(
        0, ge=0, description="Jobs a worker process ends before it is recycled; 0 = never"
    )
    worker_max_rss_mb: float = Field(
        0,
        ge=0,
        description="Resident memory (MB) of a worker process above which it is recycled after "
        "its job; 0 = never",
    )


class RetentionSettings(Room):
    """Job folders whose record has expired are removed by a sweep in each worker."""

    ROOM: ClassVar[str] = "Worker: retention"
    READ_BY: ClassVar[Process] = "worker"

    retention_sweep_seconds: float = Field(
        600,
        ge=0,
        description="Seconds between retention sweeps of TEMP_DIR/OUTPUT_DIR (and one at boot); "
        "0 = off",
    )
    retention_grace_seconds: float = Field(
        3600,
        ge=0,
        description="A folder without a job record is kept until nothing in it changed for "
        "this long (an upload in progress has no record yet)",
    )


# -- the engines (worker/engines/) ---------------------------------------------------------------


class PagePrepSettings(Room):
    """How the CPU engines (rapidocr, tesseract) prepare a page image before reading it
    (worker/image_prep.py; measured in BENCHMARKS.md, section `eval`)."""

    ROOM: ClassVar[str] = "Engines: page preparation (CPU)"
    READ_BY: ClassVar[Process] = "worker"

    ocr_min_text_height_px: int = Field(
        12,
        ge=0,
        le=64,
        description="Pages whose text lines measure lower than this (median height of ink rows, "
        "about the x-height) are enlarged to it, at most 3x, before recognition; 0 = never",
    )
    photo_normalise: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Take tint and uneven light out of the page (background divided out, best "
        "channel, contrast stretched): `auto` on pages that look like photos, `on` every page, "
        "`off` never",
    )
    ocr_word_fixes: Literal["on", "off"] = Field(
        "on",
        description="Fix digits read for letters by the script around them: `000` before a "
        "quoted name in Cyrillic text (the company form OOO), 0/O and 1/I/l between letters",
    )
    tesseract_photo_min_text_height_px: int = Field(
        16,
        ge=0,
        le=64,
        description="For Tesseract, pages flattened as photos (PHOTO_NORMALISE) are enlarged to "
        "this text height when it is above OCR_MIN_TEXT_HEIGHT_PX (a soft photo's letters need "
        "more pixels; rapidocr reads them no better so); 0 = as other pages",
    )
    ocr_despeckle: Literal["auto", "off"] = Field(
        "auto",
        description="Remove specks (black dots standing alone) from black-and-white pages "
        "(faxes, binarized scans) before recognition: `auto` on pages with no grey pixels, "
        "`off` never",
    )
    ocr_bilevel_blur_px: float = Field(
        1.0,
        ge=0,
        le=4,
        description="Blur black-and-white pages (faxes, binarized scans; after OCR_DESPECKLE) "
        "by a Gaussian of this radius in px at 200 dpi (scaled with the page's dpi when it has "
        "one) before recognition, so the recognizers read grey strokes with their drop-outs and "
        "jagged edges healed; 0 = off",
    )


class RapidOcrSettings(Room):
    """The rapidocr engine (CPU, ONNX models inside its wheel)."""

    ROOM: ClassVar[str] = "Engine: rapidocr"
    READ_BY: ClassVar[Process] = "worker"

    rapidocr_threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = auto")
    rapidocr_rec_model: Path | None = Field(
        None,
        description="Recognition ONNX model instead of the wheel's PP-OCRv6 (e.g. eslav)",
    )
    rapidocr_rec_keys: Path | None = Field(
        None, description="Dictionary file of RAPIDOCR_REC_MODEL"
    )
    rapidocr_rec_scripts: str = Field(
        "latin",
        description="Scripts the recognition model reads: `latin`, `cyrillic` (comma list)",
    )


class TesseractSettings(Room):
    """The tesseract engine (Debian's rus/eng traineddata read by the libtesseract inside
    tesserocr)."""

    ROOM: ClassVar[str] = "Engine: tesseract"
    READ_BY: ClassVar[Process] = "worker"

    tesseract_lang: str = Field(
        "rus+eng", description="Tesseract languages (traineddata names joined with `+`)"
    )
    tesseract_psm: int = Field(
        3,
        ge=1,
        le=13,
        description="Page segmentation mode (3: automatic, columns found; 4: one column; "
        "6: one block; not 2: it finds the layout but reads no text)",
    )
    tesseract_data_dir: Path | None = Field(
        None,
        description="Folder of `*.traineddata`; none = the first of "
        "`/usr/share/tesseract-ocr/5/tessdata` (Debian), `/usr/share/tesseract-ocr/4.00/tessdata`,"
        " `/usr/share/tessdata`, `/usr/local/share/tessdata` that has any",
    )

    @field_validator("tesseract_psm")
    @classmethod
    def _psm_reads_text(cls, value: int) -> int:
        if value == 2:
            raise ValueError("2 finds the layout but reads no text; use 3 (default) or 4-13")
        return value


class PaddleOcrVlSettings(Room):
    """The paddleocr-vl engine (GPU): the VL model on this GPU or behind an OpenAI-style server;
    the layout model runs inside the worker. The engine checks at warm-up that these agree."""

    ROOM: ClassVar[str] = "Engine: paddleocr-vl"
    READ_BY: ClassVar[Process] = "worker"

    paddleocr_vl_backend: str = Field(
        "native",
        description="VL model backend (PaddleOCRVL vl_rec_backend): `native` (local CUDA GPU), "
        "`vllm-server`, `sglang-server`, `fastdeploy-server`, `mlx-vlm-server`, "
        "`llama-cpp-server`",
    )
    paddleocr_vl_server_url: str | None = Field(
        None,
        description="OpenAI-style base URL of the VL server, e.g. `http://127.0.0.1:8118/v1`; "
        "required by every backend but native",
    )
    paddleocr_vl_device: str = Field(
        "gpu:0",
        description="Paddle device of the layout model (and of the VL model when native): "
        "`gpu` or `gpu:N`; `cpu` only with a server backend",
    )
    paddleocr_vl_pipeline_version: str = Field(
        "v1.6",
        description="PaddleOCRVL pipeline_version: `v1`, `v1.5` or `v1.6` (PaddleOCR-VL-1.6 "
        "with PP-DocLayoutV3), set explicitly because the library default moves between releases",
    )
    paddleocr_vl_model: str | None = Field(
        None,
        description="VL model name the server serves (its `--served-model-name`); default by "
        "pipeline version: PaddleOCR-VL-0.9B (v1), PaddleOCR-VL-1.5-0.9B (v1.5), "
        "PaddleOCR-VL-1.6-0.9B (v1.6)",
    )
    paddleocr_vl_api_key: SecretStr | None = Field(
        None,
        description="Bearer key of the VL server (vLLM `--api-key`); none = no key; never logged",
    )
    paddleocr_vl_max_concurrency: int = Field(
        200,
        ge=1,
        description="Requests this worker has in flight to the VL server at most, over all its "
        "pipelines (BATCH_IN_FLIGHT): each pipeline gets its share as PaddleOCRVL "
        "vl_rec_max_concurrency. 200 is paddlex's own per-client default, which PaddleOCR tunes "
        "for one client on one A100; lower it when several workers share one server. Not used "
        "by `native`",
    )
    paddleocr_vl_layout: Literal["on", "off"] = Field(
        "on",
        description="`on`: the layout model splits a page into blocks (title, text, table, "
        "formula, figure...) read one by one; `off`: each whole page goes to the VL model as one "
        "text block (no layout weights needed)",
    )
    paddleocr_vl_max_new_tokens: int = Field(
        4096,
        ge=16,
        description="Tokens the VL model may generate per request (a page with layout off, a "
        "block with it on), sent as the request's token cap: a model stuck repeating a phrase "
        "stops there. 4096 is PaddleOCR-VL's own pipeline default (paddlex pipeline "
        "`max_new_tokens`)",
    )
    paddleocr_vl_loop_retry_repetition_penalty: float = Field(
        1.1,
        ge=1.0,
        le=2.0,
        description="A page whose output repeats itself (a word or phrase 10+ times in a row, "
        "docs/gpu.md) is read once more with this `repetition_penalty` (1.0 = none); if it "
        "still loops it fails alone with `vl_output_repetitive`. Server backends only: "
        "`native` ignores sampling settings, so there the page fails at once",
    )
    paddleocr_vl_loop_retry_temperature: float = Field(
        0.3,
        ge=0.0,
        le=2.0,
        description="The sampling temperature of that second read (the first is greedy, 0)",
    )


# -- webhooks --------------------------------------------------------------------------------------


class WebhookSettings(Room):
    """A job's callback_url (or its API key's default) gets a signed POST per event, sent by the
    worker's dispatcher (worker/webhooks/), retried with backoff. The API checks a callback_url
    at submit with the same policy."""

    ROOM: ClassVar[str] = "Webhooks"
    READ_BY: ClassVar[Process] = "worker"

    webhook_secret: SecretStr | None = Field(
        None,
        description="Derives the Standard Webhooks secret of each API key without its own "
        "`secret=` (signs itself with auth off); `whsec_<base64>` is decoded, any other value "
        "used as its UTF-8 bytes; with none, a callback_url is refused at submit",
        json_schema_extra=read_by("both"),
    )
    callback_allowed_networks: str = Field(
        "",
        description="Comma list of CIDRs or host names (`.suffix` for a domain) a callback_url "
        "may reach though not public (loopback, private, link-local...); metadata never",
        json_schema_extra=read_by("both"),
    )
    callback_dns_timeout: float = Field(
        2,
        gt=0,
        description="Longest wait to resolve a callback host, at submit and before each attempt",
        json_schema_extra=read_by("both"),
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
    webhook_concurrency_per_host: int = Field(
        2,
        ge=1,
        le=64,
        description="Deliveries one process sends at once to one callback host:port for one "
        "API key (of WEBHOOK_CONCURRENCY): a receiver that hangs holds only its own slots",
    )
    webhook_concurrency_per_key: int = Field(
        4,
        ge=1,
        le=64,
        description="Deliveries one process sends at once for one API key's jobs, all its "
        "hosts together (of WEBHOOK_CONCURRENCY; without API keys, no bound)",
    )

    @field_validator("webhook_secret")
    @classmethod
    def _whsec_decodes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().startswith(WHSEC_PREFIX):
            parse_whsec(value.get_secret_value())  # never signs with bytes it was not meant to
        return value

    @field_validator("callback_allowed_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        CallbackPolicy.parse(value)  # a bad entry fails at start
        return value

    @cached_property
    def callback_policy(self) -> CallbackPolicy:
        return CallbackPolicy.parse(self.callback_allowed_networks, self.callback_dns_timeout)


# -- input by reference ---------------------------------------------------------------------------


class SourceSettings(Room):
    """A job's `source_url` instead of an upload (docs/sources.md): checked by the API at submit,
    fetched by the worker that runs the job (worker/sources.py) with the same policy."""

    ROOM: ClassVar[str] = "Input by reference (source_url)"
    READ_BY: ClassVar[Process] = "both"

    source_allowed_networks: str = Field(
        "",
        description="Comma list of CIDRs or host names (`.suffix` for a domain) a source_url may "
        "reach though not public (loopback, private, link-local...); plain `http://` reaches "
        "only these; metadata addresses never",
    )
    source_s3_buckets: str = Field(
        "",
        description="Comma list of buckets (`bucket`, or `bucket/prefix/` for the keys under "
        "it) an `s3://bucket/key` source_url may name, read with the service's own credentials "
        "(AWS_*); empty: s3:// sources are refused. Never STORAGE_URL's own area",
    )
    source_timeout_seconds: float = Field(
        120,
        gt=0,
        description="Longest a worker spends fetching one source (every redirect, connect and "
        "byte); past it the job fails `source_unreachable`",
        json_schema_extra=read_by("worker"),
    )
    source_max_redirects: int = Field(
        5,
        ge=0,
        le=20,
        description="Redirects a worker follows for one source, each target checked again; "
        "one more fails the job `source_unreachable`",
        json_schema_extra=read_by("worker"),
    )

    @field_validator("source_allowed_networks")
    @classmethod
    def _source_networks_parse(cls, value: str) -> str:
        CallbackPolicy.parse(value)  # a bad entry fails at start
        return value

    @field_validator("source_s3_buckets")
    @classmethod
    def _source_buckets_parse(cls, value: str) -> str:
        parse_s3_areas(value)
        return value

    @cached_property
    def source_policy(self) -> SourcePolicy:
        # host lookups as patient as a callback's (CALLBACK_DNS_TIMEOUT)
        timeout = getattr(self, "callback_dns_timeout", 2.0)
        return SourcePolicy.parse(self.source_allowed_networks, self.source_s3_buckets, timeout)


# -- settings that must agree --------------------------------------------------------------------


@dataclass(frozen=True)
class Coupling:
    """Two settings whose values must agree: `low` below `high` (or at most it, not `strict`)."""

    low: str
    high: str
    strict: bool
    why: str

    def broken(self, settings: BaseSettings) -> str | None:
        """What is wrong, naming both variables and who reads them; None when they agree."""
        low, high = getattr(settings, self.low), getattr(settings, self.high)
        if low < high or (low == high and not self.strict):
            return None
        relation = "above" if self.strict else "at least"
        return (
            f"{self.high.upper()}={high:g} ({process_of(self.high)}) must be {relation} "
            f"{self.low.upper()}={low:g} ({process_of(self.low)}): {self.why}"
        )


COUPLINGS = (
    Coupling(
        "job_timeout_seconds",
        "broker_visibility_timeout",
        strict=True,
        why="Redis redelivers a job a worker has not acknowledged after the visibility "
        "timeout, so a job still running would go to a second worker (its lease turns that one "
        "away, at the cost of a worker's turn)",
    ),
    Coupling(
        "page_timeout_seconds",
        "job_timeout_seconds",
        strict=False,
        why="a page's limit above its job's never applies",
    ),
    Coupling(
        "webhook_backoff_base_seconds",
        "webhook_backoff_max_seconds",
        strict=False,
        why="the first delay after a failed delivery would already exceed the longest",
    ),
)


class Settings(
    RedisSettings,
    StorageSettings,
    AccessSettings,
    LoggingSettings,
    JobLifeSettings,
    ApiServerSettings,
    SubmitSettings,
    FollowSettings,
    LivenessSettings,
    WorkerJobSettings,
    BatchSettings,
    RecyclingSettings,
    RetentionSettings,
    PagePrepSettings,
    RapidOcrSettings,
    TesseractSettings,
    PaddleOcrVlSettings,
    WebhookSettings,
    SourceSettings,
):
    """Every knob of the service: the rooms above in one object, read flat
    (`settings.redis_url`). A new setting belongs in its room's class."""

    @model_validator(mode="after")
    def _couplings_hold(self) -> Settings:
        broken = [problem for c in COUPLINGS if (problem := c.broken(self))]
        if broken:
            raise ValueError("\n  ".join(broken))
        return self

    @model_validator(mode="after")
    def _sources_apart_from_storage(self) -> Settings:
        """A client must never read the service's own objects (other jobs' uploads and
        results) as its source."""
        if not self.storage_url:
            return self
        bucket, _, prefix = self.storage_url.removeprefix("s3://").partition("/")
        prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        for area in parse_s3_areas(self.source_s3_buckets):
            if area.overlaps(bucket, prefix):
                raise ValueError(
                    f"SOURCE_S3_BUCKETS (both) names {area.bucket}/{area.prefix}, which holds "
                    f"STORAGE_URL={self.storage_url} (both): clients could read other jobs' "
                    "files; name another bucket or a prefix apart from it"
                )
        return self


def rooms() -> tuple[type[Room], ...]:
    """The rooms of Settings, in the order they are listed."""
    return tuple(base for base in Settings.__bases__ if issubclass(base, Room))


def room_of(name: str) -> type[Room] | None:
    """The room that declares a field; None for one declared on Settings itself."""
    return next((room for room in rooms() if name in room.model_fields), None)


def process_of(name: str) -> Process | Literal["?"]:
    """The process that reads a setting: its own `read_by`, else its room's."""
    extra = Settings.model_fields[name].json_schema_extra
    if isinstance(extra, dict) and extra.get("read_by"):
        return extra["read_by"]  # type: ignore[return-value]
    room = room_of(name)
    return room.READ_BY if room is not None else "?"


def read_key_file(path: Path) -> frozenset[str]:
    """Keys one a line (each may carry callback=/secret=, shared/api_keys.py); blank lines and
    `#` comments skipped. The error never quotes a line."""
    return frozenset(read_key_entries(path))


def load_settings() -> Settings:
    """Build Settings from the environment or exit with a message naming each bad variable and
    the process that reads it."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [_error_line(err) for err in exc.errors()]
        sys.stderr.write("invalid configuration:\n" + "\n".join(lines) + "\n")
        raise SystemExit(2) from None


def _error_line(err: Any) -> str:
    name = "_".join(str(p) for p in err["loc"])
    if not name:  # a check of several settings: its message names them
        return f"  {err['msg'].removeprefix('Value error, ')}"
    process = process_of(name) if name in Settings.model_fields else "?"
    field = Settings.model_fields.get(name)
    got = "" if field and "SecretStr" in str(field.annotation) else f" (got {err.get('input')!r})"
    return f"  {name.upper()} ({process}): {err['msg']}{got}"  # a secret's value never shown
