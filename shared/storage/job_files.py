"""One job's files, as the API and the worker see them, on whichever backend STORAGE_URL names.

`JobFiles` knows the layout (shared/storage/layout.py: upload, kept source, results, archive
files, image crops, page pictures) and composes an ObjectStore (shared/storage/backend.py) for
where they live. TEMP_DIR/<id>/ is the process's working folder for the job: the upload's
spool and a worker's copy of the input; on the local backend it is also where the input is
stored, so nothing is copied there.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import StorageUnavailable
from shared.results import PageResult
from shared.storage.backend import ObjectStore, StoredFile
from shared.storage.disk import FILE_MODE, make_shared_dir, scratch_path, spool
from shared.storage.layout import (
    IMAGES_DIR,
    INPUT_NAME,
    OUTPUT_AREA,
    PAGES_DIR,
    RANGES_DIR,
    RESULT_FILES,
    SOURCES_DIR,
    TEMP_AREA,
    is_image_name,
    job_key,
)
from shared.storage.local import LocalStore

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)


class JobFiles:
    """The files of one job: its keys come from the job id only (ValueError for anything else).

    `storage` is where they live; None means the local folders TEMP_DIR and OUTPUT_DIR."""

    def __init__(
        self,
        temp_dir: Path,
        output_dir: Path,
        job_id: str,
        storage: ObjectStore | None = None,
    ) -> None:
        self.input_key = job_key(TEMP_AREA, job_id, INPUT_NAME)
        self.source_key = job_key(SOURCES_DIR, job_id, INPUT_NAME)
        self.job_id = job_id
        self.storage: ObjectStore = LocalStore(temp_dir, output_dir) if storage is None else storage
        self.temp_dir = temp_dir
        self.input_dir = temp_dir / job_id  # this process's working folder for the job
        self.input_path = self.input_dir / INPUT_NAME

    # -- keys --
    def result_key(self, fmt: str) -> str:
        return job_key(OUTPUT_AREA, self.job_id, RESULT_FILES[fmt])

    def image_key(self, name: str) -> str:
        """The key of the crop called `name`; ValueError unless `name` is an image name."""
        if not is_image_name(name):
            raise ValueError(f"not an image name: {name!r}")
        return job_key(OUTPUT_AREA, self.job_id, IMAGES_DIR, name)

    def page_image_key(self, index: int) -> str:
        """The rendered picture of page `index` (1-based) of the source."""
        return job_key(OUTPUT_AREA, self.job_id, PAGES_DIR, f"p{int(index)}.jpg")

    # -- the upload (API) and the worker's copy of it --
    def make_input_dir(self) -> Path:
        make_shared_dir(self.input_dir)
        return self.input_dir

    def store_input(self) -> None:
        """The API, once the upload in input_path was accepted: make it the job's stored input
        (on the local backend it already is)."""
        self.storage.put(self.input_key, self.input_path)

    def discard_spool(self) -> None:
        """The API: a submission by reference wrote no upload; its empty spool goes."""
        self.input_path.unlink(missing_ok=True)
        with suppress(OSError):
            self.input_dir.rmdir()

    def has_input(self) -> bool:
        """Is the job's input stored (whole: every backend writes it at once)?"""
        return self.storage.size(self.input_key) is not None

    def store_fetched(self, fetched: Path) -> Path:
        """The worker: a source it fetched into `fetched` (a scratch file in the job's working
        folder) becomes the job's stored input; the local path to read it from this run."""
        stored_here = self.storage.local_path(self.input_key)
        if stored_here is not None:  # the local backend: moved into place at once
            os.chmod(fetched, FILE_MODE)
            os.replace(fetched, stored_here)
            return stored_here
        self.storage.put(self.input_key, fetched)
        os.replace(fetched, self.input_path)  # this run's copy: no download back
        return self.input_path

    def fetch_input(self, copy: str | None = None) -> Path:
        """The worker: a local path of the job's input for this run. None stored leaves no
        file (the job fails input_missing, on either backend). `copy` names a copy of its own
        in the working folder (a page range: several of one job may run in one process at
        once), dropped with `drop_local(copy)`."""
        stored_here = self.storage.local_path(self.input_key)
        if stored_here is not None:
            return stored_here
        self.make_input_dir()
        path = self.input_path if copy is None else self._copy_path(copy)
        with suppress(FileNotFoundError):
            spool(self.storage.open(self.input_key), path)
        return path

    def drop_local(self, copy: str | None = None) -> None:
        """Remove what this process holds locally for the job: its working folder, or only the
        copy named `copy` (nothing when its working folder is where the input is stored)."""
        if self.storage.local_path(self.input_key) == self.input_path:
            return
        if copy is None:
            shutil.rmtree(self.input_dir, ignore_errors=True)
            return
        self._copy_path(copy).unlink(missing_ok=True)
        with suppress(OSError):  # the folder goes with the last copy in it
            self.input_dir.rmdir()

    def _copy_path(self, copy: str) -> Path:
        if not copy or "/" in copy or copy.startswith("."):
            raise ValueError(f"not a copy name: {copy!r}")
        return self.input_dir / copy

    def keep_source(self) -> None:
        """Before the job is marked succeeded: the upload also as the kept source, where
        format=pdf reads its pages. The upload stays for a retry until remove_input(), and a
        succeeded job's source is complete from the moment the job is visible as succeeded."""
        if self.storage.size(self.source_key) is None:  # else a previous attempt kept it
            self.storage.copy(self.input_key, self.source_key)

    def remove_input(self) -> None:
        shutil.rmtree(self.input_dir, ignore_errors=True)
        with self._left_to_retention("its upload"):
            self.storage.delete([self.input_key])
            self.storage.delete_under(self._ranges_prefix)

    def remove_all(self) -> None:
        shutil.rmtree(self.input_dir, ignore_errors=True)
        with self._left_to_retention("its objects"):
            self.storage.delete([self.input_key, self.source_key])
            self.storage.delete_under(self._ranges_prefix)
            self.storage.delete_under(job_key(OUTPUT_AREA, self.job_id) + "/")

    @contextmanager
    def _left_to_retention(self, what: str) -> Iterator[None]:
        """A removal the bucket refuses now is the retention sweep's to finish: the job's
        state has moved on, and the objects of a job without a record go after the grace."""
        try:
            yield
        except StorageUnavailable as exc:
            log.warning("job=%s: %s stay in storage for retention: %s", self.job_id, what, exc)

    # -- a multi-range job's pages, range by range, until the last range assembles them --
    @property
    def _ranges_prefix(self) -> str:
        return job_key(TEMP_AREA, self.job_id, RANGES_DIR) + "/"

    def range_key(self, index: int) -> str:
        return job_key(TEMP_AREA, self.job_id, RANGES_DIR, f"{int(index)}.jsonl")

    def write_range(self, index: int, pages: list[PageResult]) -> None:
        """Range `index`'s pages, whole or not at all: their crops first (final names in
        images/), then one PageResult per line."""
        for page in pages:
            for name, data in page.images.items():
                self.write_image(name, data)
        lines = b"".join(page.model_dump_json().encode() + b"\n" for page in pages)
        self.storage.put(self.range_key(index), lines)

    def read_range(self, index: int) -> Iterator[PageResult]:
        """The pages range `index` stored, in order (FileNotFoundError when it stored none)."""
        pending = b""
        for chunk in self.storage.open(self.range_key(index)):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line:
                    yield PageResult.model_validate_json(line)
        if pending.strip():
            yield PageResult.model_validate_json(pending)

    # -- results, crops and page pictures: each written whole or not at all --
    def write_result(self, fmt: str, data: bytes) -> None:
        """A failed write (a full disk: OSError ENOSPC) leaves nothing behind."""
        self.storage.put(self.result_key(fmt), data)

    def write_image(self, name: str, data: bytes) -> None:
        """One image crop (ValueError for a bad name)."""
        self.storage.put(self.image_key(name), data)

    def write_page_image(self, index: int, data: bytes) -> None:
        self.storage.put(self.page_image_key(index), data)

    def has_result(self, fmt: str) -> bool:
        return self.storage.size(self.result_key(fmt)) is not None

    def read_result(self, fmt: str) -> bytes:
        """A stored result's bytes; FileNotFoundError when it is not stored."""
        return b"".join(self.storage.open(self.result_key(fmt)))

    def stored_result(self, fmt: str) -> StoredFile | None:
        return self._stored(self.result_key(fmt))

    def stored_image(self, name: str) -> StoredFile | None:
        """The crop called `name`, None when there is none (or the name is no image name)."""
        return self._stored(self.image_key(name)) if is_image_name(name) else None

    def stored_page_image(self, index: int) -> StoredFile | None:
        """The picture of page `index`, None until it was rendered (api/page_images.py)."""
        return self._stored(self.page_image_key(index))

    def _stored(self, key: str) -> StoredFile | None:
        size = self.storage.size(key)
        if size is None:
            return None
        path = self.storage.local_path(key)
        if path is not None:
            return StoredFile(size=size, path=path, key=key)
        return StoredFile(size=size, chunks=partial(self.storage.open, key), key=key)

    # -- archive files (api/archives) --
    def has_source(self) -> bool:
        return self.storage.size(self.source_key) is not None

    @contextmanager
    def source_copy(self) -> Iterator[Path]:
        """A local path of the kept source for the block (a scratch copy where the backend
        keeps no files)."""
        stored_here = self.storage.local_path(self.source_key)
        if stored_here is not None:
            yield stored_here
            return
        path = scratch_path(self.temp_dir, f"source-{self.job_id}")
        try:
            spool(self.storage.open(self.source_key), path)
            yield path
        finally:
            path.unlink(missing_ok=True)

    @contextmanager
    def result_target(self, fmt: str) -> Iterator[Path]:
        """A temp path to write result `fmt` into (json, markdown, text, an archive format);
        a whole file becomes the stored result when the block ends well, nothing when it
        fails."""
        with self.storage.writing(self.result_key(fmt), self.temp_dir) as target:
            yield target

    def render_lock_path(self, name: str) -> Path:
        """The file whose flock admits one renderer of the job's file `name` (an archive format,
        a page picture) at a time on this host: in the job's output folder on the local backend;
        in TEMP_DIR otherwise (across pods two may render, each storing a whole file: the last
        write wins, both are complete)."""
        output_here = self.storage.local_path(job_key(OUTPUT_AREA, self.job_id))
        if output_here is not None:
            return output_here / f".{name}.lock"
        return self.temp_dir / f".{self.job_id}.{name}.lock"

    # -- where the local backend keeps each file (tests and benchmarks look at the folders) --
    def _file(self, key: str) -> Path:
        path = self.storage.local_path(key)
        if path is None:
            raise TypeError(f"{type(self.storage).__name__} keeps no local files")
        return path

    @property
    def output_dir(self) -> Path:
        return self._file(job_key(OUTPUT_AREA, self.job_id))

    @property
    def source_dir(self) -> Path:
        return self._file(job_key(SOURCES_DIR, self.job_id))

    @property
    def source_path(self) -> Path:
        return self._file(self.source_key)

    def result_path(self, fmt: str) -> Path:
        return self._file(self.result_key(fmt))

    @property
    def images_dir(self) -> Path:
        return self._file(job_key(OUTPUT_AREA, self.job_id, IMAGES_DIR))

    def image_path(self, name: str) -> Path:
        """The stored crop called `name`; ValueError unless `name` is an image name."""
        return self._file(self.image_key(name))

    def page_image_path(self, index: int) -> Path:
        return self._file(self.page_image_key(index))


def storage_of(settings: Settings) -> ObjectStore:
    """The backend STORAGE_URL names: TEMP_DIR/OUTPUT_DIR, or the bucket."""
    if not settings.storage_url:
        return LocalStore(settings.temp_dir, settings.output_dir)
    from shared.storage.s3 import bucket_of  # boto3 only when a bucket is used

    return bucket_of(settings)


def job_files(settings: Settings, job_id: str) -> JobFiles:
    """The job's files where STORAGE_URL keeps them."""
    return JobFiles(settings.temp_dir, settings.output_dir, job_id, storage_of(settings))
