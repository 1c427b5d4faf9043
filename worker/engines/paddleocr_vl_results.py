"""A PaddleOCRVLResult (paddlex 3.7.2) as this service's Recognition: blocks and page markdown.

What the real library gives that needs care (tests/paddle shows each):
- a formula reply `\\[E = mc^2\\]` comes back as ` $$ E = mc^2 $$ ` (spaces inside and out), in
  the block text and in the markdown;
- image blocks appear in the markdown as `<div ...><img src="imgs/img_in_image_box_...jpg" ...>
  </div>`, a link that resolves only beside the crops in `markdown_images` (path -> PIL image).
  The Recognition carries each linked crop, encoded, under a plain file name the link now uses
  (the worker stores it and points the link at the API); a link to a crop it cannot carry is
  left out (the figure block keeps its bbox).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping
from typing import Any

from shared.error_codes import ErrorCode
from shared.results import Block
from shared.storage import is_crop_name
from worker.engines.base import EngineError, Recognition

log = logging.getLogger(__name__)

# Layout labels of PP-DocLayoutV2/V3 (paddlex configs/pipelines/PaddleOCR-VL*.yaml) and the prompt
# labels used without layout detection, folded into this service's block types. Labels not
# listed here pass through unchanged.
_BLOCK_TYPES: dict[str, str] = {
    "doc_title": "title",
    "paragraph_title": "title",
    "abstract_title": "title",
    "content_title": "title",
    "reference_title": "title",
    "text": "text",
    "ocr": "text",
    "content": "text",
    "abstract": "text",
    "aside_text": "text",
    "vertical_text": "text",
    "reference": "text",
    "reference_content": "text",
    "spotting": "text",
    "figure_title": "caption",
    "table_title": "caption",
    "chart_title": "caption",
    "vision_footnote": "caption",
    "table": "table",
    "formula": "formula",
    "display_formula": "formula",
    "inline_formula": "formula",
    "formula_number": "formula_number",
    "image": "figure",
    "figure": "figure",
    "chart": "figure",
    "header_image": "figure",
    "footer_image": "figure",
    "seal": "seal",
    "algorithm": "code",
    "header": "header",
    "footer": "footer",
    "footnote": "footnote",
    "number": "page_number",
}

# ` $$ E = mc^2 $$ ` -> `$$E = mc^2$$` (also single `$`): paddlex pads the delimiters.
_PADDED_MATH = re.compile(r"^\s*(\$\$?)\s*(.*?)\s*\1\s*$", re.DOTALL)
# An image block's markdown: a centred div around an <img> of a crop; and a bare <img>.
_IMAGE_DIV = re.compile(r'<div[^>]*>\s*<img\s+src="([^"]*)"[^>]*>\s*</div>')
_IMG_TAG = re.compile(r'<img\s+src="([^"]*)"[^>]*>')
_NOT_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.-]+")
_JPEG_QUALITY = 90
_BLANK_RUNS = re.compile(r"\n{3,}")


def block_type(label: str) -> str:
    """This service's block type for a PaddleOCR-VL layout label."""
    label = label.strip().lower()
    return _BLOCK_TYPES.get(label, label or "text")


def tidy_formula(text: str) -> str:
    """`$$E = mc^2$$` for paddlex's ` $$ E = mc^2 $$ `; other text unchanged."""
    match = _PADDED_MATH.match(text)
    if match is None:
        return text
    delimiter, body = match.groups()
    return f"{delimiter}{body}{delimiter}"


def crop_name(path: str, taken: Mapping[str, object]) -> str:
    """A plain file name (shared.storage CROP_NAME_PATTERN) for paddlex's `imgs/...jpg` path,
    not in `taken`: `img_in_image_box_210_130_390_290.jpg`."""
    stem, dot, ext = _NOT_NAME_CHAR.sub("_", path.rsplit("/", 1)[-1]).rpartition(".")
    if not dot or ext.lower() not in ("jpg", "jpeg", "png"):
        stem, ext = f"{stem}{dot}{ext}", "png"
    stem = stem.replace("..", "_").lstrip("._-")[:100] or "image"
    ext = "png" if ext.lower() == "png" else "jpg"
    name, n = f"{stem}.{ext}", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.{ext}"
    return name


