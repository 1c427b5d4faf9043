"""The OCR result model: document -> pages -> blocks. Written by the worker, served by the API."""

from __future__ import annotations

from pydantic import BaseModel, Field, PrivateAttr

from shared.error_codes import ErrorCode


class Block(BaseModel):
    """One recognized region of a page."""

    type: str = Field("text", description="Block kind: text, title, table, formula, figure, ...")
    text: str = Field(
        description="Recognized text (tables: markdown or HTML as the engine gives it)"
    )
    bbox: list[float] = Field(
        description="[x0, y0, x1, y1] in page pixels, origin top-left", min_length=4, max_length=4
    )
    score: float | None = Field(None, description="Engine confidence 0..1, when it gives one")
    # Reading-order ids (docs/results.md, "Reading order"); None in results made before them,
    # for a PDF's own text layer and with READING_ORDER=engine.
    block: int | None = Field(
        None,
        ge=0,
        description="Layout block (a column's piece of text, a table, a vertical line; for "
        "paddleocr-vl its layout block) this box belongs to, numbered from 0 in reading order",
    )
    paragraph: int | None = Field(
        None, ge=0, description="Paragraph of the page, numbered from 0 in reading order"
    )
    line: int | None = Field(
        None,
        ge=0,
        description="Text line (row) of the page, numbered from 0 in reading order; the boxes "
        "of one row (a key and its value, a table row's cells) share it",
    )


class PageError(BaseModel):
    """Why one page could not be read (its job went on with the others)."""

    code: ErrorCode
    message: str


class PageResult(BaseModel):
    """One page of the document, numbered from 1."""

    index: int = Field(ge=1)
    width: int
    height: int
    dpi: int | None = None
    rotation: int = Field(
        0,
        description="Degrees (counter-clockwise) the page image was turned to read it upright; "
        "width, height and bboxes refer to the upright page",
    )
    source: str = Field("ocr", description="`ocr`, or `text_layer` for a PDF's embedded text")
    engine: str | None = Field(None, description="Engine that read this page")
    blocks: list[Block] = []
    markdown: str = Field(
        "",
        description="Page markdown; a figure the engine cut out links its crop as "
        "`/jobs/<id>/images/<name>` (relative to the API root)",
    )
    text: str = ""
    error: PageError | None = Field(
        None,
        description="Set when this page could not be read (on_page_error=continue): its code "
        "and message; the page then has no blocks, and keeps its number",
    )
    # The crops the markdown links (stored name -> encoded JPEG/PNG), written with the result
    # into OUTPUT_DIR/<id>/images/; never part of result.json.
    _images: dict[str, bytes] = PrivateAttr(default_factory=dict)
    # the engine time spent on this page (its share of a batch): the tenant's usage, not JSON
    _engine_seconds: float = PrivateAttr(0.0)

    @property
    def images(self) -> dict[str, bytes]:
        return self._images

    @property
    def engine_seconds(self) -> float:
        return self._engine_seconds

    @engine_seconds.setter
    def engine_seconds(self, seconds: float) -> None:
        self._engine_seconds = seconds


class DocumentResult(BaseModel):
    """The whole result of one job, as stored in result.json."""

    job_id: str
    engine: str
    pages: list[PageResult]
    text: str = Field(description="Plain text of all pages, pages separated by a form feed")
    markdown: str = Field(description="Markdown of all pages, joined with page markers")
