"""A full disk while the API makes a file on its first request (an archive format, a page
picture): 507 insufficient_storage, nothing partial left, and the file made once room is back."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import JobStore, connect_redis
from shared.settings import Settings
from testkit.page_pictures import store_succeeded_job
from testkit.pages import encode, render_page
from tests.fulldisk import fill, small_tmpfs

URLS = ["result?format=pdf", "result?format=hocr", "result?format=alto", "pages/1/image"]


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_full_output_dir_answers_507_and_leaves_nothing_partial(settings: Settings) -> None:
    store = JobStore(connect_redis(settings.redis_url), settings.job_ttl_seconds)
    png = encode(render_page([("Stored before the disk filled up", 30)], width=600))
    with small_tmpfs(settings.output_dir, size="512k") as output:
        job_id = store_succeeded_job(store, settings.temp_dir, output, png, "image/png")
        stored = _files_under(output)
        filler = fill(output)

        with TestClient(create_app(settings)) as client:
            answers = [client.get(f"/jobs/{job_id}/{url}") for url in URLS]
            left = _files_under(output)
            filler.unlink()
            again = [client.get(f"/jobs/{job_id}/{url}") for url in URLS]

    for answer in answers:
        assert answer.status_code == 507, answer.text
        assert answer.json()["error"]["code"] == "insufficient_storage"
        assert "no room left" in answer.json()["error"]["message"]
    assert left == sorted([*stored, filler.name])  # no temp file, no lock, no half a file
    assert [a.status_code for a in again] == [200] * len(URLS)
