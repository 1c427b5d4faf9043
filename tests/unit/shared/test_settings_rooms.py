"""Settings grouped by room: every env var still reaches its field, each field says which
process reads it, and settings that must agree are checked at start naming both."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from shared.settings import COUPLINGS, Settings, process_of, room_of, rooms

# Every env var of the flat class of 78 (before the rooms) and those added since, a value
# that is not its default, and what the field holds then. RAPIDOCR_DET_LIMIT_SIDE_LEN became a
# constant (below).
FLAT_CLASS_ENV: list[tuple[str, str, Any]] = [
    ("REDIS_URL", "redis://10.1.2.3:6380/4", "redis://10.1.2.3:6380/4"),
    ("OUTPUT_DIR", "/srv/out", Path("/srv/out")),
    ("TEMP_DIR", "/srv/tmp", Path("/srv/tmp")),
    ("OCR_ENGINE", "tesseract", "tesseract"),
    ("PORT", "9001", 9001),
    ("HOST", "127.0.0.2", "127.0.0.2"),
    ("API_SOCKET_RCVBUF", "0", 0),
    ("MAX_UPLOAD_MB", "7.5", 7.5),
    ("MAX_FORM_FIELDS", "3", 3),
    ("MAX_FIELD_BYTES", "100", 100),
    ("MAX_HEADER_BYTES", "2048", 2048),
    ("HEADER_TIMEOUT_SECONDS", "4", 4.0),
    ("BODY_TIMEOUT_SECONDS", "6", 6.0),
    ("JOB_TTL_SECONDS", "86400", 86400),
    ("MAX_PAGES", "20", 20),
    ("PDF_DPI", "300", 300),
    ("API_KEYS", "k1,k2", "k1,k2"),
    ("LOG_LEVEL", "debug", "DEBUG"),
    ("LOG_FORMAT", "json", "json"),
    ("WORKER_HEARTBEAT_TTL", "9", 9),
    ("BROKER_VISIBILITY_TIMEOUT", "5400", 5400),
    ("JOB_LEASE_SECONDS", "12", 12),
    ("JOB_MAX_ATTEMPTS", "5", 5),
    ("ORPHAN_SWEEP_SECONDS", "0.5", 0.5),
    ("USAGE_RETENTION_DAYS", "30", 30),
    ("JOB_TIMEOUT_SECONDS", "1800", 1800),
    ("PAGE_TIMEOUT_SECONDS", "300", 300),
    ("PAGE_RANGE_SIZE", "5", 5),
    ("MAX_QUEUED_JOBS", "99", 99),
    ("RAPIDOCR_THREADS", "2", 2),
    ("RAPIDOCR_REC_MODEL", "/models/rec.onnx", Path("/models/rec.onnx")),
    ("RAPIDOCR_REC_KEYS", "/models/keys.txt", Path("/models/keys.txt")),
    ("RAPIDOCR_REC_SCRIPTS", "latin,cyrillic", "latin,cyrillic"),
    ("OCR_FALLBACK_ENGINES", "", ""),
    ("OCR_MIN_TEXT_HEIGHT_PX", "0", 0),
    ("PHOTO_NORMALISE", "off", "off"),
    ("OCR_WORD_FIXES", "off", "off"),
    ("OCR_DESPECKLE", "off", "off"),
    ("TESSERACT_PHOTO_MIN_TEXT_HEIGHT_PX", "20", 20),
    ("OCR_BILEVEL_BLUR_PX", "0.5", 0.5),
    ("TESSERACT_LANG", "eng", "eng"),
    ("TESSERACT_PSM", "6", 6),
    ("TESSERACT_DATA_DIR", "/usr/share/tessdata", Path("/usr/share/tessdata")),
    ("PADDLEOCR_VL_BACKEND", "vllm-server", "vllm-server"),
    ("PADDLEOCR_VL_SERVER_URL", "http://127.0.0.1:8118/v1", "http://127.0.0.1:8118/v1"),
    ("PADDLEOCR_VL_DEVICE", "cpu", "cpu"),
    ("PADDLEOCR_VL_PIPELINE_VERSION", "v1.5", "v1.5"),
    ("PADDLEOCR_VL_MODEL", "PaddleOCR-VL-1.5-0.9B", "PaddleOCR-VL-1.5-0.9B"),
    ("PADDLEOCR_VL_API_KEY", "vl-key", "vl-key"),
    ("PADDLEOCR_VL_LAYOUT", "off", "off"),
    ("PADDLEOCR_VL_MAX_CONCURRENCY", "64", 64),
    ("PADDLEOCR_VL_MAX_NEW_TOKENS", "2048", 2048),
    ("PADDLEOCR_VL_LOOP_RETRY_REPETITION_PENALTY", "1.05", 1.05),
    ("PADDLEOCR_VL_LOOP_RETRY_TEMPERATURE", "0.5", 0.5),
    ("BATCH_SIZE", "8", 8),
    ("BATCH_FILL_SECONDS", "0.2", 0.2),
    ("BATCH_JOBS", "4", 4),
    ("BATCH_IN_FLIGHT", "2", 2),
    # API_KEYS_FILE: set by the test to a file it writes
    ("RETENTION_SWEEP_SECONDS", "0", 0.0),
    ("RETENTION_GRACE_SECONDS", "60", 60.0),
    ("UI_LOW_SCORE", "0.5", 0.5),
    ("WEBHOOK_SECRET", "whsec", "whsec"),
    ("CALLBACK_ALLOWED_NETWORKS", "10.0.0.0/8,.corp", "10.0.0.0/8,.corp"),
    ("WEBHOOK_DISPATCHER", "false", False),
    ("WEBHOOK_CONCURRENCY", "8", 8),
    ("WEBHOOK_MAX_ATTEMPTS", "3", 3),
    ("WEBHOOK_BACKOFF_BASE_SECONDS", "1", 1.0),
    ("WEBHOOK_BACKOFF_MAX_SECONDS", "60", 60.0),
    ("WEBHOOK_CONNECT_TIMEOUT", "2", 2.0),
    ("WEBHOOK_READ_TIMEOUT", "3", 3.0),
    ("WEBHOOK_TOTAL_TIMEOUT", "4", 4.0),
    ("WEBHOOK_MAX_RESPONSE_BYTES", "1024", 1024),
    ("WEBHOOK_CONCURRENCY_PER_HOST", "3", 3),
    ("WEBHOOK_CONCURRENCY_PER_KEY", "6", 6),
    ("CALLBACK_DNS_TIMEOUT", "1", 1.0),
    ("SYNC_WAIT_SECONDS", "5", 5.0),
    ("STREAM_KEEPALIVE_SECONDS", "3", 3.0),
    ("DEFAULT_ENGINE", "tesseract", "tesseract"),
    ("REDIS_SENTINEL_MASTER", "mymaster", "mymaster"),
    ("REDIS_SENTINEL_PASSWORD", "sentinel-pw", "sentinel-pw"),
    ("REDIS_TLS_CA_FILE", "/etc/ca.pem", Path("/etc/ca.pem")),
    ("WORKER_MAX_JOBS", "100", 100),
    ("WORKER_MAX_RSS_MB", "1500", 1500.0),
    ("STORAGE_URL", "s3://bucket/pre/", "s3://bucket/pre"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ("AWS_REGION", "eu-west-1", "eu-west-1"),
    ("AWS_ACCESS_KEY_ID", "AKIA1", "AKIA1"),
    ("AWS_SECRET_ACCESS_KEY", "s3-secret", "s3-secret"),
    ("S3_ADDRESSING_STYLE", "path", "path"),
    ("S3_PART_MB", "16", 16),
    ("S3_TIMEOUT_SECONDS", "2.5", 2.5),
    ("S3_PUBLIC_ENDPOINT_URL", "https://s3.example.com", "https://s3.example.com"),
    ("RESULT_URL_EXPIRY_SECONDS", "60", 60),
    ("LIVENESS_WORKER", "aio", "aio"),
    ("LIVENESS_STALE_SECONDS", "5", 5.0),
    ("LIVENESS_START_GRACE_SECONDS", "20", 20.0),
    ("FAIR_SHARE", "off", False),
    ("FAIR_SHARE_IN_FLIGHT_PER_TENANT", "3", 3),
    ("READING_ORDER", "engine", "engine"),
    ("SOURCE_ALLOWED_NETWORKS", "10.0.0.0/8", "10.0.0.0/8"),
    ("SOURCE_S3_BUCKETS", "inbox/scans/", "inbox/scans/"),
    ("SOURCE_TIMEOUT_SECONDS", "30", 30.0),
    ("SOURCE_MAX_REDIRECTS", "2", 2),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", "http://collector:4318"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces", "http://c:4318/v1/traces"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "grpc"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf", "http/protobuf"),
]
DEMOTED = {"RAPIDOCR_DET_LIMIT_SIDE_LEN"}


def _plain(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_env_var_of_the_flat_class_still_sets_its_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("k3\n")
    monkeypatch.setenv("API_KEYS_FILE", str(key_file))
    for name, raw, _ in FLAT_CLASS_ENV:
        monkeypatch.setenv(name, raw)
    settings = Settings()

    assert (
        len(FLAT_CLASS_ENV) + 1 + len(DEMOTED) == 81 + 28
    )  # the flat class, and settings added since (webhook lanes, S3 timeout, VL requests,
    # VL token cap and loop retry, liveness, page ranges, usage retention, fair share, reading
    # order, despeckle, photo text height, pre-signed result URLs, source_url, bilevel blur,
    # OTLP endpoints and protocols)
    assert set(Settings.model_fields) == {n.lower() for n, _, _ in FLAT_CLASS_ENV} | {
        "api_keys_file"
    }
    assert settings.api_keys_file == key_file
    with pytest.raises(ValidationError, match="frozen"):
        settings.port = 1  # read once at start, never changed
    assert settings.api_key_set == {"k1", "k2", "k3"}
    for name, _, expected in FLAT_CLASS_ENV:
        field = name.lower()
        assert _plain(getattr(settings, field)) == expected, name
        assert expected != _plain(Settings.model_fields[field].default), name  # really read


def test_a_demoted_setting_is_ignored_like_any_unknown_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in DEMOTED:
        monkeypatch.setenv(name, "not a number")
    settings = Settings()
    assert not any(hasattr(settings, name.lower()) for name in DEMOTED)


def test_each_field_lives_in_a_room_with_a_description_and_a_process() -> None:
    assert len(rooms()) == len({room.ROOM for room in rooms()})  # no two rooms of one title
    for name, field in Settings.model_fields.items():
        assert room_of(name) is not None, (
            f"{name.upper()} is declared on Settings itself: move it into its room's class "
            "in shared/settings.py (then `make config-docs`)"
        )
        assert process_of(name) in ("api", "worker", "both"), name
        assert field.description, f"{name.upper()} has no description (docs/configuration.md)"


def test_the_defaults_agree_and_the_visibility_timeout_outlasts_the_job() -> None:
    settings = Settings()
    assert all(coupling.broken(settings) is None for coupling in COUPLINGS)
    assert settings.broker_visibility_timeout > settings.job_timeout_seconds


@pytest.mark.parametrize(
    ("values", "names"),
    [
        (
            {"job_timeout_seconds": 3600, "broker_visibility_timeout": 3600},
            ("BROKER_VISIBILITY_TIMEOUT=3600", "JOB_TIMEOUT_SECONDS=3600"),
        ),
        (
            {"page_timeout_seconds": 601, "job_timeout_seconds": 600},
            ("JOB_TIMEOUT_SECONDS=600", "PAGE_TIMEOUT_SECONDS=601"),
        ),
        (
            {"webhook_backoff_base_seconds": 60, "webhook_backoff_max_seconds": 30},
            ("WEBHOOK_BACKOFF_MAX_SECONDS=30", "WEBHOOK_BACKOFF_BASE_SECONDS=60"),
        ),
    ],
)
def test_settings_that_must_agree_are_refused_naming_both(
    values: dict[str, float], names: tuple[str, str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)  # type: ignore[arg-type]
    message = str(caught.value)
    assert all(f"{name} (worker)" in message for name in names), message


def test_the_edge_of_an_inclusive_coupling_is_accepted() -> None:
    settings = Settings(page_timeout_seconds=600, job_timeout_seconds=600)
    assert settings.page_timeout_seconds == settings.job_timeout_seconds


def test_a_process_refuses_to_start_naming_both_settings_and_who_reads_each() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "JOB_TIMEOUT_SECONDS": "9000",
        "PORT": "http",
    }
    bad_field = subprocess.run(
        [sys.executable, "-m", "api"], env=env, capture_output=True, text=True, timeout=30
    )
    assert bad_field.returncode == 2
    assert "PORT (api):" in bad_field.stderr

    del env["PORT"]
    coupled = subprocess.run(
        [sys.executable, "-m", "api"], env=env, capture_output=True, text=True, timeout=30
    )
    assert coupled.returncode == 2
    assert "BROKER_VISIBILITY_TIMEOUT=7200 (worker) must be above" in coupled.stderr
    assert "JOB_TIMEOUT_SECONDS=9000 (worker)" in coupled.stderr
    assert "Traceback" not in coupled.stderr
