"""Per-job options sent as form fields beside the file, validated in the API, read by the worker."""

from __future__ import annotations

import enum
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.callback_urls import MAX_CALLBACK_URL, CallbackRefused, parse_callback_url
from shared.errors import InvalidCallbackUrl, InvalidOption

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
MAX_PAGE_SPEC = 200  # characters


class Language(enum.StrEnum):
    auto = "auto"
    ru = "ru"
    en = "en"


class TextLayer(enum.StrEnum):
    ocr = "ocr"  # always OCR the rendered page (default)
    use = "use"  # take a PDF page's embedded text when it has any; OCR pages without one


class OnPageError(enum.StrEnum):
    """What a page that cannot be read does to its job."""

    continue_ = "continue"  # the page is recorded as failed; the other pages go on
    fail = "fail"  # all or nothing: the first failed page fails the job with its code


class CallbackEvents(enum.StrEnum):
    end = "end"  # succeeded, failed, canceled (default)
    all = "all"  # also queued, running, each page, requeued


class Priority(enum.StrEnum):
    """Which queue of its engine a job waits in; workers take the highest first."""

    high = "high"  # one person waiting for one scan
    normal = "normal"  # the default
    batch = "batch"  # folders and scripts: served when nothing more urgent waits


class Engine(enum.StrEnum):
    """Engine kinds a worker can serve (its OCR_ENGINE); each has its own queues."""

    rapidocr = "rapidocr"
    tesseract = "tesseract"
    paddleocr_vl = "paddleocr-vl"


class JobOptions(BaseModel):
    """Form fields of POST /jobs besides `file`. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pages: str | None = Field(
        None, description="Pages to process, 1-based, e.g. `1-3,7`; default all"
    )
    dpi: int | None = Field(None, ge=72, le=600, description="PDF render resolution (200)")
    language: Language = Field(
        Language.auto,
        description="Script hint: `ru` (Cyrillic+Latin), `en` (Latin), `auto` (detected per page)",
    )
    text_layer: TextLayer = Field(
        TextLayer.ocr, description="`use`: take a PDF page's embedded text instead of OCR"
    )
    priority: Priority = Field(
        Priority.normal,
        description="`high`, `normal` or `batch`: workers take waiting `high` jobs first, "
        "`batch` last (the `ocrq` CLI sends `batch` for folders)",
    )
    engine: Engine | None = Field(
        None,
        description="Engine kind of the workers that run the job (their OCR_ENGINE); default "
        "DEFAULT_ENGINE, else the one kind live workers serve; 503 engine_not_served when "
        "workers are live but none serves it",
    )

    on_page_error: OnPageError = Field(
        OnPageError.continue_,
        description="`continue`: a page that cannot be read is recorded as failed (its own "
        "`error` in the result, `progress.pages_failed`) and the other pages go on; the job "
        "fails only when every page failed. `fail`: the first failed page fails the job",
    )
    callback_url: str | None = Field(
        None,
        max_length=MAX_CALLBACK_URL,
        description="http(s) URL that gets a signed POST when the job ends (see "
        "docs/webhooks.md); default: the API key's callback=. Private, loopback and metadata "
        "addresses are refused (422 invalid_callback_url) unless CALLBACK_ALLOWED_NETWORKS",
    )
    callback_events: CallbackEvents = Field(
        CallbackEvents.end,
        description="`end`: succeeded, failed, canceled; `all`: every event, pages included",
    )

    @field_validator("callback_url")
    @classmethod
    def _check_callback_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            parse_callback_url(value.strip())
        except CallbackRefused as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @field_validator("pages")
    @classmethod
    def _check_pages(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_page_spec(value)  # raises ValueError with a readable message
        return value.replace(" ", "")

    def selected_pages(self, page_count: int) -> list[int]:
        """The 1-based page numbers to process, in order, or ValueError if out of range."""
        if self.pages is None:
            return list(range(1, page_count + 1))
        wanted = parse_page_spec(self.pages)
        beyond = [p for p in wanted if p > page_count]
        if beyond:
            raise ValueError(
                f"pages {self.pages!r} asks for page {beyond[0]} but the document has "
                f"{page_count} page(s)"
            )
        return wanted


def parse_page_spec(spec: str) -> list[int]:
    """`1-3,7` -> [1, 2, 3, 7]: sorted, without duplicates; ValueError on bad syntax."""
    if len(spec) > MAX_PAGE_SPEC:
        raise ValueError("page list is too long")
    pages: set[int] = set()
    for part in spec.split(","):
        match = _RANGE.match(part)
        if not match:
            raise ValueError(f"{part.strip()!r} is not a page or range like 1-3")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if first < 1 or last < first:
            raise ValueError(f"{part.strip()!r}: pages start at 1 and ranges go upwards")
        if last - first > 100_000:
            raise ValueError(f"{part.strip()!r}: range too large")
        pages.update(range(first, last + 1))
    return sorted(pages)


def parse_options(fields: dict[str, str]) -> JobOptions:
    """Validate raw form fields; InvalidOption (422) names the bad or unknown field, and
    InvalidCallbackUrl (422) a bad callback_url."""
    try:
        return JobOptions.model_validate(fields)
    except ValidationError as exc:
        problems, names = [], set()
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "form"
            names.add(name)
            message = (
                f"unknown field (accepted: {accepted_fields()})"
                if err["type"] == "extra_forbidden"
                else err["msg"].removeprefix("Value error, ")
            )
            problems.append(f"{name}: {message}")
        error = InvalidCallbackUrl if names == {"callback_url"} else InvalidOption
        raise error("; ".join(problems)) from None


def accepted_fields() -> str:
    """The form fields POST /jobs takes, from the model itself (never a hand-kept list)."""
    return ", ".join(["file", *JobOptions.model_fields])
