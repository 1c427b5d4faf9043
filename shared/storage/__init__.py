"""Where job files live, and atomic writes. Client file names never become paths.

`JobFiles` is every file a job has: its upload, kept source, results, archive files and image
crops. This module's JobFiles keeps them in TEMP_DIR and OUTPUT_DIR (STORAGE_URL empty);
shared/storage/s3.py's keeps them in a bucket (STORAGE_URL=s3://bucket/prefix), the local
folders holding only what one process works on while a request or a job lasts.
`job_files(settings, job_id)` picks the one STORAGE_URL names.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
INPUT_NAME = "input"
# what a job's end writes into OUTPUT_DIR/<id>/, all-or-nothing
JOB_END_FILES = {"json": "result.json", "markdown": "result.md", "text": "result.txt"}
# archive formats, rendered beside them on first request (api/archives/produce.py)
ARCHIVE_FILES = {"pdf": "result.pdf", "hocr": "result.hocr", "alto": "result.alto.xml"}
RESULT_FILES = {**JOB_END_FILES, **ARCHIVE_FILES}
# A succeeded job's upload, kept for format=pdf in OUTPUT_DIR/sources/<id>/input: beside the
# results (removed with them), outside OUTPUT_DIR/<id>/, which holds only what the result is.
SOURCES_DIR = "sources"
# Image crops (figures an engine cut out of a page) in OUTPUT_DIR/<id>/images/, served by
# GET /jobs/{id}/images/{name}. A name is `p<page>-<engine's name>`: no slash, no leading dot.
IMAGES_DIR = "images"
# An engine's own name for a crop (Recognition.images), made unique per job by the page prefix.
CROP_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,150}\.(jpg|png)"
IMAGE_NAME_PATTERN = rf"^p[0-9]{{1,6}}-{CROP_NAME_PATTERN}$"
_CROP_NAME = re.compile(CROP_NAME_PATTERN)
_IMAGE_NAME = re.compile(IMAGE_NAME_PATTERN)
IMAGE_MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
# Pictures of the source pages for the web page (/ui), rendered by the API on first request
# into OUTPUT_DIR/<id>/pages/p<n>.jpg (api/page_images.py); removed with the job's results.
PAGES_DIR = "pages"
# Folders group-writable, files group-readable: a non-root container user shares them.
DIR_MODE = 0o2775
FILE_MODE = 0o664


def is_job_id(name: str) -> bool:
    """True for the names of job folders under TEMP_DIR and OUTPUT_DIR."""
    return bool(_JOB_ID.match(name))


def is_crop_name(name: str) -> bool:
    """True for a plain file name an engine may give a crop (CROP_NAME_PATTERN, no `..`)."""
    return bool(_CROP_NAME.fullmatch(name)) and ".." not in name


def is_image_name(name: str) -> bool:
    """True for the names of stored image crops (IMAGE_NAME_PATTERN, no `..`)."""
    return bool(_IMAGE_NAME.fullmatch(name)) and ".." not in name


def hide_dirs(message: str, dirs: dict[str, Path]) -> str:
    """`message` with each folder's path replaced by its setting's name: clients see error
    messages, and the server's layout is none of their business."""
    for label, path in dirs.items():
        message = message.replace(str(path), label)
    return message


class DirectoryNotWritable(Exception):
    """A configured directory cannot be created or written."""


def make_shared_dir(path: Path) -> None:
    """mkdir with DIR_MODE really applied: mkdir's mode passes through the umask and loses
    setgid. A folder that already exists is left alone (it may belong to another user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
        return
    os.chmod(path, DIR_MODE)


def open_shared_file(path: Path) -> int:
    """Create (or empty) `path` with FILE_MODE whatever the process umask; a write-only fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_shared_file(path: Path) -> None:
    """Create (or empty) `path` with FILE_MODE whatever the process umask."""
    os.close(open_shared_file(path))


def ensure_writable_dir(path: Path, label: str) -> Path:
    """Create `path` if needed and prove it writable with a probe file; say clearly if not."""
    try:
        make_shared_dir(path)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise DirectoryNotWritable(
            f"{label}={path} is not writable by uid {os.getuid()}: {exc.strerror or exc}. "
            f"Create it and give this user write access, or point {label} elsewhere."
        ) from exc
    return path


