"""The worker's source fetcher against a real HTTP server on loopback: documents arrive whole,
redirects are followed a bounded number of times and each target is checked again, the size cap
holds with or without an honest Content-Length, a slow source meets the time limit, and a
refused fetch leaves no file. Only 127.0.0.1/32 is allowed, so 127.0.0.2 (loopback too) is
refused: the address check bites on one machine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.api_keys import owner_fingerprint
from shared.error_codes import ErrorCode
from shared.jobs import JobRecord, JobStatus, JobStore, connect_redis, utcnow
from shared.jobs.usage import utc_today
from shared.settings import Settings
from shared.source_urls import S3Source, SourcePolicy, SourceRefused, source_filename
from shared.storage import job_files
from testkit.pages import encode, render_page
from testkit.s3server import S3Server
from testkit.source_server import PNG_SIGNATURE, SourceServer, serving_sources
from tests.conftest import UNIT_REDIS_URL
from worker.sources import SourceFailed, SourceFetcher, count_pages

CAP = 256 * 1024  # MAX_UPLOAD_MB=0.25


@pytest.fixture(scope="module")
def server() -> Iterator[SourceServer]:
    with serving_sources() as running:
        yield running


@pytest.fixture
def fetcher(tmp_path: Path) -> Iterator[SourceFetcher]:
    settings = Settings(
        temp_dir=tmp_path,
        output_dir=tmp_path,
        max_upload_mb=CAP / (1024 * 1024),
        source_allowed_networks="127.0.0.1/32",
        source_timeout_seconds=1.5,
        source_max_redirects=2,
    )
    running = SourceFetcher(settings)
    yield running
    running.close()


def _png() -> bytes:
    return encode(render_page([("Fetched by reference", 36)]), "PNG")


def _fails(fetcher: SourceFetcher, url: str, dest: Path) -> SourceFailed:
    with pytest.raises(SourceFailed) as caught:
        fetcher.fetch(url, dest)
    assert not dest.exists()  # nothing left behind
    return caught.value


def test_a_document_arrives_whole_and_sniffed(
    fetcher: SourceFetcher, server: SourceServer, tmp_path: Path
) -> None:
    data = _png()
    fetched = fetcher.fetch(server.add("page.png", data), tmp_path / "in")
    assert (fetched.media_type, fetched.size) == ("image/png", len(data))
    assert (tmp_path / "in").read_bytes() == data
    chunked = fetcher.fetch(server.url("chunked/page.png"), tmp_path / "in2")
    assert (tmp_path / "in2").read_bytes() == data and chunked.size == len(data)


def test_redirects_are_followed_up_to_the_limit(
    fetcher: SourceFetcher, server: SourceServer, tmp_path: Path
) -> None:
    server.add("r.png", _png())
    assert fetcher.fetch(server.url("redirects/2/r.png"), tmp_path / "a").media_type == "image/png"
    failed = _fails(fetcher, server.url("redirects/3/r.png"), tmp_path / "b")
    assert failed.code is ErrorCode.source_unreachable
    assert "SOURCE_MAX_REDIRECTS" in failed.message


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata: never
        "http://127.0.0.2:{port}/files/secret.png",  # loopback, but not the allowed 127.0.0.1/32
        "http://10.1.2.3/files/secret.png",  # private
        "s3://some-bucket/key.png",  # no redirect leaves HTTP
    ],
)
def test_a_redirect_into_a_refused_address_is_not_followed(
    fetcher: SourceFetcher, tmp_path: Path, target: str
) -> None:
    with serving_sources("127.0.0.2") as inner, serving_sources() as outer:
        inner.add("secret.png", _png())
        location = target.format(port=inner.port)
        failed = _fails(fetcher, outer.url(f"redirect?to={location}"), tmp_path / "x")
        assert failed.code is ErrorCode.source_unreachable
        assert "redirect" in failed.message
        assert inner.requests == []  # never asked


@pytest.mark.parametrize(
    "path",
    ["files/big.png", "chunked/big.png", "endless"],
    ids=["content-length", "chunked", "no-length"],
)
def test_a_body_over_the_cap_is_cut_and_refused(
    fetcher: SourceFetcher, server: SourceServer, tmp_path: Path, path: str
) -> None:
    server.add("big.png", PNG_SIGNATURE + bytes(CAP))
    failed = _fails(fetcher, server.url(path), tmp_path / "big")
    assert failed.code is ErrorCode.source_too_large
    assert str(CAP) in failed.message


def test_a_lying_content_length_is_refused_as_too_large_or_cut(
    fetcher: SourceFetcher, server: SourceServer, tmp_path: Path
) -> None:
    # claims more than the cap: refused unread
    assert _fails(fetcher, server.url(f"claims/{CAP + 1}"), tmp_path / "a").code is (
        ErrorCode.source_too_large
    )
    # claims less than the cap and sends less before hanging up: a broken transfer
    failed = _fails(fetcher, server.url("claims/100000"), tmp_path / "b")
    assert failed.code is ErrorCode.source_unreachable


def test_a_slow_source_meets_the_time_limit(
    fetcher: SourceFetcher, server: SourceServer, tmp_path: Path
) -> None:
    server.add("slow.png", _png())
    server.slow_pause = 0.3
    failed = _fails(fetcher, server.url("slow/slow.png"), tmp_path / "slow")
    assert failed.code is ErrorCode.source_unreachable
    assert "SOURCE_TIMEOUT_SECONDS" in failed.message


def test_a_non_document_or_an_error_answer_fails_with_its_code(
    fetcher: SourceFetcher, server: SourceServer, tmp_path: Path
) -> None:
    html = server.add("page.html", b"<!doctype html><html><body>hello</body></html>")
    assert _fails(fetcher, html, tmp_path / "a").code is ErrorCode.unsupported_media_type
    empty = server.add("empty.png", b"")
    assert _fails(fetcher, empty, tmp_path / "b").code is ErrorCode.unsupported_media_type
    missing = _fails(fetcher, server.url("files/none.png"), tmp_path / "c")
    assert missing.code is ErrorCode.source_unreachable and "404" in missing.message


def test_the_policy_guards_every_scheme() -> None:
    policy = SourcePolicy.parse("127.0.0.1/32, 169.254.0.0/16", "inbox, shared/scans/")
    assert policy.check("http://127.0.0.1:9/a.pdf").addresses  # type: ignore[union-attr]
    assert policy.check("s3://inbox/any/key.pdf") == S3Source("inbox", "any/key.pdf")
    assert policy.check("s3://shared/scans/a.png") == S3Source("shared", "scans/a.png")
    refused = {
        "ftp://127.0.0.1/a.pdf": "scheme",
        "http://127.0.0.2/a.pdf": "a loopback address; SOURCE_ALLOWED_NETWORKS",
        "https://169.254.169.254/": "metadata",
        "http://8.8.8.8/a.pdf": "plain http://",  # public, yet plain http: refused
        "https://user:pw@127.0.0.1/a.pdf": "credentials",
        "s3://other/a.pdf": "SOURCE_S3_BUCKETS",
        "s3://shared/private/a.pdf": "SOURCE_S3_BUCKETS",
        "s3://inbox": "s3://bucket/key",
    }
    for url, why in refused.items():
        with pytest.raises(SourceRefused, match=why):
            policy.check(url)
    assert SourcePolicy.parse("").check("https://8.8.8.8/a.pdf").addresses  # type: ignore[union-attr]
    assert source_filename("https://h/x/scan%201.pdf?sig=1") == "scan 1.pdf"
    assert source_filename("s3://b/a/b.png") == "b.png"
    assert source_filename("https://h/") is None


def test_settings_keep_sources_apart_from_the_service_bucket() -> None:
    with pytest.raises(ValueError, match="other jobs' files"):
        Settings(storage_url="s3://store/ocrq", source_s3_buckets="store")
    with pytest.raises(ValueError, match="other jobs' files"):
        Settings(storage_url="s3://store/ocrq", source_s3_buckets="store/ocrq/in/")
    Settings(storage_url="s3://store/ocrq", source_s3_buckets="store/inbox/")


def test_a_job_by_reference_counts_its_pages_once_fetched(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Admitted as 1 page at submit; once fetched, the rest counted against pages_per_day (once,
    however often its run is repeated), max_pages_per_job and MAX_PAGES refused."""
    keys = tmp_path / "keys"
    keys.write_text("k-src name=src pages_per_day=7 max_pages_per_job=4\n")
    settings = Settings(redis_url=UNIT_REDIS_URL, api_keys_file=keys, max_pages=10)
    store = JobStore(connect_redis(UNIT_REDIS_URL), 600)
    owner = owner_fingerprint("k-src")

    def by_reference() -> JobRecord:
        job_id = uuid.uuid4().hex
        assert store.usage.admit(owner, job_id, 1, utc_today(), pages_per_day=7) is None
        record = JobRecord(
            job_id=job_id,
            status=JobStatus.queued,
            created_at=utcnow(),
            owner=owner,
            source_url="https://example.org/a.pdf",
        )
        store.create(record)
        return record

    def used() -> int:
        return store.usage.days(owner, utc_today(), 1)[0].pages_submitted

    first = by_reference()
    count_pages(settings, store, first, 3, 3)
    count_pages(settings, store, first, 3, 3)  # a repeated run counts nothing more
    assert used() == 3
    refused = {
        (4, 11): (ErrorCode.too_many_pages, "MAX_PAGES=10"),
        (5, 5): (ErrorCode.quota_exceeded, "max_pages_per_job=4"),
        (3, 3): (ErrorCode.quota_exceeded, "pages_per_day=7"),  # 6 used + 2 more > 7
    }
    for (pages, total), (code, why) in refused.items():
        with pytest.raises(SourceFailed, match=why) as caught:
            count_pages(settings, store, by_reference(), pages, total)
        assert caught.value.code is code
    assert used() == 6  # three more jobs admitted as one page each, none counted further
    count_pages(settings, store, by_reference(), 1, 1)  # one page: nothing more to count
    assert used() == 7


def test_a_fetched_source_is_stored_in_the_bucket_and_kept_for_this_run(
    s3_server: S3Server, settings: Settings
) -> None:
    bucket = s3_server.new_bucket()
    files = job_files(s3_server.settings(settings, bucket), uuid.uuid4().hex)
    files.make_input_dir()
    fetched = files.input_dir / ".fetch-x"
    fetched.write_bytes(b"%PDF-1.4 fetched")
    path = files.store_fetched(fetched)
    assert path == files.input_path and path.read_bytes() == b"%PDF-1.4 fetched"
    assert files.has_input() and not fetched.exists()
    assert s3_server.keys(bucket) == [f"jobs/temp/{files.job_id}/input"]
