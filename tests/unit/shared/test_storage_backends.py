"""The storage interface (JobFiles) on both backends: local folders and a bucket (moto on
loopback). The same tests run against each; with the bucket, the local folders must stay empty
of job files, since nothing may pass through a disk that the API and the workers share."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.storage import JobFiles, job_files
from shared.storage.s3 import Bucket, bucket_of
from testkit.s3server import S3Server

Make = Callable[..., JobFiles]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
IMAGE = "p1-figure_1.png"


def _settings(tmp_path: Path, where: str, env: dict[str, str], part_mb: int = 8) -> Settings:
    return Settings(
        temp_dir=tmp_path / where / "temp",
        output_dir=tmp_path / where / "output",
        s3_part_mb=part_mb,
        **{k.lower(): v for k, v in env.items()},
    )


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The settings' env for the backend: none (local folders), or a new bucket of its own."""
    if request.param == "local":
        yield {}
        return
    server: S3Server = request.getfixturevalue("s3_server")
    yield server.env(server.new_bucket())


@pytest.fixture
def make(backend: dict[str, str], tmp_path: Path) -> Make:
    """JobFiles of one job as a process sees it: `where` names the process (its own folders
    with a bucket; one shared pair of folders without)."""
    job_id = uuid.uuid4().hex

    def make(where: str = "api", part_mb: int = 8) -> JobFiles:
        place = where if backend else "shared"
        return job_files(_settings(tmp_path, place, backend, part_mb), job_id)

    return make


def _spool(files: JobFiles, data: bytes) -> None:
    files.make_input_dir()
    files.input_path.write_bytes(data)


def _local_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_accepted_upload_reaches_the_worker(make: Make, tmp_path: Path) -> None:
    api, worker = make("api"), make("worker")
    _spool(api, PNG)
    api.store_input()
    api.drop_local()

    path = worker.fetch_input()
    assert path.read_bytes() == PNG
    worker.drop_local()
    if isinstance(worker.storage, Bucket):
        assert _local_files(tmp_path / "api") == [] and _local_files(tmp_path / "worker") == []
        assert worker.storage.size(worker.input_key) == len(PNG)


def test_a_missing_input_gives_the_worker_no_file(make: Make) -> None:
    assert not make("worker").fetch_input().exists()


def test_large_uploads_go_in_parts_and_come_back_whole(make: Make) -> None:
    api, worker = make("api", part_mb=5), make("worker", part_mb=5)
    data = bytes(range(256)) * (11 * 4096)  # 11 MiB: three parts of 5 MiB at most
    _spool(api, data)
    api.store_input()
    assert worker.fetch_input().read_bytes() == data
    if isinstance(bucket := api.storage, Bucket):
        assert bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []


def test_results_are_served_whole_from_any_process(make: Make) -> None:
    worker, api = make("worker"), make("api")
    assert not api.has_result("json") and api.stored_result("json") is None
    worker.write_result("markdown", b"# md\n")
    worker.write_result("json", b'{"v": 1}')
    worker.write_result("json", b'{"v": 2}')  # a second run's write replaces the first whole

    assert api.read_result("json") == b'{"v": 2}'
    stored = api.stored_result("json")
    assert stored is not None and stored.size == len(b'{"v": 2}')
    body = stored.path.read_bytes() if stored.path else b"".join(stored.chunks())
    assert body == b'{"v": 2}'
    assert api.has_result("markdown") and not api.has_result("text")


def test_image_crops(make: Make) -> None:
    worker, api = make("worker"), make("api")
    worker.write_image(IMAGE, PNG)
    stored = api.stored_image(IMAGE)
    assert stored is not None and stored.size == len(PNG)
    assert api.stored_image("p1-other.png") is None
    assert api.stored_image("../result.json") is None
    with pytest.raises(ValueError):
        worker.write_image("../x.png", PNG)


def test_the_kept_source_outlives_the_upload(make: Make) -> None:
    api, worker = make("api"), make("worker")
    _spool(api, PNG)
    api.store_input()
    worker.fetch_input()
    worker.keep_source()
    worker.keep_source()  # a second attempt's keep finds it kept
    worker.remove_input()

    assert not make("other").fetch_input().exists()
    assert api.has_source()
    with api.source_copy() as source:
        assert source.read_bytes() == PNG
    assert not source.exists() or not isinstance(api.storage, Bucket)


def test_an_archive_is_stored_only_when_rendered_whole(make: Make) -> None:
    api = make("api")
    with pytest.raises(RuntimeError), api.result_target("hocr") as target:
        target.write_bytes(b"<html>half")
        raise RuntimeError("renderer crashed")
    assert not api.has_result("hocr")

    with api.result_target("hocr") as target:
        target.write_bytes(b"<html>whole</html>")
    assert make("other-api").read_result("hocr") == b"<html>whole</html>"


def test_remove_all_leaves_nothing(make: Make, tmp_path: Path) -> None:
    api, worker = make("api"), make("worker")
    _spool(api, PNG)
    api.store_input()
    worker.fetch_input()
    worker.write_image(IMAGE, PNG)
    worker.write_result("json", b"{}")
    worker.keep_source()

    api.remove_all()
    worker.drop_local()
    assert not api.has_result("json") and not api.has_source() and api.stored_image(IMAGE) is None
    assert _local_files(tmp_path) == []
    if isinstance(api.storage, Bucket):
        assert list(api.storage.objects()) == []


def test_a_failed_multipart_upload_leaves_no_object_and_no_parts(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket_name = s3_server.new_bucket()
    bucket = bucket_of(_settings(tmp_path, "api", s3_server.env(bucket_name), part_mb=5))
    spool = tmp_path / "spool"
    spool.write_bytes(b"x" * (12 << 20))

    class DiskFailsMidway:
        """The spool's disk failing after the first part was read."""

        def __init__(self) -> None:
            self.file = open(spool, "rb")  # noqa: SIM115
            self.reads = 0

        def read(self, size: int) -> bytes:
            self.reads += 1
            if self.reads > 1:
                raise OSError(5, "Input/output error")
            return self.file.read(size)

    reader = DiskFailsMidway()
    with pytest.raises(OSError, match="Input/output"):
        bucket._put_parts(bucket.full_key("temp/" + "f" * 32 + "/input"), reader)
    reader.file.close()
    assert s3_server.keys(bucket_name) == []
    assert s3_server.open_uploads(bucket_name) == []
