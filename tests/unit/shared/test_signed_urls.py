"""Pre-signed URLs (`?delivery=url`): signed for the endpoint clients reach, in SigV4 (whose
X-Amz-Expires the bucket enforces), with the file's headers; none from local folders. Signing
sends nothing to the bucket, so none is needed here."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from shared.settings import Settings
from shared.storage import LocalStore
from shared.storage.s3 import bucket_of

DISPOSITION = 'inline; filename="x.pdf"'


def _signed(**settings: str) -> tuple[str, dict[str, list[str]]]:
    config = Settings(
        storage_url="s3://ocrq/jobs",
        aws_region="us-east-1",
        aws_access_key_id="key-id",
        aws_secret_access_key="secret",
        **settings,  # type: ignore[arg-type]
    )
    url = bucket_of(config).signed_url("output/x/result.pdf", 60, "application/pdf", DISPOSITION)
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)


def test_a_url_names_the_public_endpoint_and_the_files_headers() -> None:
    where, query = _signed(
        aws_endpoint_url="http://minio:9000", s3_public_endpoint_url="https://s3.example.com"
    )

    assert where == "https://s3.example.com/ocrq/jobs/output/x/result.pdf"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["60"]
    assert query["response-content-type"] == ["application/pdf"]
    assert query["response-content-disposition"] == [DISPOSITION]
    assert query["X-Amz-Credential"][0].startswith("key-id/")


def test_without_a_public_endpoint_the_services_own_is_named() -> None:
    where, _ = _signed(aws_endpoint_url="http://minio:9000")

    assert where == "http://minio:9000/ocrq/jobs/output/x/result.pdf"


def test_local_folders_have_no_urls(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "temp", tmp_path / "output")

    assert store.signed_url("output/x/result.pdf", 60, "application/pdf", DISPOSITION) is None
