"""Form fields beside the file, and page counting at upload."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import JobStore, connect_redis
from shared.settings import Settings
from testkit.pages import encode, render_page


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"max_pages": 4}))) as test_client:
        yield test_client


def _pdf(pages: int) -> bytes:
    images = [render_page([(f"Page {i}", 20)], width=200) for i in range(1, pages + 1)]
    return encode(images[0], "PDF", save_all=True, append_images=images[1:])


def _tiff(pages: int) -> bytes:
    images = [render_page([(f"Page {i}", 20)], width=200) for i in range(1, pages + 1)]
    return encode(images[0], "TIFF", save_all=True, append_images=images[1:])


def test_options_are_stored_with_the_job(client: TestClient, settings: Settings) -> None:
    response = client.post(
        "/jobs",
        files={"file": ("a.pdf", _pdf(3))},
        data={"pages": "1, 3", "dpi": "150", "language": "ru", "text_layer": "use"},
    )

    assert response.status_code == 202, response.text
    record = JobStore(connect_redis(settings.redis_url), 60).require(response.json()["job_id"])
    assert record.options.pages == "1,3"
    assert (record.options.dpi, record.options.language, record.options.text_layer) == (
        150,
        "ru",
        "use",
    )
    assert record.pages_total == 2
    assert client.get(f"/jobs/{record.job_id}").json()["progress"]["pages_total"] == 2


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"pages": "1-x"}, "pages"),
        ({"pages": "0"}, "pages"),
        ({"dpi": "5000"}, "dpi"),
        ({"dpi": "high"}, "dpi"),
        ({"language": "klingon"}, "language"),
        ({"text_layer": "maybe"}, "text_layer"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_or_unknown_fields_are_422_naming_the_field(
    client: TestClient, settings: Settings, fields: dict[str, str], named: str
) -> None:
    response = client.post("/jobs", files={"file": ("a.pdf", _pdf(1))}, data=fields)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_option"
    assert error["message"].startswith(f"{named}:")
    assert not any(p.is_file() for p in settings.temp_dir.rglob("*"))


@pytest.mark.parametrize("make", [_pdf, _tiff])
def test_documents_over_max_pages_are_refused_at_upload(
    client: TestClient, settings: Settings, make
) -> None:
    response = client.post("/jobs", files={"file": ("big", make(5))})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_pages"
    assert "MAX_PAGES=4" in response.json()["error"]["message"]
    assert not any(p.is_file() for p in settings.temp_dir.rglob("*"))


def test_page_range_past_the_end_is_refused_at_upload(client: TestClient) -> None:
    response = client.post("/jobs", files={"file": ("a.pdf", _pdf(2))}, data={"pages": "2-3"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_option"
    assert "2 page(s)" in response.json()["error"]["message"]


def test_multipage_tiff_pages_are_counted(client: TestClient) -> None:
    response = client.post("/jobs", files={"file": ("scan.tif", _tiff(3))})

    assert response.status_code == 202
    job = client.get(f"/jobs/{response.json()['job_id']}").json()
    assert job["progress"] == {"pages_done": 0, "pages_total": 3, "pages_failed": 0}
