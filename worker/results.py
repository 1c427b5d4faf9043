"""Build the DocumentResult from recognized pages and write result.json/.md/.txt atomically."""

from __future__ import annotations

import logging

from shared.results import Block, DocumentResult, PageResult
from shared.storage import JobFiles, is_crop_name

log = logging.getLogger(__name__)

PAGE_SEPARATOR_TEXT = "\f"


def page_markdown(blocks: list[Block]) -> str:
    """Markdown for an engine without layout analysis: one paragraph per text line."""
    return "\n\n".join(b.text for b in blocks if b.text.strip())


def image_url(job_id: str, name: str) -> str:
    """Where the API serves a stored crop, relative to its root."""
    return f"/jobs/{job_id}/images/{name}"


def link_images(
    job_id: str, page_index: int, markdown: str, images: dict[str, bytes]
) -> tuple[str, dict[str, bytes]]:
    """Store each crop as `p<page>-<name>` (unique in the job) and point the markdown's links at
    the API route. Engines give plain file names (CROP_NAME_PATTERN); any other is skipped."""
    stored = {}
    for name, data in images.items():
        links = (f'src="{name}"', f"]({name})")
        if not is_crop_name(name):
            log.warning("page %d: dropping an image crop with a bad name %r", page_index, name)
            continue
        url = image_url(job_id, f"p{page_index}-{name}")
        for link, target in zip(links, (f'src="{url}"', f"]({url})"), strict=True):
            markdown = markdown.replace(link, target)
        stored[f"p{page_index}-{name}"] = data
    return markdown, stored


def failed_page_markdown(page: PageResult) -> str:
    """What the markdown says where a page that could not be read would be."""
    assert page.error is not None
    message = " ".join(page.error.message.split())
    return f"> Page {page.index} could not be read: `{page.error.code}`: {message}".rstrip()


def failed_page_text(page: PageResult) -> str:
    """What the text says in place of a page that could not be read (one line)."""
    assert page.error is not None
    return f"[page {page.index} could not be read: {page.error.code}]"


def build_document(job_id: str, engine: str, pages: list[PageResult]) -> DocumentResult:
    """The whole result: each page's markdown under its `<!-- page N -->` marker, its text
    after a form feed. A failed page (its `error` set) keeps its place and says why in words,
    so page N of the text and the markdown is page N of the result."""
    markdowns = [failed_page_markdown(p) if p.error else p.markdown for p in pages]
    texts = [failed_page_text(p) if p.error else p.text for p in pages]
    markdown = "\n\n".join(
        f"<!-- page {p.index} -->\n\n{md}".rstrip() for p, md in zip(pages, markdowns, strict=True)
    )
    text = PAGE_SEPARATOR_TEXT.join(texts)
    return DocumentResult(job_id=job_id, engine=engine, pages=pages, text=text, markdown=markdown)


def write_results(files: JobFiles, document: DocumentResult) -> None:
    """Image crops first, json last: its presence means the others are complete too."""
    for page in document.pages:
        for name, data in page.images.items():
            files.write_image(name, data)
    files.write_result("markdown", (document.markdown + "\n").encode())
    files.write_result("text", (document.text + "\n").encode())
    files.write_result("json", document.model_dump_json().encode())
