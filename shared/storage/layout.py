"""Where each file of a job lives: the keys, and the names a client's request may use.

A key is `<area>/<job id>/<name>`, built from the job id and fixed names only (a client's file
name is metadata in the job record, never part of a key). The areas are the same on both
backends: `temp` (the upload, from its acceptance until its job ends), `output` (results,
archive files, image crops, page pictures) and `sources` (a succeeded job's kept upload).
"""

from __future__ import annotations

import re

TEMP_AREA = "temp"  # uploads: TEMP_DIR/<id>/ on the local backend
OUTPUT_AREA = "output"  # results: OUTPUT_DIR/<id>/
# A succeeded job's upload, kept for format=pdf in sources/<id>/input: beside the results
# (removed with them), outside output/<id>/, which holds only what the result is.
SOURCES_DIR = "sources"  # OUTPUT_DIR/sources/<id>/
AREAS = (TEMP_AREA, OUTPUT_AREA, SOURCES_DIR)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
INPUT_NAME = "input"
# what a job's end writes into output/<id>/, all-or-nothing
JOB_END_FILES = {"json": "result.json", "markdown": "result.md", "text": "result.txt"}
# archive formats, rendered beside them on first request (api/archives/produce.py)
ARCHIVE_FILES = {"pdf": "result.pdf", "hocr": "result.hocr", "alto": "result.alto.xml"}
RESULT_FILES = {**JOB_END_FILES, **ARCHIVE_FILES}
# Image crops (figures an engine cut out of a page) in output/<id>/images/, served by
# GET /jobs/{id}/images/{name}. A name is `p<page>-<engine's name>`: no slash, no leading dot.
IMAGES_DIR = "images"
# An engine's own name for a crop (Recognition.images), made unique per job by the page prefix.
CROP_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,150}\.(jpg|png)"
IMAGE_NAME_PATTERN = rf"^p[0-9]{{1,6}}-{CROP_NAME_PATTERN}$"
_CROP_NAME = re.compile(CROP_NAME_PATTERN)
_IMAGE_NAME = re.compile(IMAGE_NAME_PATTERN)
IMAGE_MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
# Pictures of the source pages for the web page (/ui), rendered by the API on first request
# into output/<id>/pages/p<n>.jpg (api/page_images.py); removed with the job's results.
PAGES_DIR = "pages"
# A multi-range job's pages as each range stored them, until the job's end assembles them:
# temp/<id>/ranges/<k>.jsonl (one PageResult per line, crops already in images/).
RANGES_DIR = "ranges"


def is_job_id(name: str) -> bool:
    """True for the job ids keys and folders are made of."""
    return bool(_JOB_ID.match(name))


def is_crop_name(name: str) -> bool:
    """True for a plain file name an engine may give a crop (CROP_NAME_PATTERN, no `..`)."""
    return bool(_CROP_NAME.fullmatch(name)) and ".." not in name


def is_image_name(name: str) -> bool:
    """True for the names of stored image crops (IMAGE_NAME_PATTERN, no `..`)."""
    return bool(_IMAGE_NAME.fullmatch(name)) and ".." not in name


def job_key(area: str, job_id: str, *names: str) -> str:
    """The key of a job's file: `<area>/<job id>/<names...>` (ValueError for a bad job id)."""
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return "/".join((area, job_id, *names))


def job_of(key: str) -> tuple[str, str] | None:
    """(area, job id) of a job's key, None for any other key (retention's view)."""
    area, _, rest = key.partition("/")
    job_id = rest.partition("/")[0]
    return (area, job_id) if area in AREAS and is_job_id(job_id) else None