@contextmanager
def atomic_target(target: Path) -> Iterator[Path]:
    """A temp path beside `target` to write; when the block ends well it is fsynced and moved
    onto `target` (os.replace), else removed: a reader never sees half a file."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(target: Path, data: bytes) -> Path:
    """Temp file beside `target`, fsync, then os.replace; a failed write leaves no temp file."""
    with atomic_target(target) as tmp:
        tmp.write_bytes(data)
    return target


@dataclass(frozen=True)
class StoredFile:
    """A stored file to serve: a local path, or the chunks of an object and its size."""

    size: int
    path: Path | None = None
    chunks: Callable[[], Iterator[bytes]] | None = None


class JobFiles:
    """Paths of one job's upload and results under TEMP_DIR and OUTPUT_DIR.

    The storage-neutral methods (store_input, fetch_input, drop_local, stored_result, ...) are
    what the API and the worker call, so the S3 variant (shared/storage/s3.py) covers them."""

    def __init__(self, temp_dir: Path, output_dir: Path, job_id: str) -> None:
        if not _JOB_ID.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        self.job_id = job_id
        self.input_dir = temp_dir / job_id
        self.output_dir = output_dir / job_id
        self.source_dir = output_dir / SOURCES_DIR / job_id

    @property
    def input_path(self) -> Path:
        return self.input_dir / INPUT_NAME

    @property
    def source_path(self) -> Path:
        return self.source_dir / INPUT_NAME

    def result_path(self, fmt: str) -> Path:
        return self.output_dir / RESULT_FILES[fmt]

    @property
    def images_dir(self) -> Path:
        return self.output_dir / IMAGES_DIR

    def image_path(self, name: str) -> Path:
        """The stored crop called `name`; ValueError unless `name` is an image name."""
        if not is_image_name(name):
            raise ValueError(f"not an image name: {name!r}")
        return self.images_dir / name

    def page_image_path(self, index: int) -> Path:
        """The rendered picture of page `index` (1-based) of the source, once it was asked for."""
        return self.output_dir / PAGES_DIR / f"p{int(index)}.jpg"

    def write_page_image(self, index: int, data: bytes) -> Path:
        """Write the picture of page `index` atomically into pages/."""
        target = self.page_image_path(index)
        make_shared_dir(target.parent)
        return write_atomically(target, data)

    def make_input_dir(self) -> Path:
        make_shared_dir(self.input_dir)
        return self.input_dir

    def write_result(self, fmt: str, data: bytes) -> Path:
        """Write one result file atomically: temp file beside it, fsync, then os.replace.

        A write that fails (a full disk) leaves no temp file behind."""
        make_shared_dir(self.output_dir)
        return write_atomically(self.result_path(fmt), data)

    def write_image(self, name: str, data: bytes) -> Path:
        """Write one image crop atomically into images/ (ValueError for a bad name)."""
        target = self.image_path(name)
        make_shared_dir(self.images_dir)
        return write_atomically(target, data)

    def remove_input(self) -> None:
        shutil.rmtree(self.input_dir, ignore_errors=True)

    def keep_source(self) -> None:
        """Before the job is marked succeeded: the upload also in OUTPUT_DIR/sources/<id>/, where
        format=pdf reads its pages. A hard link (a copy, written atomically, across filesystems),
        so the upload stays for a retry until remove_input(), and a succeeded job's source is
        complete from the moment the job is visible as succeeded."""
        if self.source_path.is_file():
            return  # a previous attempt of this job kept it
        make_shared_dir(self.source_dir.parent)
        make_shared_dir(self.source_dir)
        try:
            os.link(self.input_path, self.source_path)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            with atomic_target(self.source_path) as tmp:
                shutil.copyfile(self.input_path, tmp)

    def remove_all(self) -> None:
        shutil.rmtree(self.input_dir, ignore_errors=True)
        shutil.rmtree(self.output_dir, ignore_errors=True)
        shutil.rmtree(self.source_dir, ignore_errors=True)

    # -- the storage-neutral view (the S3 variant overrides each) --
    def store_input(self) -> None:
        """The API, once the upload in input_path was accepted: make it the job's stored input
        (here it already is)."""

    def fetch_input(self) -> Path:
        """The worker: a local path of the job's input for this run."""
        return self.input_path

    def drop_local(self) -> None:
        """Remove what this process holds locally for the job (here the files are the store)."""

    def has_result(self, fmt: str) -> bool:
        return self.result_path(fmt).is_file()

    def read_result(self, fmt: str) -> bytes:
        """A stored result's bytes; FileNotFoundError when it is not stored."""
        return self.result_path(fmt).read_bytes()

    def stored_result(self, fmt: str) -> StoredFile | None:
        return _stored(self.result_path(fmt))

    def stored_image(self, name: str) -> StoredFile | None:
        """The crop called `name`, None when there is none (or the name is no image name)."""
        return _stored(self.image_path(name)) if is_image_name(name) else None

    def stored_page_image(self, index: int) -> StoredFile | None:
        """The picture of page `index`, None until it was rendered (api/page_images.py)."""
        return _stored(self.page_image_path(index))

    def has_source(self) -> bool:
        return self.source_path.is_file()

    @contextmanager
    def source_copy(self) -> Iterator[Path]:
        """A local path of the kept source for the block."""
        yield self.source_path

    @contextmanager
    def archive_target(self, fmt: str) -> Iterator[Path]:
        """A temp path to render `fmt` into; a whole file becomes the stored result when the
        block ends well, nothing when it fails."""
        make_shared_dir(self.output_dir)
        with atomic_target(self.result_path(fmt)) as tmp:
            yield tmp

    def render_lock_path(self, fmt: str) -> Path:
        """The file whose flock admits one renderer of `fmt` at a time on this host."""
        return self.output_dir / f".{fmt}.lock"


def _stored(path: Path) -> StoredFile | None:
    try:
        size = path.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        return None
    return StoredFile(size=size, path=path) if path.is_file() else None


def job_files(settings: Settings, job_id: str) -> JobFiles:
    """The job's files where STORAGE_URL keeps them: TEMP_DIR/OUTPUT_DIR, or the bucket."""
    if not settings.storage_url:
        return JobFiles(settings.temp_dir, settings.output_dir, job_id)
    from shared.storage.s3 import S3JobFiles, bucket_of  # boto3 only when a bucket is used

    return S3JobFiles(settings.temp_dir, settings.output_dir, job_id, bucket_of(settings))


def scratch_path(temp_dir: Path, kind: str) -> Path:
    """A fresh dot-file name in TEMP_DIR for a short-lived local file (never a job's folder)."""
    return temp_dir / f".{kind}-{uuid.uuid4().hex}"
