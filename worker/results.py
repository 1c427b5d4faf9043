"""Build the DocumentResult from recognized pages and write result.json/.md/.txt atomically."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator

from shared.results import Block, DocumentResult, PageResult
from shared.storage import JobFiles, is_crop_name

log = logging.getLogger(__name__)

PAGE_SEPARATOR_TEXT = "\f"


def page_markdown(blocks: list[Block]) -> str:
    """Markdown for an engine without layout analysis: its paragraphs (worker/reading_order.py)
    apart, each row's boxes joined by a space and a paragraph's rows by a line break; blocks
    without paragraph ids (READING_ORDER=engine, a text layer) one paragraph per box."""
    if not any(b.paragraph is not None for b in blocks):
        return "\n\n".join(b.text for b in blocks if b.text.strip())
    paragraphs = ["\n".join(_runs(rows, "line", " ")) for rows in _consecutive(blocks, "paragraph")]
    return "\n\n".join(p for p in paragraphs if p.strip())


def page_text(blocks: list[Block]) -> str:
    """A page's text: a line per row (the boxes sharing a `line` id joined by a space), or per
    box when they have none."""
    if not any(b.line is not None for b in blocks):
        return "\n".join(b.text for b in blocks)
    return "\n".join(_runs(blocks, "line", " "))


def _consecutive(blocks: list[Block], key: str) -> list[list[Block]]:
    """Neighbouring blocks with the same id `key` together; a block without one alone."""
    groups: list[list[Block]] = []
    for block in blocks:
        value = getattr(block, key)
        if groups and value is not None and getattr(groups[-1][0], key) == value:
            groups[-1].append(block)
        else:
            groups.append([block])
    return groups


def _runs(blocks: list[Block], key: str, separator: str) -> list[str]:
    texts = (separator.join(b.text for b in group) for group in _consecutive(blocks, key))
    return [text for text in texts if text.strip()]


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


def page_markdown_section(page: PageResult) -> str:
    """A page's part of the document's markdown: its marker, then its markdown or, for a page
    that could not be read, why."""
    markdown = failed_page_markdown(page) if page.error else page.markdown
    return f"<!-- page {page.index} -->\n\n{markdown}".rstrip()


def page_text_section(page: PageResult) -> str:
    return failed_page_text(page) if page.error else page.text


def build_document(job_id: str, engine: str, pages: list[PageResult]) -> DocumentResult:
    """The whole result: each page's markdown under its `<!-- page N -->` marker, its text
    after a form feed. A failed page (its `error` set) keeps its place and says why in words,
    so page N of the text and the markdown is page N of the result."""
    markdown = "\n\n".join(page_markdown_section(p) for p in pages)
    text = PAGE_SEPARATOR_TEXT.join(page_text_section(p) for p in pages)
    return DocumentResult(job_id=job_id, engine=engine, pages=pages, text=text, markdown=markdown)


def write_results(files: JobFiles, document: DocumentResult) -> None:
    """Image crops first, json last: its presence means the others are complete too."""
    for page in document.pages:
        for name, data in page.images.items():
            files.write_image(name, data)
    files.write_result("markdown", (document.markdown + "\n").encode())
    files.write_result("text", (document.text + "\n").encode())
    files.write_result("json", document.model_dump_json().encode())


def _joined(pieces: Iterable[str], separator: str) -> Iterator[str]:
    for n, piece in enumerate(pieces):
        yield piece if n == 0 else separator + piece


def write_results_streamed(
    files: JobFiles, job_id: str, engine: str, pages: Callable[[], Iterable[PageResult]]
) -> None:
    """write_results for a document read back from its page ranges, one page in memory at a
    time whatever the document's length: `pages()` gives them again for each file (the crops
    are stored already). The same bytes as write_results of build_document; json last."""

    def markdown() -> Iterator[str]:
        return _joined((page_markdown_section(p) for p in pages()), "\n\n")

    def text() -> Iterator[str]:
        return _joined((page_text_section(p) for p in pages()), PAGE_SEPARATOR_TEXT)

    for fmt, pieces in (("markdown", markdown), ("text", text)):
        with files.result_target(fmt) as path, path.open("w", encoding="utf-8") as out:
            for piece in pieces():
                out.write(piece)
            out.write("\n")
    with files.result_target("json") as path, path.open("w", encoding="utf-8") as out:
        out.write(f'{{"job_id":{_json_string(job_id)},"engine":{_json_string(engine)},"pages":[')
        for n, page in enumerate(pages()):
            out.write(("," if n else "") + page.model_dump_json())
        for name, pieces in (("text", text), ("markdown", markdown)):
            out.write(f'],"{name}":"' if name == "text" else f',"{name}":"')
            for piece in pieces():
                out.write(_json_string(piece)[1:-1])
            out.write('"')
        out.write("}")


def _json_string(value: str) -> str:
    """A JSON string as pydantic writes it (UTF-8, not ASCII escapes)."""
    return json.dumps(value, ensure_ascii=False)
