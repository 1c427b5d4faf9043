from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import Settings


def test_defaults_match_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "OUTPUT_DIR", "TEMP_DIR", "OCR_ENGINE", "PORT", "API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.output_dir == Path("/app/output")
    assert settings.temp_dir == Path("/app/temp")
    assert settings.ocr_engine == "rapidocr"
    assert settings.port == 8081
    assert settings.max_upload_mb == 50
    assert settings.job_ttl_seconds == 7 * 24 * 3600
    assert settings.api_key_set == frozenset()


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("API_KEYS", " a , b,,")
    monkeypatch.setenv("MAX_UPLOAD_MB", "2")
    settings = Settings()
    assert settings.port == 9000
    assert settings.api_key_set == {"a", "b"}
    assert settings.max_upload_bytes == 2 * 1024 * 1024


def test_bad_values_fail_at_start_naming_the_variable() -> None:
    env = {"PATH": "/usr/bin:/bin", "PORT": "http", "MAX_UPLOAD_MB": "-1", "REDIS_URL": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "api"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    for name in ("PORT", "MAX_UPLOAD_MB", "REDIS_URL"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_api_keys_file_adds_keys_skipping_blanks_and_comments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# team A\nkey-one\n\n   key-two  \n  # key-three\n")
    monkeypatch.setenv("API_KEYS", "key-env")
    monkeypatch.setenv("API_KEYS_FILE", str(key_file))

    assert Settings().api_key_set == {"key-env", "key-one", "key-two"}


@pytest.mark.parametrize("content", [None, "# only a comment\n\n"])
def test_missing_or_empty_key_file_fails_start_naming_the_variable(
    tmp_path: Path, content: str | None
) -> None:
    key_file = tmp_path / "keys"
    if content is not None:
        key_file.write_text(content)
    env = {"PATH": "/usr/bin:/bin", "API_KEYS_FILE": str(key_file)}
    result = subprocess.run(
        [sys.executable, "-m", "api"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "API_KEYS_FILE" in result.stderr
    assert "Traceback" not in result.stderr
    assert "only a comment" not in result.stderr  # the file's lines are never echoed


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("", ""),
        ("s3://bucket", "s3://bucket"),
        ("s3://my.bucket-1/ocrq/jobs/", "s3://my.bucket-1/ocrq/jobs"),
    ],
)
def test_storage_url_names_a_bucket_and_prefix(url: str, stored: str) -> None:
    assert Settings(storage_url=url).storage_url == stored


@pytest.mark.parametrize(
    "url", ["/data/jobs", "s3://", "s3://Bucket", "s3://b", "gs://bucket", "s3://bucket//x"]
)
def test_a_storage_url_that_is_no_bucket_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="s3://bucket"):
        Settings(storage_url=url)


def test_the_storage_location_splits_bucket_and_prefix() -> None:
    from shared.storage.s3 import S3Location

    assert S3Location.parse("s3://bucket") == S3Location("bucket", "")
    assert S3Location.parse("s3://bucket/a/b") == S3Location("bucket", "a/b/")