def encode_image(image: Any, name: str) -> bytes:
    """A crop (PIL image, or an RGB array) as the JPEG or PNG its name says."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    out = io.BytesIO()
    if name.endswith(".png"):
        image.save(out, format="PNG")
    else:
        image.convert("RGB").save(out, format="JPEG", quality=_JPEG_QUALITY)
    return out.getvalue()


def carry_images(markdown: str, images: Mapping[str, Any]) -> tuple[str, dict[str, bytes]]:
    """The crops the markdown links, encoded by plain name, and the markdown linking those
    names; a relative link to a crop that cannot be carried is left out with its div."""
    carried: dict[str, bytes] = {}
    names: dict[str, str] = {}  # paddlex's path -> our name
    for path, image in images.items():
        if f'src="{path}"' not in markdown:
            continue
        name = crop_name(path, carried)
        try:
            if not is_crop_name(name):
                raise ValueError(f"no usable file name for {path!r}")
            carried[name] = encode_image(image, name)
        except Exception as exc:  # noqa: BLE001 (a crop we cannot encode only loses its link)
            log.warning("leaving out the image crop %s: %s: %s", path, type(exc).__name__, exc)
            continue
        names[path] = name

    def relink(match: re.Match[str]) -> str:
        src = match.group(1)
        if src in carried:
            return match.group(0)
        if src in names:
            return match.group(0).replace(f'src="{src}"', f'src="{names[src]}"', 1)
        if src.startswith(("http://", "https://", "data:", "/")):
            return match.group(0)  # not a crop of this page
        return ""

    markdown = _IMG_TAG.sub(relink, _IMAGE_DIV.sub(relink, markdown))
    return markdown, carried


def tidy_markdown(markdown: str, formulas: list[str]) -> str:
    """The page markdown with formulas tidied and its blank runs folded."""
    for raw in formulas:
        markdown = markdown.replace(raw, tidy_formula(raw), 1)
    return _BLANK_RUNS.sub("\n\n", markdown).strip("\n")


def recognition_from_result(result: Any) -> Recognition:
    """Map one PaddleOCRVLResult (a dict subclass with `.json` and `.markdown`) to a Recognition."""
    if isinstance(result, dict) and "error" in result:
        # The pipeline yields {"error": ...} instead of a result when its settings are invalid.
        raise EngineError(ErrorCode.recognition_failed, f"PaddleOCRVL: {result['error']}")
    page = result.json["res"]
    blocks: list[Block] = []
    formulas: list[str] = []
    for item in page.get("parsing_res_list") or []:
        bbox = item.get("block_bbox")
        if bbox is None or len(bbox) != 4:
            log.warning("skipping a %s block without a 4-number bbox", item.get("block_label"))
            continue
        kind = block_type(str(item.get("block_label") or ""))
        # Tables come as HTML (the VL model's OTSL converted by PaddleX); kept as is.
        text = str(item.get("block_content") or "")
        if kind == "formula":
            formulas.append(text)
            text = tidy_formula(text)
        # parsing_res_list has no confidence: PaddleOCR-VL's VL model gives none per block.
        # It is in the model's reading order, one layout block (a whole paragraph, table or
        # formula) per item: each its own block, paragraph and line (docs/results.md).
        order = len(blocks)
        blocks.append(
            Block(
                type=kind,
                text=text,
                bbox=[float(v) for v in bbox],
                score=None,
                block=order,
                paragraph=order,
                line=order,
            )
        )
    page_markdown = result.markdown
    markdown = page_markdown.get("markdown_texts")
    if not isinstance(markdown, str):
        return Recognition(blocks=blocks)
    markdown, images = carry_images(markdown, page_markdown.get("markdown_images") or {})
    return Recognition(blocks=blocks, markdown=tidy_markdown(markdown, formulas), images=images)
