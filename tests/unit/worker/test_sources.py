"""The worker's source fetcher against a real HTTP server on loopback: documents arrive whole,
redirects are followed a bounded number of times and each target is checked again, the size cap
holds with or without an honest Content-Length, a slow source meets the time limit, and a
refused fetch leaves no file. Only 127.0.0.1/32 is allowed, so 127.0.0.2 (loopback too) is
refused: the address check bites on one machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.error_codes import ErrorCode
from shared.settings import Settings
from shared.source_urls import S3Source, SourcePolicy, SourceRefused, source_filename
from testkit.pages import encode, render_page
from testkit.source_server import PNG_SIGNATURE, SourceServer, serving_sources
from worker.sources import SourceFailed, SourceFetcher

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
