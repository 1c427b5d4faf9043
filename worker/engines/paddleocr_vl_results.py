"""A PaddleOCRVLResult (paddlex 3.7.2) as this service's Recognition: blocks and page markdown.

What the real library gives that needs care (tests/paddle shows each):
- a formula reply `\\[E = mc^2\\]` comes back as ` $$ E = mc^2 $$ ` (spaces inside and out), in
  the block text and in the markdown;
- image blocks appear in the markdown as `<div ...><img src="imgs/img_in_image_box_...jpg" ...>
  </div>`, a link that resolves only beside the crops in `markdown_images`. This service does
  not store the crops, so those links are left out (the figure block keeps its bbox).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from shared.results import Block
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
# An image block's markdown: a centred div around an <img> of a crop paddlex did not save.
_IMAGE_DIV = re.compile(r'<div[^>]*>\s*<img\s+src="imgs/[^"]*"[^>]*>\s*</div>')
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


def tidy_markdown(markdown: str, formulas: list[str]) -> str:
    """The page markdown with formulas tidied and links to unsaved image crops left out."""
    for raw in formulas:
        markdown = markdown.replace(raw, tidy_formula(raw), 1)
    markdown = _IMAGE_DIV.sub("", markdown)
    return _BLANK_RUNS.sub("\n\n", markdown).strip("\n")


def recognition_from_result(result: Any) -> Recognition:
    """Map one PaddleOCRVLResult (a dict subclass with `.json` and `.markdown`) to a Recognition."""
    if isinstance(result, dict) and "error" in result:
        # The pipeline yields {"error": ...} instead of a result when its settings are invalid.
        raise EngineError("recognition_failed", f"PaddleOCRVL: {result['error']}")
    page = result.json["res"]
    blocks, formulas = [], []
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
        blocks.append(Block(type=kind, text=text, bbox=[float(v) for v in bbox], score=None))
    markdown = result.markdown.get("markdown_texts")
    return Recognition(
        blocks=blocks,
        markdown=tidy_markdown(markdown, formulas) if isinstance(markdown, str) else None,
    )
