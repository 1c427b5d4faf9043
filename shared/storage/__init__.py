"""Where job files live, and atomic writes. Client file names never become keys or paths.

- `layout`: the keys of a job's files (`<area>/<job id>/<name>`) and the names clients may use;
- `backend`: the storage interface (`ObjectStore`), a handful of operations;
- `local` (`LocalStore`, TEMP_DIR and OUTPUT_DIR) and `s3` (`Bucket`, STORAGE_URL=s3://...):
  its two implementations, siblings;
- `job_files`: `JobFiles`, one job's files on either backend, what the API and the worker call;
  `job_files(settings, job_id)` picks the backend STORAGE_URL names;
- `disk`: files on this machine (shared modes, atomic writes, scratch names).
"""

from shared.storage.backend import ObjectStore, StoredFile, StoredObject
from shared.storage.disk import (
    DIR_MODE,
    FILE_MODE,
    DirectoryNotWritable,
    atomic_target,
    create_shared_file,
    ensure_writable_dir,
    hide_dirs,
    is_disk_full,
    make_shared_dir,
    open_shared_file,
    scratch_path,
    write_atomically,
)
from shared.storage.job_files import JobFiles, job_files, storage_of
from shared.storage.layout import (
    ARCHIVE_FILES,
    CROP_NAME_PATTERN,
    IMAGE_MEDIA_TYPES,
    IMAGE_NAME_PATTERN,
    IMAGES_DIR,
    INPUT_NAME,
    JOB_END_FILES,
    PAGES_DIR,
    RESULT_FILES,
    SOURCES_DIR,
    is_crop_name,
    is_image_name,
    is_job_id,
)
from shared.storage.local import LocalStore

__all__ = [
    "ARCHIVE_FILES",
    "CROP_NAME_PATTERN",
    "DIR_MODE",
    "FILE_MODE",
    "IMAGES_DIR",
    "IMAGE_MEDIA_TYPES",
    "IMAGE_NAME_PATTERN",
    "INPUT_NAME",
    "JOB_END_FILES",
    "PAGES_DIR",
    "RESULT_FILES",
    "SOURCES_DIR",
    "DirectoryNotWritable",
    "JobFiles",
    "LocalStore",
    "ObjectStore",
    "StoredFile",
    "StoredObject",
    "atomic_target",
    "create_shared_file",
    "ensure_writable_dir",
    "hide_dirs",
    "is_crop_name",
    "is_disk_full",
    "is_image_name",
    "is_job_id",
    "job_files",
    "make_shared_dir",
    "open_shared_file",
    "scratch_path",
    "storage_of",
    "write_atomically",
]
