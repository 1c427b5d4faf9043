"""The storage interface's contract (ObjectStore), the same tests against both backends: local
folders, and a bucket on a real S3 protocol server (moto on loopback; integration). What one
backend promises the other must keep, so JobFiles above them need not know which it has."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.storage import LocalStore, ObjectStore, storage_of
from shared.storage.s3 import Bucket

JOB = uuid.uuid4().hex
KEY = f"output/{JOB}/result.json"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The backend STORAGE_URL names: none (TEMP_DIR/OUTPUT_DIR), or a new bucket of its own."""
    env: dict[str, str] = {}
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        env = server.env(server.new_bucket())
    settings = Settings(
        temp_dir=tmp_path / "temp",
        output_dir=tmp_path / "output",
        **{k.lower(): v for k, v in env.items()},
    )
    return storage_of(settings)


def test_both_backends_are_object_stores(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore) and isinstance(store, (LocalStore, Bucket))


def test_a_put_object_reads_back_whole_and_a_second_put_replaces_it(store: ObjectStore) -> None:
    assert store.size(KEY) is None
    store.put(KEY, b'{"v": 1}')
    store.put(KEY, b'{"v": 22}')

    assert store.size(KEY) == len(b'{"v": 22}')
    assert b"".join(store.open(KEY)) == b'{"v": 22}'
    path = store.local_path(KEY)
    assert path is None or path.read_bytes() == b'{"v": 22}'  # a real file where files are kept


def test_a_local_file_is_stored_by_streaming_it(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "spool"
    source.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    store.put(f"temp/{JOB}/input", source)

    assert b"".join(store.open(f"temp/{JOB}/input")) == source.read_bytes()


def test_a_missing_object_has_no_size_no_bytes_and_deleting_it_is_no_error(
    store: ObjectStore,
) -> None:
    assert store.size(f"output/{JOB}/result.md") is None
    with pytest.raises(FileNotFoundError):
        b"".join(store.open(f"output/{JOB}/result.md"))
    store.delete([f"output/{JOB}/result.md"])
    store.delete_under(f"output/{JOB}/")


def test_writing_stores_a_whole_file_or_nothing(store: ObjectStore, tmp_path: Path) -> None:
    key = f"output/{JOB}/result.pdf"
    with pytest.raises(RuntimeError), store.writing(key, tmp_path / "scratch") as target:
        target.write_bytes(b"%PDF-half")
        raise RuntimeError("renderer crashed")
    assert store.size(key) is None
    assert list(store.objects(f"output/{JOB}/")) == []

    with store.writing(key, tmp_path / "scratch") as target:
        target.write_bytes(b"%PDF-whole")
    assert b"".join(store.open(key)) == b"%PDF-whole"
    assert [p for p in (tmp_path / "scratch").glob("*") if p.is_file()] == []


def test_a_copy_outlives_its_source(store: ObjectStore) -> None:
    store.put(f"temp/{JOB}/input", b"%PDF-1.7 pages")
    store.copy(f"temp/{JOB}/input", f"sources/{JOB}/input")
    store.delete([f"temp/{JOB}/input"])

    assert store.size(f"temp/{JOB}/input") is None
    assert b"".join(store.open(f"sources/{JOB}/input")) == b"%PDF-1.7 pages"


def test_listing_gives_keys_under_a_prefix_with_their_age(store: ObjectStore) -> None:
    other = uuid.uuid4().hex
    before = time.time()
    for key in (KEY, f"output/{JOB}/images/p1-a.png", f"output/{other}/result.txt"):
        store.put(key, b"x")
    store.put(f"sources/{JOB}/input", b"src")

    listed = {o.key: o.modified for o in store.objects(f"output/{JOB}/")}
    assert sorted(listed) == [f"output/{JOB}/images/p1-a.png", KEY]
    assert all(before - 5 <= modified <= time.time() + 5 for modified in listed.values())
    assert {o.key for o in store.objects()} == {
        KEY,
        f"output/{JOB}/images/p1-a.png",
        f"output/{other}/result.txt",
        f"sources/{JOB}/input",
    }


def test_delete_under_removes_a_jobs_folder_and_nothing_else(store: ObjectStore) -> None:
    other = uuid.uuid4().hex
    for key in (KEY, f"output/{JOB}/pages/p1.jpg", f"output/{other}/result.json"):
        store.put(key, b"x")

    store.delete_under(f"output/{JOB}/")

    assert [o.key for o in store.objects()] == [f"output/{other}/result.json"]


def test_nothing_unfinished_is_left_by_finished_writes(store: ObjectStore) -> None:
    store.put(KEY, b"{}")
    assert store.discard_unfinished(time.time() + 60) == 0
    assert store.size(KEY) == 2


def test_the_local_backend_keeps_the_layout_of_temp_dir_and_output_dir(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "t", tmp_path / "o")
    assert store.local_path(f"temp/{JOB}/input") == tmp_path / "t" / JOB / "input"
    assert store.local_path(KEY) == tmp_path / "o" / JOB / "result.json"
    assert store.local_path(f"sources/{JOB}/input") == tmp_path / "o" / "sources" / JOB / "input"
    store.put(f"temp/{JOB}/input", b"x")
    store.delete([f"temp/{JOB}/input"])
    assert list((tmp_path / "t").iterdir()) == []  # the job's folder went with its last file


# ids without the random JOB: pytest-xdist's workers must collect the same test names
@pytest.mark.parametrize(
    "bad",
    [
        "../etc/passwd",
        pytest.param(f"output/{JOB}/../x", id="output/JOB/../x"),
        "output//x",
        "other/x",
        "",
    ],
)
def test_the_local_backend_refuses_keys_that_are_no_plain_path(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        LocalStore(tmp_path / "t", tmp_path / "o").local_path(bad)
