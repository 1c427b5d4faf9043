"""GET /jobs/{id}/images/{name}: a crop written with the result (through worker/results.py)
served with the result's own rules: owner only, 409 until succeeded, strict names."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from shared.jobs import Claim, JobStore, connect_redis
from shared.settings import Settings
from tests.unit.api.crops import finish_with_crop as _finish
from tests.unit.api.crops import jpeg_bytes as _jpeg
from tests.unit.api.crops import submit_png as _submit
from tests.unit.api.owners import ALICE, BOB


@pytest.fixture
def store(secured: Settings) -> JobStore:
    return JobStore(connect_redis(secured.redis_url), secured.job_ttl_seconds)


def test_the_markdown_link_fetches_the_crop(owner_client, secured, store) -> None:
    job_id = _submit(owner_client)
    _finish(secured, store, job_id)

    markdown = owner_client.get(f"/jobs/{job_id}/result?format=markdown", headers=ALICE).text
    link = f"/jobs/{job_id}/images/p1-fig.jpg"
    assert f'<img src="{link}" alt="Image" />' in markdown
    assert (
        link
        in owner_client.get(f"/jobs/{job_id}/result", headers=ALICE).json()["pages"][0]["markdown"]
    )

    response = owner_client.get(link, headers=ALICE)

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == _jpeg()
    assert Image.open(io.BytesIO(response.content)).size == (40, 30)
    # a client that asks for bytes (as OpenAPI's octet-stream alternative says) gets them so
    raw = owner_client.get(link, headers={**ALICE, "Accept": "application/octet-stream"})
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.content == _jpeg()


def test_another_keys_job_and_no_key_answer_as_for_the_result(owner_client, secured, store) -> None:
    job_id = _submit(owner_client)
    _finish(secured, store, job_id)
    link = f"/jobs/{job_id}/images/p1-fig.jpg"

    other = owner_client.get(link, headers=BOB)
    unknown = owner_client.get(f"/jobs/{'0' * 32}/images/p1-fig.jpg", headers=BOB)

    assert other.status_code == unknown.status_code == 404
    assert other.json()["error"]["code"] == "job_not_found"
    assert other.json()["error"]["message"] == unknown.json()["error"]["message"].replace(
        "0" * 32, job_id
    )
    assert owner_client.get(link).status_code == 401


@pytest.mark.parametrize(
    "name",
    [
        "p1-nope.jpg",
        "p2-fig.jpg",
        "fig.jpg",
        "p1-fig.gif",
        "p1-..jpg",
        "p1-.fig.jpg",
        "..%2Fresult.json",
        "..%2F..%2Fresult.json",
        "p1-..%2F..%2Fresult.json",
        "%2E%2E%2Fresult.json",
        "result.json",
        "p1-fig.jpg%00.png",
        "p1-fig.jpg%0A",
        "a%2Fb",
        "p1-a/b.jpg",
        "",
    ],
)
def test_names_off_the_pattern_or_unknown_are_404_and_serve_nothing(
    owner_client, secured, store, name: str
) -> None:
    job_id = _submit(owner_client)
    files = _finish(secured, store, job_id)
    result_json = files.result_path("json").read_bytes()

    response = owner_client.get(f"/jobs/{job_id}/images/{name}", headers=ALICE)

    assert response.status_code == 404, response.text
    assert response.content != result_json
    assert response.json()["error"]["code"] == "image_not_found"  # as the docs say, even a/b


def test_unknown_and_malformed_names_are_image_not_found(owner_client, secured, store) -> None:
    job_id = _submit(owner_client)
    _finish(secured, store, job_id)

    for name in ("p1-nope.jpg", "p1-..jpg", "result.json", "p1-fig.jpg%00.png"):
        response = owner_client.get(f"/jobs/{job_id}/images/{name}", headers=ALICE)
        assert response.json()["error"]["code"] == "image_not_found", name


def test_before_the_job_succeeded_or_after_it_failed_or_was_canceled_is_409(
    owner_client, store
) -> None:
    queued = _submit(owner_client)
    response = owner_client.get(f"/jobs/{queued}/images/p1-fig.jpg", headers=ALICE)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "result_not_ready")
    assert response.headers["retry-after"] == "1"

    failed = _submit(owner_client)
    assert store.claim(failed, "w1:1", 30) is Claim.claimed
    assert store.fail(failed, "recognition_failed", "unreadable")
    response = owner_client.get(f"/jobs/{failed}/images/p1-fig.jpg", headers=ALICE)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "job_failed")

    owner_client.delete(f"/jobs/{queued}", headers=ALICE)
    response = owner_client.get(f"/jobs/{queued}/images/p1-fig.jpg", headers=ALICE)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "job_canceled")


def test_a_result_removed_by_retention_is_result_gone(owner_client, secured, store) -> None:
    job_id = _submit(owner_client)
    files = _finish(secured, store, job_id)
    files.remove_all()

    response = owner_client.get(f"/jobs/{job_id}/images/p1-fig.jpg", headers=ALICE)

    assert (response.status_code, response.json()["error"]["code"]) == (410, "result_gone")


def test_openapi_documents_the_route_and_its_name_pattern(owner_client) -> None:
    operation = owner_client.get("/openapi.json").json()["paths"]["/jobs/{job_id}/images/{name}"][
        "get"
    ]

    [name] = [p for p in operation["parameters"] if p["name"] == "name"]
    assert name["schema"]["pattern"].startswith("^p[0-9]")
    assert set(operation["responses"]["200"]["content"]) == {
        "image/jpeg",
        "image/png",
        "application/octet-stream",  # what generated clients read as bytes
    }
    assert {"401", "404", "409"} <= set(operation["responses"])
