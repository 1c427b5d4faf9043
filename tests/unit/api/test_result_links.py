"""`?delivery=url`: a result in every format, a page picture and an image crop answered as a
pre-signed URL of the bucket (307), after the same checks as the streamed answer (owner,
status); the bucket serves the same bytes under the file's own type. Real S3 servers on
loopback: moto for the bytes, s3rver for what moto does not check (a pre-signed URL's expiry:
moto serves any pre-signed GET, expired or not). On local storage the option streams as before."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from ocrq_client.client import OcrqClient
from shared.jobs import JobStore, connect_redis
from shared.settings import Settings
from testkit.s3server import S3Server, running_s3rver, s3rver_installed
from tests.conftest import service_fixture
from tests.unit.api.crops import CROP
from tests.unit.api.crops import finish_with_crop as _finish
from tests.unit.api.crops import submit_png as _submit
from tests.unit.api.owners import ALICE, BOB

FORMATS = {  # format: (Content-Type the bucket answers, file name it is saved as)
    "json": ("application/json", ".json"),
    "markdown": ("text/markdown; charset=utf-8", ".md"),
    "text": ("text/plain; charset=utf-8", ".txt"),
    "pdf": ("application/pdf", ".pdf"),
    "hocr": ("text/vnd.hocr+html; charset=utf-8", ".hocr"),
    "alto": ("application/xml", ".alto.xml"),
}


def _bucket_settings(base: Settings, server: S3Server, **more: object) -> Settings:
    env = {k.lower(): v for k, v in server.env(server.new_bucket(), "jobs").items()}
    return Settings(**(base.model_dump() | env | more))


@pytest.fixture
def store(secured: Settings) -> JobStore:
    return JobStore(connect_redis(secured.redis_url), secured.job_ttl_seconds)


@pytest.fixture
def on_bucket(secured: Settings, s3_server: S3Server) -> Settings:
    return _bucket_settings(secured, s3_server)


@pytest.fixture
def bucket_client(on_bucket: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(on_bucket)) as client:
        yield client


@service_fixture
def s3rver(tmp_path: Path) -> Iterator[S3Server]:
    if not s3rver_installed():
        pytest.skip("s3rver is not installed: scripts/ensure-s3rver.sh (make test runs it)")
    with running_s3rver(tmp_path / "s3rver") as server:
        yield server


def _link(client: TestClient, path: str, headers: dict[str, str] = ALICE) -> dict:
    """The 307 answer to `path?delivery=url`: Location and its JSON body say one URL."""
    answer = client.get(path, params={"delivery": "url"}, headers=headers, follow_redirects=False)
    assert answer.status_code == 307, answer.text
    link = answer.json()
    assert answer.headers["location"] == link["url"]
    assert answer.headers["cache-control"] == "no-store"
    return link


def test_every_result_format_a_page_picture_and_a_crop_come_from_the_bucket(
    bucket_client: TestClient, on_bucket: Settings, store: JobStore, s3_server: S3Server
) -> None:
    job_id = _submit(bucket_client)
    result = f"/jobs/{job_id}/result"

    early = bucket_client.get(f"{result}/pdf", params={"delivery": "url"}, headers=ALICE)
    assert (early.status_code, early.json()["error"]["code"]) == (409, "result_not_ready")
    _finish(on_bucket, store, job_id)

    with httpx.Client(timeout=30) as anyone:  # no API key: the URL carries its signature
        for fmt, (media_type, suffix) in FORMATS.items():
            # the URL first: an archive format is rendered and stored before it is signed
            path = result if fmt == "json" else f"{result}/{fmt}"
            link = _link(bucket_client, path)
            fetched = anyone.get(link["url"])
            streamed = bucket_client.get(path, headers=ALICE)
            assert fetched.status_code == 200, fetched.text
            assert fetched.content == streamed.content and len(fetched.content) == link["size"]
            assert fetched.headers["content-type"] == media_type == link["media_type"]
            disposition = fetched.headers["content-disposition"]
            assert disposition == f'inline; filename="{job_id}{suffix}"'
            assert datetime.fromisoformat(link["expires_at"]) > datetime.now(UTC)
            assert f"/jobs/output/{job_id}/" in link["url"] and "X-Amz-Expires=300" in link["url"]
        # ?format= on /result answers the same
        query = {"format": "text", "delivery": "url"}
        by_query = bucket_client.get(result, params=query, headers=ALICE, follow_redirects=False)
        assert by_query.status_code == 307
        text = bucket_client.get(f"{result}/text", headers=ALICE).content
        assert anyone.get(by_query.json()["url"]).content == text

        for path, media_type in (
            (f"/jobs/{job_id}/pages/1/image", "image/jpeg"),
            (f"/jobs/{job_id}/images/{CROP}", "image/jpeg"),
        ):
            fetched = anyone.get(_link(bucket_client, path)["url"])
            assert fetched.headers["content-type"] == media_type
            assert fetched.content == bucket_client.get(path, headers=ALICE).content
            Image.open(io.BytesIO(fetched.content)).verify()

    # another key's job: 404 as for any other answer of it, no URL issued
    other = bucket_client.get(f"{result}/pdf", params={"delivery": "url"}, headers=BOB)
    assert "location" not in other.headers
    assert (other.status_code, other.json()["error"]["code"]) == (404, "job_not_found")
    crop = bucket_client.get(
        f"/jobs/{job_id}/images/{CROP}", params={"delivery": "url"}, headers=BOB
    )
    assert crop.status_code == 404 and "location" not in crop.headers
    missing = bucket_client.get(
        f"/jobs/{job_id}/images/p1-none.jpg", params={"delivery": "url"}, headers=ALICE
    )
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "image_not_found")


def test_on_local_storage_delivery_url_streams_the_file(
    owner_client: TestClient, secured: Settings, store: JobStore
) -> None:
    job_id = _submit(owner_client)
    _finish(secured, store, job_id)

    for path in (f"/jobs/{job_id}/result/pdf", f"/jobs/{job_id}/images/{CROP}"):
        linked = owner_client.get(path, params={"delivery": "url"}, headers=ALICE)
        streamed = owner_client.get(path, headers=ALICE)
        assert linked.status_code == 200 and linked.content == streamed.content


def test_an_expired_url_is_refused_by_the_bucket(
    secured: Settings, store: JobStore, s3rver: S3Server
) -> None:
    settings = _bucket_settings(secured, s3rver, result_url_expiry_seconds=1)
    with TestClient(create_app(settings)) as client, httpx.Client(timeout=30) as anyone:
        job_id = _submit(client)
        _finish(settings, store, job_id)
        link = _link(client, f"/jobs/{job_id}/result/text")
        url = link["url"]

        fresh = anyone.get(url)
        streamed = client.get(f"/jobs/{job_id}/result/text", headers=ALICE).content
        while datetime.now(UTC) <= datetime.fromisoformat(link["expires_at"]):
            time.sleep(0.2)
        time.sleep(1.1)  # past the URL's second (the signature's date has whole seconds)
        expired = anyone.get(url)

    assert fresh.status_code == 200 and fresh.content == streamed
    assert expired.status_code == 403, expired.text
    assert b"AccessDenied" in expired.content and b"Request has expired" in expired.content


class _AppOrNetwork(httpx.BaseTransport):
    """The client's transport: requests to the app in process, any other host (the bucket)
    over the network; every request recorded."""

    def __init__(self, app: httpx.BaseTransport) -> None:
        self.app = app
        self.network = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        to_app = request.url.host == "testserver"
        return (self.app if to_app else self.network).handle_request(request)


def test_the_client_fetches_a_result_from_the_bucket_without_its_key(
    bucket_client: TestClient, on_bucket: Settings, store: JobStore, s3_server: S3Server
) -> None:
    job_id = _submit(bucket_client)
    _finish(on_bucket, store, job_id)
    transport = _AppOrNetwork(bucket_client._transport)
    key = ALICE["Authorization"].removeprefix("Bearer ")

    with OcrqClient("http://testserver", key, transport=transport) as ocrq:
        pdf = ocrq.result(job_id, "pdf")
        api, bucket = transport.requests
        streamed = ocrq.result(job_id, "pdf", direct=False)

    assert pdf == streamed and pdf.startswith(b"%PDF")
    assert api.url.params["delivery"] == "url" and api.headers["authorization"] == f"Bearer {key}"
    assert str(bucket.url).startswith(s3_server.endpoint) and "authorization" not in bucket.headers
    assert transport.requests[2].url.params.get("delivery") is None  # direct=False: the API's
